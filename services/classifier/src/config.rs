use patroli_contracts::topics;
use patroli_inference::TokenBudget;
use patroli_runtime::KafkaConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// How results and input offsets become durable together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Idempotent producer; input offsets are stored only after every
    /// output of a batch is acknowledged. A crash re-delivers, so consumers
    /// de-duplicate by `event_id`.
    AtLeastOnce,
    /// Kafka transactions: outputs and input offsets commit atomically;
    /// downstream readers use `isolation.level=read_committed`.
    ExactlyOnce,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most posts scored in one model call.
    pub max_posts: usize,
    /// Most tokens (summed over the batch's posts, after truncation) in one
    /// model call, so a run of long posts does not blow up latency or
    /// memory.
    pub max_tokens: usize,
    /// How long the first post of a batch may wait for company.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        let budget = TokenBudget::DEFAULT;
        BatchConfig {
            max_posts: budget.max_posts,
            max_tokens: budget.max_tokens,
            max_wait_ms: 100,
        }
    }
}

impl BatchConfig {
    pub fn budget(&self) -> TokenBudget {
        TokenBudget {
            max_posts: self.max_posts,
            max_tokens: self.max_tokens,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    pub kafka: KafkaConfig,
    pub group_id: String,
    /// Raw posts (`posts.raw.v1`'s contract); renamable, e.g. with an
    /// environment prefix.
    pub posts_topic: String,
    /// Public complaints (`complaints.v1`'s contract).
    pub complaints_topic: String,
    pub output_topic: String,
    pub dlq_topic: String,
    /// Known claims to match posts against (`claims.v1`'s contract), read
    /// whole at start-up and followed; empty: the model's shipped archive only.
    pub claims_topic: String,
    pub delivery: DeliveryMode,
    /// Stable per instance (e.g. the pod name) in exactly-once mode, so a
    /// restarted instance fences its zombie predecessor.
    pub transactional_id: String,
    pub model_dir: PathBuf,
    /// Tokens per post kept by truncation; 0 = the model's own `max_len`,
    /// the length it was trained and evaluated with.
    pub max_len: usize,
    /// Inference threads; default: the container's CPU quota.
    pub threads: Option<usize>,
    /// Longer posts go to the DLQ with `text_too_long`.
    pub max_text_bytes: usize,
    pub batch: BatchConfig,
    pub session_timeout_ms: u64,
    pub max_poll_interval_ms: u64,
    /// How long a rebalance or shutdown waits for in-flight batches.
    pub drain_timeout_ms: u64,
    /// How often `patroli_consumer_lag` is recomputed from the broker's
    /// watermarks and the group's committed offsets.
    pub lag_refresh_ms: u64,
    pub http_addr: SocketAddr,
    pub log_json: bool,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            kafka: KafkaConfig::default(),
            group_id: "patroli-classifier".into(),
            posts_topic: topics::POSTS_RAW.into(),
            complaints_topic: topics::COMPLAINTS.into(),
            output_topic: topics::POSTS_SCORED.into(),
            dlq_topic: topics::POSTS_DLQ.into(),
            claims_topic: topics::CLAIMS.into(),
            delivery: DeliveryMode::AtLeastOnce,
            transactional_id: "patroli-classifier-0".into(),
            model_dir: PathBuf::from(patroli_inference::DEFAULT_MODEL_DIR),
            max_len: 0,
            threads: None,
            max_text_bytes: patroli_contracts::DEFAULT_MAX_TEXT_BYTES,
            batch: BatchConfig::default(),
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
            drain_timeout_ms: 30_000,
            lag_refresh_ms: 5_000,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            log_json: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClassifierConfig;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The backticked words of a README table cell, in order.
    fn backticked(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    /// The README's classifier configuration table is what operators read:
    /// every setting of `ClassifierConfig` is in it, under its own key, with
    /// the default the code has (a cell without a value, "unset" or "CPU
    /// quota", means none), so the table cannot drift from the code.
    #[test]
    fn the_readme_table_states_every_setting_and_its_default() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let table = readme
            .split("\n## Configuration (classifier)\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README's classifier configuration section");
        let defaults = serde_json::to_value(ClassifierConfig::default()).unwrap();
        let mut documented = BTreeSet::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            // `a.b` / `c`: a key without a section is in the one before it.
            let mut section = "";
            let keys: Vec<String> = backticked(cells[0])
                .into_iter()
                .map(|key| match key.split_once('.') {
                    Some((s, _)) => {
                        section = s;
                        key.to_owned()
                    }
                    None if section.is_empty() => key.to_owned(),
                    None => format!("{section}.{key}"),
                })
                .collect();
            let stated = backticked(cells[2]);
            for (i, key) in keys.iter().enumerate() {
                let pointer = format!("/{}", key.replace('.', "/"));
                let default = defaults
                    .pointer(&pointer)
                    .unwrap_or_else(|| panic!("the README documents `{key}`, not a setting"));
                let shown = match default {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    Value::Object(o) if o.is_empty() => Some("{}".into()),
                    other => Some(other.to_string()),
                };
                let stated = if stated.is_empty() {
                    None
                } else {
                    assert_eq!(stated.len(), keys.len(), "one default per key: {row}");
                    Some(stated[i].to_owned())
                };
                assert_eq!(stated, shown, "the README's default for `{key}`");
                documented.insert(key.clone());
            }
        }
        let mut settings = BTreeSet::new();
        for (name, value) in defaults.as_object().unwrap() {
            match value {
                Value::Object(fields) => {
                    settings.extend(fields.keys().map(|field| format!("{name}.{field}")))
                }
                _ => {
                    settings.insert(name.clone());
                }
            }
        }
        let undocumented: Vec<_> = settings.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "not in the README's table: {undocumented:?}"
        );
    }
}
