//! The Kafka side: rebuild state from the compacted state topic (and recent raw texts), then a
//! read-process-write loop, exactly-once: a small batch of inputs, every output and state
//! record they cause and their offsets form one Kafka transaction (see docs/architecture.md,
//! "Takedown"). A transaction that cannot commit leaves the engine's memory ahead of the log,
//! so the service exits and its successor rebuilds from what was committed.

use std::collections::BTreeMap;
use std::time::Duration;

use patroli_contracts::{
    decode_input, now_rfc3339, topics, DecisionVerifier, KeyError, Limits, ReviewDecision,
    ScoredEvent, TakedownStatus, SCHEMA_VERSION,
};
use patroli_runtime::{serve_http, Health};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::bounds::Unbounded;
use crate::engine::{Engine, Outgoing};
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyError};
pub use crate::rebuild::read_to_end;
use crate::rebuild::rebuild;
use crate::write::{Writer, READY_OUTPUT};
use crate::TakedownConfig;

const READY_STATE: &str = "state_rebuilt";
const READY_CONSUMING: &str = "consuming";

/// Most inputs in one transaction: enough to spread a commit's round trips over a burst,
/// few enough that a transaction stays small.
const MAX_BATCH: usize = 64;

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
    #[error("producing to {topic}: {source}; the state in memory is ahead of the log, so the service exits to rebuild it")]
    Produce { topic: String, source: KafkaError },
    #[error("the broker refuses the takedown service's output for good, check the topic and its ACLs: {0}")]
    OutputRefused(KafkaError),
    #[error("transaction not committed: {0}; the state in memory is ahead of the log, so the service exits to rebuild it")]
    Transaction(KafkaError),
    #[error(transparent)]
    Unbounded(#[from] Unbounded),
    #[error("the consumer has no group metadata to commit offsets in a transaction with")]
    NoGroupMetadata,
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
    let health = Health::new(&[READY_STATE, READY_CONSUMING, READY_OUTPUT]);
    // Its own token, cancelled once the loop has drained: /metrics and /readyz answer
    // through a graceful stop.
    let http_stop = CancellationToken::new();
    let (_, http) = serve_http(
        config.http_addr,
        metrics.registry.clone(),
        health.clone(),
        http_stop.clone(),
    )
    .await?;
    let engine = Engine::new(policy, verifier, config.bounds(), metrics.clone());
    let result = serve(&config, engine, &metrics, &health, &shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "takedown service stops");
    }
    health.set(READY_CONSUMING, false);
    http_stop.cancel();
    let _ = http.await;
    result
}

async fn serve(
    config: &TakedownConfig,
    engine: Engine,
    metrics: &Metrics,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<(), TakedownError> {
    // Fencing first: init_transactions aborts what a killed predecessor left open, which
    // read_committed readers (the rebuild among them) would otherwise wait behind.
    let producer: FutureProducer = config
        .kafka
        .idempotent_producer("patroli-takedown")
        .set("transactional.id", &config.transactional_id)
        .set("transaction.timeout.ms", "60000")
        .create()?;
    let init = producer.clone();
    tokio::task::spawn_blocking(move || init.init_transactions(Duration::from_secs(30)))
        .await
        .expect("init_transactions does not panic")
        .map_err(TakedownError::Transaction)?;
    health.set(READY_OUTPUT, true);

    let rebuild_config = config.clone();
    let (mut engine, repairs) =
        tokio::task::spawn_blocking(move || rebuild(&rebuild_config, engine))
            .await
            .expect("the rebuild task does not panic")?;
    let writer = Writer::new(producer, config.max_message_bytes, metrics, health);
    // What the rebuild refused, repaired or labelled, committed before anything is consumed.
    let repairs = engine.fit(repairs, config.max_message_bytes, "rebuild", &now_rfc3339())?;
    writer.commit(&mut engine, repairs, None).await?;
    health.set(READY_STATE, true);

    let consumer: StreamConsumer = config
        .kafka
        .client_config("patroli-takedown")
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .create()?;
    consumer.subscribe(&INPUT_TOPICS)?;
    health.set(READY_CONSUMING, true);

    let mut gauges = tokio::time::interval(Duration::from_secs(5));
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = gauges.tick() => {
                engine.refresh_gauges(time::OffsetDateTime::now_utc());
                continue;
            }
            message = consumer.recv() => message,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            // Only what is already fetched: a batch never waits for more input.
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let now = now_rfc3339();
        let mut outgoing = Vec::new();
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for message in batch {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
            };
            metrics.consumed.with_label_values(&[message.topic()]).inc();
            let subject = format!(
                "{}:{}:{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            let out = handle(&mut engine, &message, &subject, &now);
            outgoing.extend(engine.fit(out, config.max_message_bytes, &subject, &now)?);
            next.insert(
                (message.topic().to_owned(), message.partition()),
                message.offset() + 1,
            );
        }
        if next.is_empty() {
            continue;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        let group = consumer
            .group_metadata()
            .ok_or(TakedownError::NoGroupMetadata)?;
        writer
            .commit(&mut engine, outgoing, Some((&offsets, &group)))
            .await?;
    }
}

/// Turns one input message, read at `subject` (`topic:partition:offset`), into the messages it
/// causes. Unusable input is answered with an audit event naming the reason, never dropped
/// silently.
fn handle(
    engine: &mut Engine,
    message: &BorrowedMessage<'_>,
    subject: &str,
    now: &str,
) -> Vec<Outgoing> {
    let topic = message.topic();
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
            Ok(event) => engine.on_scored(event, now),
            Err(why) => engine.reject_input(subject, &why, now),
        },
        topics::REVIEW_DECISIONS => match decode::<ReviewDecision>(payload) {
            Ok(decision) if decision.schema_version != SCHEMA_VERSION => {
                let why = format!("unsupported schema_version {}", decision.schema_version);
                engine.reject_input(subject, &why, now)
            }
            Ok(decision) => engine.on_decision(decision, subject, now),
            Err(why) => engine.reject_input(subject, &why, now),
        },
        topics::TAKEDOWN_STATUS => match decode::<TakedownStatus>(payload) {
            Ok(status) => engine.on_status(status, now),
            Err(why) => engine.reject_input(subject, &why, now),
        },
        other => engine.reject_input(subject, &format!("unexpected topic {other}"), now),
    }
}

fn decode<T: serde::de::DeserializeOwned>(payload: Option<&[u8]>) -> Result<T, String> {
    let payload = payload.ok_or("message has no value")?;
    serde_json::from_slice(payload).map_err(|e| format!("invalid JSON value: {e}"))
}
