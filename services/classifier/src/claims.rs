//! Keeps the model's claim archive in step with `claims.v1`: the topic is read to its end
//! before the first post is scored, then followed while the service runs, so a claim a
//! reviewer confirms is matched from the next post on, without a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use patroli_contracts::ClaimRecord;
use patroli_inference::{Claim, Classifier};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::ClassifierConfig;
use crate::metrics::Metrics;
use crate::model_wire::claim_of;
use crate::service::ClassifierError;

/// Records embedded in one model call when many arrive together (a catch-up).
const APPLY_BATCH: usize = 64;
/// How long a batch of arriving records waits for company.
const BATCH_WAIT: Duration = Duration::from_millis(50);
/// Start-up fails if the claims topic yields nothing for this long before its end.
const CATCH_UP_STALL: Duration = Duration::from_secs(30);

/// One change to the archive.
enum Change {
    Upsert(Claim),
    Remove(String),
}

/// Reads `claims_topic` to its end into `classifier`'s archive and returns a task that
/// follows it until `stop`. A model without an archive, or no topic, has nothing to follow.
pub(crate) async fn catch_up_then_follow(
    config: &ClassifierConfig,
    classifier: Arc<Classifier>,
    metrics: Metrics,
    stop: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, ClassifierError> {
    if config.claims_topic.is_empty() || classifier.claim_count().is_none() {
        tracing::info!("no claim archive to follow");
        return Ok(None);
    }
    let topic = config.claims_topic.clone();
    // Every instance reads the whole topic.
    let consumer: StreamConsumer = config
        .kafka
        .whole_topic_reader(
            "patroli-classifier-claims",
            &format!("{}-claims", config.group_id),
        )
        .create()?;
    let ends = {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(30))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        let mut assignment = TopicPartitionList::new();
        let mut ends = Vec::new();
        let found = !partitions.is_empty();
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(30))?;
            assignment.add_partition_offset(&topic, p, Offset::Beginning)?;
            if high > low {
                ends.push((p, high));
            }
        }
        if !found {
            tracing::warn!(%topic, "claims topic not found; the shipped archive alone is matched");
            return Ok(None);
        }
        consumer.assign(&assignment)?;
        ends
    };
    let (mut pending, mut caught_up) = (ends, 0usize);
    let mut last_progress = tokio::time::Instant::now();
    while !pending.is_empty() {
        // The last offsets may hold no record (transaction markers): the position passing
        // the end, seen after a quiet spell, is the end too.
        match tokio::time::timeout(Duration::from_millis(500), next_batch(&consumer, &stop)).await {
            Ok(batch) => {
                if stop.is_cancelled() {
                    return Ok(None);
                }
                caught_up += batch.len();
                apply(&classifier, &metrics, batch).await?;
                last_progress = tokio::time::Instant::now();
            }
            Err(_) if last_progress.elapsed() > CATCH_UP_STALL => {
                return Err(ClassifierError::Stage(format!(
                    "{topic}: no progress reading claims for {CATCH_UP_STALL:?}"
                )))
            }
            Err(_) => {}
        }
        pending.retain(|&(p, high)| position(&consumer, &topic, p) < high);
    }
    tracing::info!(
        %topic,
        records = caught_up,
        archive = classifier.claim_count().unwrap_or(0),
        "claims caught up"
    );
    Ok(Some(tokio::spawn(async move {
        loop {
            let batch = next_batch(&consumer, &stop).await;
            if stop.is_cancelled() {
                return;
            }
            if let Err(e) = apply(&classifier, &metrics, batch).await {
                // The archive keeps what it had; the next record is tried again.
                tracing::error!(error = %e, "applying claims failed");
            }
        }
    })))
}

/// The next offset to read on `partition`, or -1 before the first message.
fn position(consumer: &StreamConsumer, topic: &str, partition: i32) -> i64 {
    let Ok(tpl) = consumer.position() else {
        return -1;
    };
    match tpl.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => -1,
    }
}

/// Waits for one record, then takes what else arrives within `BATCH_WAIT`.
async fn next_batch(consumer: &StreamConsumer, stop: &CancellationToken) -> Vec<Change> {
    let mut batch = Vec::new();
    let first = tokio::select! {
        _ = stop.cancelled() => return batch,
        m = consumer.recv() => m,
    };
    let push = |batch: &mut Vec<Change>, m: Result<BorrowedMessage<'_>, _>| match m {
        Ok(m) => batch.extend(change_of(&m)),
        Err(e) => tracing::warn!(error = %e, "reading claims"),
    };
    push(&mut batch, first);
    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
    while batch.len() < APPLY_BATCH {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(m) => push(&mut batch, m),
            Err(_) => break,
        }
    }
    batch
}

/// A record as a change: a tombstone removes its key; a record that is not a claim is
/// skipped with a warning (the topic is written by our own services and reviewed tools).
fn change_of(m: &BorrowedMessage<'_>) -> Option<Change> {
    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
    match (m.payload(), key) {
        (None, Some(key)) => Some(Change::Remove(key)),
        (None, None) => None,
        (Some(payload), _) => match serde_json::from_slice::<ClaimRecord>(payload) {
            Ok(r) => Some(Change::Upsert(claim_of(r))),
            Err(e) => {
                tracing::warn!(offset = m.offset(), error = %e, "skipping a claims record that is not a claim");
                None
            }
        },
    }
}

/// The batch as compaction would leave it: each claim's last change (a record without text
/// is skipped and counted, the claim keeps what it had). Returns the claims to upsert, the
/// ids to remove and the count skipped.
fn latest_per_claim(batch: Vec<Change>) -> (Vec<Claim>, Vec<String>, u64) {
    let mut last: BTreeMap<String, Change> = BTreeMap::new();
    let mut rejected = 0;
    for change in batch {
        let id = match &change {
            Change::Upsert(c) if c.text.as_deref().is_none_or(|t| t.trim().is_empty()) => {
                tracing::warn!(claim = %c.id, "skipping a claim without text");
                rejected += 1;
                continue;
            }
            Change::Upsert(c) => c.id.clone(),
            Change::Remove(id) => id.clone(),
        };
        last.insert(id, change);
    }
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    for change in last.into_values() {
        match change {
            Change::Upsert(c) => upserts.push(c),
            Change::Remove(id) => removals.push(id),
        }
    }
    (upserts, removals, rejected)
}

async fn apply(
    classifier: &Arc<Classifier>,
    metrics: &Metrics,
    batch: Vec<Change>,
) -> Result<(), ClassifierError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (upserts, removals, rejected) = latest_per_claim(batch);
    let model = classifier.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let removed = model.remove_claims(&removals)? as u64;
        let added = upserts.len() as u64;
        model.upsert_claims(upserts)?;
        Ok::<_, patroli_inference::ModelError>((added, removed, rejected))
    })
    .await
    .map_err(|e| ClassifierError::Stage(e.to_string()))??;
    for (outcome, n) in [
        ("upserted", counts.0),
        ("removed", counts.1),
        ("rejected", counts.2),
    ] {
        metrics
            .claims_applied
            .with_label_values(&[outcome])
            .inc_by(n);
    }
    metrics
        .claims_archive
        .set(classifier.claim_count().unwrap_or(0) as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroli_inference::Verdict;

    fn upsert(id: &str, text: &str) -> Change {
        Change::Upsert(Claim {
            id: id.into(),
            verdict: Verdict::Hoax,
            source: "review".into(),
            text: Some(text.into()),
            date: None,
            url: None,
        })
    }

    #[test]
    fn a_batch_keeps_each_claims_last_change_in_arrival_order() {
        let batch = vec![
            upsert("a", "surat suara tercoblos"),
            Change::Remove("a".into()),
            upsert("b", "kotak suara hilang"),
            Change::Remove("c".into()),
            upsert("c", "coblos dua kali"),
            upsert("b", "kotak suara hilang di gudang"),
            upsert("d", "  "),
        ];
        let (upserts, removals, rejected) = latest_per_claim(batch);
        let upserted: Vec<(&str, &str)> = upserts
            .iter()
            .map(|c| (c.id.as_str(), c.text.as_deref().unwrap()))
            .collect();
        assert_eq!(
            upserted,
            [
                ("b", "kotak suara hilang di gudang"),
                ("c", "coblos dua kali")
            ]
        );
        assert_eq!(removals, ["a"]);
        assert_eq!(rejected, 1);
    }
}
