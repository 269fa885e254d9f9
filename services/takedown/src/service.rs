//! The Kafka side: rebuild state from the compacted state topic (and recent raw texts), then a
//! read-process-write loop, at-least-once: every message's outputs (state records last) are
//! acknowledged by the broker before its offset is stored for commit. Deterministic ids make the
//! re-run after a crash harmless (see docs/architecture.md, "Takedown").

use std::time::Duration;

use futures::future::try_join_all;
use patroli_contracts::{
    audit_link, decode_input, now_rfc3339, topics, DecisionVerifier, KeyError, Limits,
    ReviewDecision, ScoredEvent, TakedownStatus, SCHEMA_VERSION,
};
use patroli_runtime::{serve_http, Health, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Outgoing, AUDIT_PARTITION};
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyError};
use crate::state::StateRecord;
use crate::TakedownConfig;

const READY_STATE: &str = "state_rebuilt";
const READY_CONSUMING: &str = "consuming";

/// The topics the loop consumes: post texts, scores, reviewers' decisions, partners' statuses.
/// Not `complaints.v1`: a complaint's text is never a post's, and its scored event carries all
/// the service keeps of it.
pub const INPUT_TOPICS: [&str; 4] = [
    topics::POSTS_RAW,
    topics::POSTS_SCORED,
    topics::REVIEW_DECISIONS,
    topics::TAKEDOWN_STATUS,
];

#[derive(Debug, thiserror::Error)]
pub enum TakedownError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("decision_keys_file is not set: without the dashboard's public keys no reviewer decision can be verified")]
    NoDecisionKeys,
    #[error(transparent)]
    Http(#[from] patroli_runtime::HttpError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("reading {topic} at start-up: {detail}")]
    Rebuild { topic: String, detail: String },
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
}

pub async fn run(config: TakedownConfig, shutdown: CancellationToken) -> Result<(), TakedownError> {
    let policy = match &config.policy_file {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    tracing::info!(version = %policy.version, "takedown policy loaded");
    let verifier = DecisionVerifier::load(
        config
            .decision_keys_file
            .as_deref()
            .ok_or(TakedownError::NoDecisionKeys)?,
    )?;
    tracing::info!(keys = ?verifier.key_ids().collect::<Vec<_>>(), "decision keys loaded");
    let metrics = Metrics::new();
    let health = Health::new(&[READY_STATE, READY_CONSUMING]);
    let (_, http) = serve_http(
        config.http_addr,
        metrics.registry.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await?;

    let mut engine = Engine::new(policy, verifier, config.text_cache_posts, metrics.clone());
    let engine_config = config.clone();
    let (rebuilt, repairs) = tokio::task::spawn_blocking(move || rebuild(&engine_config, engine))
        .await
        .expect("the rebuild task does not panic")?;
    engine = rebuilt;

    let producer: FutureProducer = config
        .kafka
        .idempotent_producer("patroli-takedown")
        .create()?;
    // What the rebuild refused or repaired, audited before anything else is consumed.
    produce_all(&producer, &repairs).await?;
    health.set(READY_STATE, true);
    let consumer: StreamConsumer = config
        .kafka
        .client_config("patroli-takedown")
        .set("group.id", &config.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            config.commit_interval_ms.to_string(),
        )
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .create()?;
    consumer.subscribe(&INPUT_TOPICS)?;
    health.set(READY_CONSUMING, true);

    let mut gauges = tokio::time::interval(Duration::from_secs(5));
    let result = loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = gauges.tick() => {
                engine.refresh_gauges(time::OffsetDateTime::now_utc());
                continue;
            }
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        };
        metrics.consumed.with_label_values(&[message.topic()]).inc();
        let outgoing = handle(&mut engine, &message);
        if let Err(e) = produce_all(&producer, &outgoing).await {
            break Err(e);
        }
        consumer.store_offset_from_message(&message)?;
    };
    if result.is_ok() {
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::warn!(error = %e, "final offset commit failed; inputs since the last commit will be re-read");
        }
    }
    shutdown.cancel();
    let _ = http.await;
    result
}

/// Turns one input message into the messages it causes. Unusable input is answered with an
/// audit event naming the reason, never dropped silently.
fn handle(engine: &mut Engine, message: &BorrowedMessage<'_>) -> Vec<Outgoing> {
    let now = now_rfc3339();
    let topic = message.topic();
    let subject = format!("{topic}:{}:{}", message.partition(), message.offset());
    let payload = message.payload();
    match topic {
        topics::POSTS_RAW => {
            // The classifier dead-letters invalid posts; here they only have no text to offer.
            match decode_input(topic, payload, &Limits::default()) {
                Ok(input) => engine.on_text(input.post.key(), input.text),
                Err(_) => vec![],
            }
        }
        topics::POSTS_SCORED => match decode::<ScoredEvent>(payload) {
            Ok(event) => engine.on_scored(event, &now),
            Err(why) => engine.reject_input(&subject, &why, &now),
        },
        topics::REVIEW_DECISIONS => match decode::<ReviewDecision>(payload) {
            Ok(decision) if decision.schema_version != SCHEMA_VERSION => {
                let why = format!("unsupported schema_version {}", decision.schema_version);
                engine.reject_input(&subject, &why, &now)
            }
            Ok(decision) => engine.on_decision(decision, &subject, &now),
            Err(why) => engine.reject_input(&subject, &why, &now),
        },
        topics::TAKEDOWN_STATUS => match decode::<TakedownStatus>(payload) {
            Ok(status) => engine.on_status(status, &now),
            Err(why) => engine.reject_input(&subject, &why, &now),
        },
        other => engine.reject_input(&subject, &format!("unexpected topic {other}"), &now),
    }
}

fn decode<T: serde::de::DeserializeOwned>(payload: Option<&[u8]>) -> Result<T, String> {
    let payload = payload.ok_or("message has no value")?;
    serde_json::from_slice(payload).map_err(|e| format!("invalid JSON value: {e}"))
}

/// Produces `outgoing` in order and waits for every acknowledgement.
pub async fn produce_all(
    producer: &FutureProducer,
    outgoing: &[Outgoing],
) -> Result<(), TakedownError> {
    let sends = outgoing.iter().map(|out| async move {
        let mut record = FutureRecord::to(out.topic)
            .key(&out.key)
            .payload(&out.payload);
        if let Some(partition) = out.partition {
            record = record.partition(partition);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(source, _)| TakedownError::Produce {
                topic: out.topic.to_owned(),
                source,
            })
    });
    try_join_all(sends).await.map(|_| ())
}

/// Learns the audit chain's tip, reads the state topic to its end into `engine`, then the tail
/// of the raw topics for texts. Returns the engine and the audit entries (and repaired state) of
/// state records it refused.
fn rebuild(
    config: &TakedownConfig,
    mut engine: Engine,
) -> Result<(Engine, Vec<Outgoing>), TakedownError> {
    // Only the last record's bytes matter; no control records are written to this
    // partition (the producer is not transactional), so its last offset is a record.
    let group = format!("{}-rebuild", config.group_id);
    let mut tip = None;
    read_to_end(
        &config.kafka,
        &group,
        topics::TAKEDOWN_AUDIT,
        Some(1),
        |_, _| {},
        |message| {
            if message.partition() == AUDIT_PARTITION {
                tip = Some(audit_link(message.payload().unwrap_or_default()));
            }
            Ok(())
        },
    )?;
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
        |_, _| {},
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
        |_, _| {},
        |message| {
            if let Ok(input) =
                decode_input(topics::POSTS_RAW, message.payload(), &Limits::default())
            {
                // Only the cache is refilled here; texts of known posts are in their records.
                engine.on_text(input.post.key(), input.text);
            }
            Ok(())
        },
    )?;
    Ok((engine, repairs))
}

/// Reads every partition of `topic` from the start (or its last `tail` messages) up to the high
/// watermark seen when it began, with a client of `group` that never commits. `on_partition`
/// learns each partition's first readable offset before its records. A missing topic reads as
/// empty.
pub fn read_to_end(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    tail: Option<i64>,
    mut on_partition: impl FnMut(i32, i64),
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
        on_partition(partition, low);
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
