//! Start-up: the audit chain's tip, the state topic read to its end, then the tail of the raw
//! topic for texts. Runs after the producer's `init_transactions`, which aborts whatever a
//! killed predecessor left open, so no read stalls behind an undecided transaction.

use std::time::Duration;

use patroli_contracts::{audit_link, decode_input, now_rfc3339, topics, Limits};
use patroli_runtime::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::{Engine, Outgoing, AUDIT_PARTITION};
use crate::service::TakedownError;
use crate::state::StateRecord;
use crate::TakedownConfig;

/// Offsets at the end of the audit partition read first for the chain's tip; widened (x4)
/// while they hold no committed record.
const AUDIT_TAIL: i64 = 16;

/// Learns the audit chain's tip, reads the state topic to its end into `engine`, then the tail
/// of the raw topics for texts. Returns the engine and what the rebuild caused, to be produced
/// before anything is consumed: audit entries of state records it refused, narratives reopened,
/// labels of posts whose text it found.
pub(crate) fn rebuild(
    config: &TakedownConfig,
    mut engine: Engine,
) -> Result<(Engine, Vec<Outgoing>), TakedownError> {
    let group = format!("{}-rebuild", config.group_id);
    let tip = audit_tip(&config.kafka, &group)?;
    if let Some(tip) = tip {
        tracing::info!(%tip, "audit chain continues");
        engine.set_audit_tip(tip);
    }
    let now = now_rfc3339();
    let mut repairs = Vec::new();
    let mut records = 0usize;
    read_to_end(
        &config.kafka,
        &group,
        topics::TAKEDOWN_STATE,
        None,
        |_, _, _| {},
        |message| {
            let subject = format!(
                "{}:{}:{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            let (Some(key), Some(value)) = (message.key(), message.payload()) else {
                return Ok(());
            };
            let key = String::from_utf8_lossy(key);
            match StateRecord::from_message(&key, value) {
                Ok(record) => repairs.extend(engine.restore(record, &subject, &now)),
                Err(why) => repairs.extend(engine.reject_input(&subject, &why, &now)),
            }
            records += 1;
            Ok(())
        },
    )?;
    repairs.extend(engine.reopen_orphans(&now));
    engine.refresh_gauges(time::OffsetDateTime::now_utc());
    tracing::info!(
        records,
        narratives = engine.narratives.len(),
        "state rebuilt"
    );
    read_to_end(
        &config.kafka,
        &group,
        topics::POSTS_RAW,
        Some(config.text_rebuild_per_partition),
        |_, _, _| {},
        |message| {
            if let Ok(input) =
                decode_input(topics::POSTS_RAW, message.payload(), &Limits::default())
            {
                // Mostly refills the cache; a known post without its text gets it here, and
                // its label if decided: produced with the repairs, never made and dropped.
                repairs.extend(engine.on_text(input.post.key(), input.text));
            }
            Ok(())
        },
    )?;
    Ok((engine, repairs))
}

/// Reads every partition of `topic` from the start (or its last `tail` messages) up to the high
/// watermark seen when it began, with a client of `group` that never commits and reads
/// committed records only. `on_partition` learns each partition's first readable offset and its
/// end before its records. A missing topic reads as empty.
pub fn read_to_end(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    tail: Option<i64>,
    mut on_partition: impl FnMut(i32, i64, i64),
    mut apply: impl FnMut(&BorrowedMessage<'_>) -> Result<(), String>,
) -> Result<(), TakedownError> {
    let failed = |detail: String| TakedownError::Rebuild {
        topic: topic.to_owned(),
        detail,
    };
    let consumer: BaseConsumer = kafka
        .whole_topic_reader("patroli-takedown-rebuild", group)
        .create()?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(partitions) = metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
    else {
        return Ok(());
    };
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0usize;
    let mut ends = std::collections::HashMap::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        on_partition(partition, low, high);
        if high <= low {
            continue;
        }
        let start = tail.map_or(low, |n| (high - n).max(low));
        assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
        ends.insert(partition, high);
        remaining += 1;
    }
    if remaining == 0 {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let mut done = std::collections::HashSet::new();
    let started = std::time::Instant::now();
    while done.len() < remaining {
        match consumer.poll(Duration::from_millis(500)) {
            Some(message) => {
                let message = message?;
                let end = ends[&message.partition()];
                if message.offset() < end {
                    apply(&message).map_err(failed)?;
                }
                if message.offset() + 1 >= end {
                    done.insert(message.partition());
                }
            }
            // The last offsets may hold no deliverable record (transaction markers): the
            // position having passed the end counts as the end.
            None => {
                let position = consumer.position()?;
                for element in position.elements() {
                    if let Offset::Offset(at) = element.offset() {
                        if at >= ends[&element.partition()] {
                            done.insert(element.partition());
                        }
                    }
                }
                if started.elapsed() > timeout {
                    return Err(failed(format!(
                        "{} partition(s) not read to their end within {timeout:?}",
                        remaining - done.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The hash of the last committed record of the audit partition, if any. Its last offsets may
/// be transaction markers (commit, or abort after an aborted record), never records, so a tail
/// is read and widened until it holds a record or is the whole partition.
fn audit_tip(kafka: &KafkaConfig, group: &str) -> Result<Option<String>, TakedownError> {
    let mut tail = AUDIT_TAIL;
    loop {
        let mut tip = None;
        let mut length = 0;
        read_to_end(
            kafka,
            group,
            topics::TAKEDOWN_AUDIT,
            Some(tail),
            |partition, low, high| {
                if partition == AUDIT_PARTITION {
                    length = high - low;
                }
            },
            |message| {
                if message.partition() == AUDIT_PARTITION {
                    tip = Some(audit_link(message.payload().unwrap_or_default()));
                }
                Ok(())
            },
        )?;
        if tip.is_some() || tail >= length {
            return Ok(tip);
        }
        tail *= 4;
    }
}
