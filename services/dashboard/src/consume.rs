//! Rebuilds the view from the topics and keeps it current: every partition is assigned (no
//! group membership, no commits), streams at the offset of `now - lookback` and state topics
//! from their beginning ([`DashboardTopics::reading`]), so each replica and each restart sees
//! the same events and shows the same numbers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroli_contracts::{
    DlqEvent, ReviewDecision, ReviewItem, ScoredEvent, TakedownRequest, TakedownStatus,
    SCHEMA_VERSION,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{DashboardConfig, DashboardTopics, Start};
use crate::shared::{now_ms, Shared, READY_REBUILT};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const LAG_EVERY: Duration = Duration::from_secs(5);
const CATCH_UP_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist on the broker (create it, e.g. with `patroli up` or the KafkaTopic manifests)")]
    MissingTopic(String),
}

type Partition = (String, i32);

/// Where reading starts on each partition, and the end it must reach before the view is ready.
struct Plan {
    start: BTreeMap<Partition, i64>,
    end: BTreeMap<Partition, i64>,
}

pub fn create_consumer(config: &DashboardConfig) -> Result<BaseConsumer, KafkaError> {
    // Committed records only: aborted transactions of the classifier must not be counted.
    config
        .kafka
        .whole_topic_reader("patroli-dashboard", &config.group_id)
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
}

fn plan(
    consumer: &BaseConsumer,
    config: &DashboardConfig,
    since_ms: i64,
) -> Result<Plan, ConsumeError> {
    let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let mut by_time = TopicPartitionList::new();
    let mut start = BTreeMap::new();
    let mut end = BTreeMap::new();
    for (topic, from) in config.topics.reading() {
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| ConsumeError::MissingTopic(topic.to_owned()))?;
        for partition in found.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, partition.id(), REQUEST_TIMEOUT)?;
            end.insert((topic.to_owned(), partition.id()), high);
            match from {
                Start::Beginning => {
                    start.insert((topic.to_owned(), partition.id()), low);
                }
                Start::Lookback => {
                    by_time.add_partition_offset(topic, partition.id(), Offset::Offset(since_ms))?
                }
            }
        }
    }
    if by_time.count() > 0 {
        for e in consumer
            .offsets_for_times(by_time, REQUEST_TIMEOUT)?
            .elements()
        {
            let partition = (e.topic().to_owned(), e.partition());
            // No message at or after the time: nothing to rebuild there.
            let offset = match e.offset() {
                Offset::Offset(offset) => offset,
                _ => end[&partition],
            };
            start.insert(partition, offset);
        }
    }
    Ok(Plan { start, end })
}

/// A broker that just started or just created the topics answers metadata requests with
/// "not leader" or "unknown topic" for a while: the plan is retried for this long.
const PLAN_PATIENCE: Duration = Duration::from_secs(60);

fn plan_patiently(
    consumer: &BaseConsumer,
    config: &DashboardConfig,
    lookback_ms: i64,
    stop: &CancellationToken,
) -> Result<Plan, ConsumeError> {
    let started = Instant::now();
    loop {
        match plan(consumer, config, now_ms() - lookback_ms) {
            Ok(plan) => return Ok(plan),
            Err(e) if started.elapsed() < PLAN_PATIENCE && !stop.is_cancelled() => {
                tracing::warn!(error = %e, "cannot plan the rebuild yet; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads until `stop`; the caller runs it on a blocking thread.
pub fn run(
    consumer: BaseConsumer,
    config: DashboardConfig,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), ConsumeError> {
    let watermarks = create_consumer(&config)?;
    let lookback_ms = config.lookback_secs as i64 * 1000;
    let plan = plan_patiently(&consumer, &config, lookback_ms, &stop)?;
    let mut assignment = TopicPartitionList::new();
    for ((topic, partition), offset) in &plan.start {
        assignment.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.assign(&assignment)?;
    let mut behind: BTreeMap<Partition, i64> = plan
        .end
        .iter()
        .filter(|(p, end)| plan.start[*p] < **end)
        .map(|(p, end)| (p.clone(), *end))
        .collect();
    tracing::info!(
        partitions = plan.start.len(),
        to_read = behind
            .iter()
            .map(|(p, end)| end - plan.start[p])
            .sum::<i64>(),
        "rebuilding the view from the topics"
    );
    let started = Instant::now();
    let mut last_catch_up = Instant::now();
    let mut last_lag = Instant::now() - LAG_EVERY;
    let mut rebuilt = false;
    while !stop.is_cancelled() {
        shared.health.beat();
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            match message {
                Ok(message) => fold(&config, &shared, &message),
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
        }
        if !rebuilt && last_catch_up.elapsed() >= CATCH_UP_EVERY {
            last_catch_up = Instant::now();
            for (partition, position) in positions(&consumer)? {
                if behind.get(&partition).is_some_and(|end| position >= *end) {
                    behind.remove(&partition);
                }
            }
            // Also right away when the window held nothing to read.
            if behind.is_empty() {
                rebuilt = true;
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "view rebuilt"
                );
                shared.health.set(READY_REBUILT, true);
                shared.changed();
                // The lag last measured was the whole rebuild's: measure again now.
                last_lag = Instant::now() - LAG_EVERY;
            }
        }
        if last_lag.elapsed() >= LAG_EVERY {
            last_lag = Instant::now();
            match lag(&consumer, &watermarks, &plan) {
                Ok(lag) => {
                    shared.lag.store(lag, Ordering::Relaxed);
                    shared.metrics.consumer_lag.set(lag);
                }
                Err(e) => tracing::warn!(error = %e, "cannot measure consumer lag"),
            }
        }
        shared.evict_old();
    }
    Ok(())
}

/// The next offset to read per assigned partition (`None` before the first fetch).
fn positions(consumer: &BaseConsumer) -> Result<Vec<(Partition, i64)>, KafkaError> {
    // The list lives only inside this function (a consumer dropped while one is alive hung
    // here: docs/broker.md, client rules).
    let positions = consumer.position()?;
    Ok(positions
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some(((e.topic().to_owned(), e.partition()), offset)),
            _ => None,
        })
        .collect())
}

/// Messages on the broker not yet read, over every assigned partition. The watermarks are
/// asked through `watermarks`, a client of its own: on the reading consumer's connections each
/// request would queue behind a fetch long-poll (half a second per partition).
fn lag(consumer: &BaseConsumer, watermarks: &BaseConsumer, plan: &Plan) -> Result<i64, KafkaError> {
    let read: BTreeMap<Partition, i64> = positions(consumer)?.into_iter().collect();
    let mut lag = 0;
    for (partition, start) in &plan.start {
        let (_, high) = watermarks.fetch_watermarks(&partition.0, partition.1, REQUEST_TIMEOUT)?;
        let done = read.get(partition).copied().unwrap_or(*start);
        lag += (high - done).max(0);
    }
    Ok(lag)
}

/// One message of the dashboard's topics, decoded.
enum Event {
    Scored(ScoredEvent),
    Dlq(DlqEvent),
    Review(ReviewItem),
    Decision(ReviewDecision),
    Request(TakedownRequest),
    Status(TakedownStatus),
}

#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("does not match its topic's contract: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema_version {0} is not the {SCHEMA_VERSION} this dashboard reads")]
    Version(u32),
}

fn decode(topics: &DashboardTopics, topic: &str, payload: &[u8]) -> Result<Event, Unreadable> {
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: u32,
    }
    let Versioned { schema_version } = serde_json::from_slice(payload)?;
    if schema_version != SCHEMA_VERSION {
        return Err(Unreadable::Version(schema_version));
    }
    let event = if topic == topics.scored {
        Event::Scored(serde_json::from_slice(payload)?)
    } else if topic == topics.dlq {
        Event::Dlq(serde_json::from_slice(payload)?)
    } else if topic == topics.review_queue {
        Event::Review(serde_json::from_slice(payload)?)
    } else if topic == topics.review_decisions {
        Event::Decision(serde_json::from_slice(payload)?)
    } else if topic == topics.takedown_requests {
        Event::Request(serde_json::from_slice(payload)?)
    } else {
        Event::Status(serde_json::from_slice(payload)?)
    };
    Ok(event)
}

fn fold(config: &DashboardConfig, shared: &Shared, message: &BorrowedMessage<'_>) {
    let topic = message.topic();
    let payload = message.payload().unwrap_or_default();
    let minute = message
        .timestamp()
        .to_millis()
        .unwrap_or_else(now_ms)
        .div_euclid(60_000);
    // Decoded before the view is locked, so pages never wait on JSON parsing.
    match decode(&config.topics, topic, payload) {
        Ok(event) => {
            shared.update(|view, now_minute| match event {
                Event::Scored(e) => view.scored(&e, minute, now_minute),
                Event::Dlq(e) => view.dlq(&e, minute, now_minute),
                Event::Review(e) => view.review_item(e),
                Event::Decision(e) => view.decision(e),
                Event::Request(e) => view.request(&e),
                Event::Status(e) => view.status(&e),
            });
            shared.metrics.events.with_label_values(&[topic]).inc();
        }
        Err(e) => {
            // The dashboard only reads: a message it cannot use stays on its topic (and in the
            // producer's DLQ if it has one); here it is counted and logged with its place.
            shared.metrics.invalid.with_label_values(&[topic]).inc();
            shared.update(|view, _| view.invalid_event());
            tracing::warn!(
                %topic,
                partition = message.partition(),
                offset = message.offset(),
                error = %e,
                "ignoring a message the dashboard cannot read"
            );
        }
    }
}
