//! Checking `takedown.audit.v1`'s hash chains (`patroli audit verify`): each record's
//! `prev_hash` must be the SHA-256 of the value of the record before it in its partition, the
//! first one's the genesis. The service writes the chain (see `Engine::chain_audit`); this is
//! the reader's side.

use std::collections::BTreeMap;

use patroli_contracts::{audit_link, AUDIT_GENESIS};

/// The first place a partition's chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub partition: i32,
    pub offset: i64,
    /// What differs, e.g. the link the record carries and the one it should.
    pub what: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {} offset {}: {}",
            self.partition, self.offset, self.what
        )
    }
}

#[derive(Debug, Default)]
struct PartitionChain {
    records: u64,
    /// The link the next record must carry; `None` before the first record when the partition
    /// no longer starts at offset 0 (retention deleted its head).
    expected: Option<String>,
    first_offset: Option<i64>,
    broken: Option<BrokenLink>,
}

/// Folds records (per partition, in offset order) into per-partition verdicts.
#[derive(Debug, Default)]
pub struct ChainCheck {
    partitions: BTreeMap<i32, PartitionChain>,
}

impl ChainCheck {
    /// Announces a partition whose first readable offset is `low` (0 = it holds its genesis).
    pub fn partition(&mut self, partition: i32, low: i64) {
        let chain = self.partitions.entry(partition).or_default();
        chain.expected = (low == 0).then(|| AUDIT_GENESIS.to_owned());
    }

    /// The next record of `partition`; records after its first broken link are not checked.
    pub fn record(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        let chain = self.partitions.entry(partition).or_default();
        if chain.broken.is_some() {
            return;
        }
        chain.records += 1;
        chain.first_offset.get_or_insert(offset);
        let payload = payload.unwrap_or_default();
        let carried = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("prev_hash")?.as_str().map(str::to_owned));
        let broken = |what: String| BrokenLink {
            partition,
            offset,
            what,
        };
        match (carried, &chain.expected) {
            (None, _) => {
                chain.broken = Some(broken(
                    "not an audit record (no JSON object with a prev_hash string)".into(),
                ));
            }
            (Some(carried), Some(expected)) if carried != *expected => {
                let before = if *expected == AUDIT_GENESIS {
                    "the first record must link to the genesis".to_owned()
                } else {
                    "the record before it hashes to".to_owned()
                };
                chain.broken = Some(broken(format!(
                    "prev_hash is {carried}, but {before} {expected}"
                )));
            }
            _ => chain.expected = Some(audit_link(payload)),
        }
    }

    /// Every partition's first broken link, lowest partition first.
    pub fn broken(&self) -> Vec<&BrokenLink> {
        self.partitions
            .values()
            .filter_map(|c| c.broken.as_ref())
            .collect()
    }

    /// One line per partition: records checked, where the chain starts, the last link.
    pub fn summary(&self) -> Vec<String> {
        self.partitions
            .iter()
            .map(|(partition, chain)| {
                let start = match chain.first_offset {
                    None => "empty".to_owned(),
                    Some(0) => "from genesis".to_owned(),
                    Some(offset) => format!(
                        "from offset {offset} (earlier records deleted by retention; its link is taken as given)"
                    ),
                };
                let tip = chain.expected.as_deref().unwrap_or(AUDIT_GENESIS);
                format!(
                    "partition {partition}: {} record(s) {start}, last link {tip}",
                    chain.records
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prev: &str, why: &str) -> Vec<u8> {
        serde_json::json!({ "prev_hash": prev, "why": why })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn an_honest_chain_passes_and_every_break_is_named() {
        let first = record(AUDIT_GENESIS, "a");
        let second = record(&audit_link(&first), "b");
        let mut check = ChainCheck::default();
        check.partition(0, 0);
        check.record(0, 0, Some(&first));
        check.record(0, 1, Some(&second));
        assert!(check.broken().is_empty());
        assert_eq!(
            check.summary(),
            [format!(
                "partition 0: 2 record(s) from genesis, last link {}",
                audit_link(&second)
            )]
        );

        // A record whose predecessor was altered, one linking to nothing, one not JSON.
        let altered = record(AUDIT_GENESIS, "A");
        let mut check = ChainCheck::default();
        check.partition(0, 0);
        check.record(0, 0, Some(&altered));
        check.record(0, 1, Some(&second));
        check.partition(1, 0);
        check.record(1, 0, Some(&record("ab", "x")));
        check.partition(2, 0);
        check.record(2, 0, Some(b"garbage"));
        let broken: Vec<String> = check.broken().iter().map(|b| b.to_string()).collect();
        assert_eq!(
            broken,
            [
                format!(
                    "partition 0 offset 1: prev_hash is {}, but the record before it hashes to {}",
                    audit_link(&first),
                    audit_link(&altered)
                ),
                format!(
                    "partition 1 offset 0: prev_hash is ab, but the first record must link to the genesis {AUDIT_GENESIS}"
                ),
                "partition 2 offset 0: not an audit record (no JSON object with a prev_hash string)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn a_partition_past_retention_starts_at_its_first_record() {
        let first = record("f".repeat(64).as_str(), "a");
        let second = record(&audit_link(&first), "b");
        let mut check = ChainCheck::default();
        check.partition(0, 7);
        check.record(0, 7, Some(&first));
        check.record(0, 8, Some(&second));
        assert!(check.broken().is_empty());
        assert!(check.summary()[0].contains("from offset 7"));
    }
}
