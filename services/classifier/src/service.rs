//! The read-score-write loop. Three stages joined by bounded channels:
//!
//! 1. poll (this task): receive, decode, batch; pause fetching when the
//!    scorer is behind, but keep polling so rebalances are served and
//!    `max.poll.interval.ms` is never exceeded;
//! 2. score: the model on tokio's blocking pool;
//! 3. write: produce outputs, then make input offsets durable (stored
//!    after delivery in at-least-once mode, inside the transaction in
//!    exactly-once mode).
//!
//! A rebalance waits for in-flight batches to finish (bounded by
//! `drain_timeout_ms`) and commits before the partitions go; anything
//! still queued is dropped uncommitted and re-fetched by the next owner.

use crate::batch::Batcher;
use crate::config::{ClassifierConfig, DeliveryMode};
use crate::metrics::Metrics;
use crate::output::{dead_letter_record, scored_record, Item, OutRecord, Outcome};
use patroli_contracts::{
    decode_as, DlqReason, InputKind, InvalidInput, Limits, ModelRef, SourceOffset,
};
use patroli_model::{Classifier, InferenceOptions};
use patroli_runtime::{serve_http, Health};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const READY_MODEL: &str = "model_loaded";
const READY_BROKER: &str = "broker_reachable";
const READY_ASSIGNED: &str = "partitions_assigned";
/// Headers carried from input to output so a post can be traced end to end.
const TRACE_HEADERS: [&str; 3] = ["trace_id", "traceparent", "ingest_time_ms"];

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Http(#[from] patroli_runtime::HttpError),
    #[error("cannot load the model: {0}")]
    Model(#[from] patroli_model::ModelError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("transaction failed, the batch will be re-consumed after restart: {0}")]
    Transaction(KafkaError),
    #[error("a pipeline stage stopped unexpectedly: {0}")]
    Stage(String),
}

/// Counts batches between dispatch and durable completion, so a rebalance
/// can wait for them.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

impl InFlight {
    fn start(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn finish(&self) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.idle.notify_all();
        }
    }

    fn wait_idle(&self, limit: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (count, _) = self
            .idle
            .wait_timeout_while(count, limit, |c| *c > 0)
            .unwrap_or_else(|p| p.into_inner());
        *count == 0
    }
}

struct ServiceContext {
    in_flight: Arc<InFlight>,
    /// Bumped on every assignment change; a batch stores offsets only if
    /// the generation it was formed in is still current.
    generation: Arc<AtomicU64>,
    health: Health,
    metrics: Metrics,
    commit_on_revoke: bool,
    drain_timeout: Duration,
}

impl ServiceContext {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

impl ClientContext for ServiceContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for ServiceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let wait = || self.in_flight.wait_idle(self.drain_timeout);
            // Rebalance callbacks run inside `recv` on a runtime worker;
            // block_in_place lets the write stage finish meanwhile.
            let drained = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            };
            // After the drain, so batches that finished during it still
            // store their offsets; later ones must not.
            self.generation.fetch_add(1, Ordering::SeqCst);
            if !drained {
                tracing::warn!(
                    timeout_ms = self.drain_timeout.as_millis() as u64,
                    "in-flight batches did not finish before the rebalance; their inputs will be re-delivered"
                );
            }
            if self.commit_on_revoke {
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(())
                    | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) =>
                        {}
                    Err(e) => tracing::warn!(error = %e, "commit before revoke failed"),
                }
            }
            tracing::info!(partitions = partitions.count(), "partitions revoked");
            // Lag of partitions we no longer own would go stale and keep
            // lag alerts firing; the new owner reports them.
            self.metrics.consumer_lag.reset();
            self.metrics.assigned_partitions.set(0);
            self.health.set(READY_ASSIGNED, false);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.generation.fetch_add(1, Ordering::SeqCst);
            let count = partitions.count();
            tracing::info!(partitions = count, "partitions assigned");
            self.metrics.assigned_partitions.set(count as i64);
            self.health.set(READY_ASSIGNED, count > 0);
        }
    }
}

type ServiceConsumer = StreamConsumer<ServiceContext>;

struct Batch {
    items: Vec<Item>,
    generation: u64,
}

struct ScoredBatch {
    records: Vec<OutRecord>,
    /// Next offset to consume per input partition.
    next_offsets: BTreeMap<(String, i32), i64>,
    generation: u64,
}

/// Runs the classifier until `shutdown` is cancelled (then drains and
/// commits) or a fatal error occurs.
pub async fn run(
    config: ClassifierConfig,
    shutdown: CancellationToken,
) -> Result<(), ClassifierError> {
    let metrics = Metrics::new();
    let health = Health::new(&[READY_MODEL, READY_BROKER, READY_ASSIGNED]);
    // Health and metrics stay up through the drain after SIGTERM, so the
    // last batches are still observable; they stop when the service does.
    let http_stop = CancellationToken::new();
    let _stop_http_on_return = http_stop.clone().drop_guard();
    let (_, http) = serve_http(
        config.http_addr,
        metrics.registry.clone(),
        health.clone(),
        http_stop.clone(),
    )
    .await?;

    let options = InferenceOptions {
        max_len: config.max_len,
        threads: config.threads,
    };
    let model_dir = config.model_dir.clone();
    let classifier = tokio::task::spawn_blocking(move || Classifier::load(&model_dir, &options))
        .await
        .map_err(|e| ClassifierError::Stage(e.to_string()))??;
    let classifier = Arc::new(classifier);
    let info = classifier.info();
    let model = ModelRef {
        name: info.name.clone(),
        version: info.version.clone(),
    };
    metrics
        .model_info
        .with_label_values(&[model.name.as_str(), model.version.as_str()])
        .set(1);
    health.set(READY_MODEL, true);
    tracing::info!(model = %model.name, version = %model.version, "model loaded");

    let in_flight = Arc::new(InFlight::default());
    let context = ServiceContext {
        in_flight: in_flight.clone(),
        generation: Arc::new(AtomicU64::new(0)),
        health: health.clone(),
        metrics: metrics.clone(),
        commit_on_revoke: config.delivery == DeliveryMode::AtLeastOnce,
        drain_timeout: Duration::from_millis(config.drain_timeout_ms),
    };
    let consumer: Arc<ServiceConsumer> =
        Arc::new(consumer_config(&config).create_with_context(context)?);
    let producer: FutureProducer = producer_config(&config).create()?;

    wait_for_broker(&consumer, &shutdown).await;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    health.set(READY_BROKER, true);
    if config.delivery == DeliveryMode::ExactlyOnce {
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(30)))
            .await
            .map_err(|e| ClassifierError::Stage(e.to_string()))?
            .map_err(ClassifierError::Transaction)?;
    }
    let topics = [
        config.posts_topic.as_str(),
        config.complaints_topic.as_str(),
    ];
    consumer.subscribe(&topics)?;
    tracing::info!(?topics, group = %config.group_id, mode = ?config.delivery, "consuming");

    // Stops the poll loop on SIGTERM or when a later stage fails.
    let stop = shutdown.child_token();
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(1);
    let (scored_tx, scored_rx) = mpsc::channel::<ScoredBatch>(1);
    let scorer = tokio::spawn(score_stage(
        batch_rx,
        scored_tx,
        classifier.clone(),
        model,
        config.clone(),
        metrics.clone(),
    ));
    let writer = tokio::spawn(write_stage(
        scored_rx,
        producer.clone(),
        consumer.clone(),
        in_flight.clone(),
        config.delivery,
        metrics.clone(),
        stop.clone(),
    ));

    // A rebalance may block the poll loop for up to the drain timeout.
    health
        .watch_heartbeat(Duration::from_millis(config.drain_timeout_ms) + Duration::from_secs(30));
    let poller = Poller {
        consumer: &consumer,
        classifier: &classifier,
        config: &config,
        in_flight: &in_flight,
        metrics: &metrics,
        health: &health,
    };
    poll_loop(poller, batch_tx, &stop).await;

    let scored = scorer.await;
    let written = writer.await;
    if config.delivery == DeliveryMode::AtLeastOnce {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "final commit failed; the last batches will be re-delivered")
            }
        }
    }
    consumer.unsubscribe();
    let _ = producer.flush(Duration::from_secs(10));
    http_stop.cancel();
    let _ = http.await;
    scored.map_err(|e| ClassifierError::Stage(e.to_string()))?;
    written.map_err(|e| ClassifierError::Stage(e.to_string()))??;
    tracing::info!("classifier stopped cleanly");
    Ok(())
}

fn consumer_config(config: &ClassifierConfig) -> rdkafka::ClientConfig {
    let mut c = config.kafka.client_config("patroli-classifier");
    c.set("group.id", &config.group_id)
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "max.poll.interval.ms",
            config.max_poll_interval_ms.to_string(),
        )
        .set("statistics.interval.ms", "5000")
        // A paused or busy instance should not sit on a huge prefetch.
        .set("queued.max.messages.kbytes", "16384");
    match config.delivery {
        DeliveryMode::AtLeastOnce => {
            // Only offsets stored after delivery are ever committed.
            c.set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "1000")
                .set("isolation.level", "read_committed");
        }
        DeliveryMode::ExactlyOnce => {
            c.set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        }
    }
    c
}

fn producer_config(config: &ClassifierConfig) -> rdkafka::ClientConfig {
    let mut c = config.kafka.idempotent_producer("patroli-classifier");
    if config.delivery == DeliveryMode::ExactlyOnce {
        c.set("transactional.id", &config.transactional_id)
            .set("transaction.timeout.ms", "60000");
    }
    c
}

async fn wait_for_broker(consumer: &Arc<ServiceConsumer>, shutdown: &CancellationToken) {
    let mut delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let c = consumer.clone();
        let probe = tokio::task::spawn_blocking(move || {
            c.fetch_metadata(None, Duration::from_secs(5)).map(|_| ())
        })
        .await;
        match probe {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "broker not reachable yet"),
            Err(e) => tracing::warn!(error = %e, "metadata probe failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn to_item(message: &BorrowedMessage<'_>, input_kind: InputKind, limits: &Limits) -> Item {
    let mut trace_headers = Vec::new();
    let mut ingest_ms = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if TRACE_HEADERS.contains(&header.key) {
                if let Some(value) = header.value {
                    if header.key == "ingest_time_ms" {
                        ingest_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                    }
                    trace_headers.push((header.key.to_owned(), value.to_vec()));
                }
            }
        }
    }
    let payload = message.payload().map(<[u8]>::to_vec);
    Item {
        source: SourceOffset {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
        key: message.key().map(<[u8]>::to_vec),
        decoded: decode_as(input_kind, payload.as_deref(), limits),
        payload,
        ingest_ms: ingest_ms.or_else(|| message.timestamp().to_millis()),
        received: Instant::now(),
        trace_headers,
    }
}

/// What the poll loop reads from; it owns nothing but its batcher.
struct Poller<'a> {
    consumer: &'a Arc<ServiceConsumer>,
    classifier: &'a Classifier,
    config: &'a ClassifierConfig,
    in_flight: &'a InFlight,
    metrics: &'a Metrics,
    health: &'a Health,
}

async fn poll_loop(poller: Poller<'_>, batch_tx: mpsc::Sender<Batch>, stop: &CancellationToken) {
    let Poller {
        consumer,
        classifier,
        config,
        in_flight,
        metrics,
        health,
    } = poller;
    let limits = Limits {
        max_text_bytes: config.max_text_bytes,
    };
    let mut queue = Queue {
        batcher: Batcher::new(config.batch.clone()),
        ready: None,
        paused: false,
        generation: consumer.context().generation(),
    };
    loop {
        health.beat();
        queue.follow_assignment(consumer.context().generation(), metrics);
        let now = Instant::now();
        if queue.ready.is_none()
            && (queue.batcher.is_full() || queue.batcher.deadline().is_some_and(|d| d <= now))
        {
            queue.ready = Some(queue.batcher.take());
        }
        if let Some(items) = queue.ready.take() {
            match batch_tx.try_reserve() {
                Ok(permit) => {
                    in_flight.start();
                    metrics.in_flight_batches.inc();
                    permit.send(Batch {
                        items,
                        generation: queue.generation,
                    });
                    queue.set_paused(false, consumer, metrics);
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    queue.ready = Some(items);
                    queue.set_paused(true, consumer, metrics);
                }
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
        let wake_at = if queue.ready.is_some() {
            now + Duration::from_millis(10)
        } else {
            queue
                .batcher
                .deadline()
                .unwrap_or(now + Duration::from_millis(500))
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    // Rebalance callbacks ran inside recv: compare first so a
                    // message of the new assignment is not dropped with the old.
                    queue.follow_assignment(consumer.context().generation(), metrics);
                    metrics.consumed.with_label_values(&[message.topic()]).inc();
                    let kind = if message.topic() == config.complaints_topic {
                        InputKind::Complaint
                    } else {
                        InputKind::Post
                    };
                    let item = to_item(&message, kind, &limits);
                    let tokens = match &item.decoded {
                        Ok(input) => classifier.token_count(&input.text),
                        Err(_) => 0,
                    };
                    queue.batcher.push(item, tokens, Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            },
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
    // Shutting down: hand over what is queued so it is scored now rather
    // than re-delivered after the restart. If the scorer is gone, the
    // items stay uncommitted, which is just as safe.
    let mut leftovers = queue.ready.take().into_iter().collect::<Vec<_>>();
    while !queue.batcher.is_empty() {
        leftovers.push(queue.batcher.take());
    }
    for items in leftovers {
        in_flight.start();
        metrics.in_flight_batches.inc();
        let batch = Batch {
            items,
            generation: queue.generation,
        };
        if batch_tx.send(batch).await.is_err() {
            in_flight.finish();
            metrics.in_flight_batches.dec();
            break;
        }
    }
}

/// What the poll loop holds between iterations.
struct Queue {
    batcher: Batcher<Item>,
    /// A formed batch waiting for the scorer to take it.
    ready: Option<Vec<Item>>,
    paused: bool,
    generation: u64,
}

impl Queue {
    /// Items queued under an older assignment are dropped uncommitted: their
    /// partitions restart from the last commit, wherever they now live. A
    /// new assignment starts unpaused.
    fn follow_assignment(&mut self, current: u64, metrics: &Metrics) {
        if current != self.generation {
            self.batcher.clear();
            self.ready = None;
            self.paused = false;
            metrics.paused.set(0);
            self.generation = current;
        }
    }

    fn set_paused(&mut self, pause: bool, consumer: &ServiceConsumer, metrics: &Metrics) {
        if self.paused == pause {
            return;
        }
        let result = consumer.assignment().and_then(|assigned| {
            if pause {
                consumer.pause(&assigned)
            } else {
                consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                self.paused = pause;
                metrics.paused.set(i64::from(pause));
            }
            Err(e) => tracing::warn!(error = %e, pause, "cannot change fetch pause state"),
        }
    }
}

async fn score_stage(
    mut batches: mpsc::Receiver<Batch>,
    scored: mpsc::Sender<ScoredBatch>,
    classifier: Arc<Classifier>,
    model: ModelRef,
    config: ClassifierConfig,
    metrics: Metrics,
) {
    let model = Arc::new(model);
    let config = Arc::new(config);
    while let Some(batch) = batches.recv().await {
        let (classifier, model, config, metrics) = (
            classifier.clone(),
            model.clone(),
            config.clone(),
            metrics.clone(),
        );
        let done = tokio::task::spawn_blocking(move || {
            score_batch(&classifier, batch, &model, &config, &metrics)
        })
        .await;
        match done {
            Ok(result) => {
                if scored.send(result).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scoring task panicked; its inputs stay uncommitted");
                return;
            }
        }
    }
}

fn score_batch(
    classifier: &Classifier,
    batch: Batch,
    model: &ModelRef,
    config: &ClassifierConfig,
    metrics: &Metrics,
) -> ScoredBatch {
    let valid: Vec<&str> = batch
        .items
        .iter()
        .filter_map(|item| item.decoded.as_ref().ok().map(|input| input.text.as_str()))
        .collect();
    let tokens: usize = valid.iter().map(|t| classifier.token_count(t)).sum();
    let started = Instant::now();
    let predictions = score_isolating_failures(classifier, &valid);
    metrics
        .inference_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.batch_posts.observe(valid.len() as f64);
    metrics.batch_tokens.observe(tokens as f64);

    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut predictions = predictions.into_iter();
    let mut records = Vec::with_capacity(batch.items.len());
    let mut next_offsets = BTreeMap::new();
    for item in &batch.items {
        let record = match &item.decoded {
            Ok(input) => match predictions.next().expect("one prediction per valid item") {
                Ok(prediction) => {
                    scored_record(item, input, prediction, model, &config.output_topic, now_ms)
                }
                Err(detail) => dead_letter_record(
                    item,
                    &InvalidInput {
                        reason: DlqReason::ModelError,
                        detail,
                    },
                    &config.dlq_topic,
                ),
            },
            Err(invalid) => dead_letter_record(item, invalid, &config.dlq_topic),
        };
        if let Some(end_to_end) = item.ingest_ms {
            metrics
                .end_to_end_seconds
                .observe((now_ms - end_to_end).max(0) as f64 / 1000.0);
        }
        records.push(record);
        next_offsets.insert(
            (item.source.topic.clone(), item.source.partition),
            item.source.offset + 1,
        );
    }
    ScoredBatch {
        records,
        next_offsets,
        generation: batch.generation,
    }
}

/// Scores the batch; if the model fails on it, scores post by post so one
/// poisonous post goes to the DLQ instead of stalling its partition.
fn score_isolating_failures(
    classifier: &Classifier,
    texts: &[&str],
) -> Vec<Result<patroli_model::Prediction, String>> {
    match classifier.score(texts) {
        Ok(predictions) => predictions.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, posts = texts.len(), "batch failed; scoring post by post");
            texts
                .iter()
                .map(|text| {
                    classifier
                        .score(&[text])
                        .map_err(|e| e.to_string())
                        .and_then(|mut p| {
                            p.pop().ok_or_else(|| "model returned no prediction".into())
                        })
                })
                .collect()
        }
    }
}

async fn write_stage(
    mut scored: mpsc::Receiver<ScoredBatch>,
    producer: FutureProducer,
    consumer: Arc<ServiceConsumer>,
    in_flight: Arc<InFlight>,
    delivery: DeliveryMode,
    metrics: Metrics,
    stop: CancellationToken,
) -> Result<(), ClassifierError> {
    while let Some(batch) = scored.recv().await {
        let written = match delivery {
            DeliveryMode::AtLeastOnce => {
                write_at_least_once(&batch, &producer, &consumer, &metrics, &stop).await
            }
            DeliveryMode::ExactlyOnce => write_transaction(&batch, &producer, &consumer).await,
        };
        in_flight.finish();
        metrics.in_flight_batches.dec();
        match written {
            Ok(true) => count_outcomes(&batch.records, &metrics),
            Ok(false) => {}
            Err(e) => {
                stop.cancel();
                return Err(e);
            }
        }
    }
    Ok(())
}

fn count_outcomes(records: &[OutRecord], metrics: &Metrics) {
    for record in records {
        match &record.outcome {
            Outcome::Scored(label) => metrics.scored.with_label_values(&[label.as_str()]).inc(),
            Outcome::DeadLetter(reason) => metrics.dlq.with_label_values(&[reason]).inc(),
        }
    }
}

async fn produce_all(batch: &ScoredBatch, producer: &FutureProducer) -> Result<(), KafkaError> {
    let sends = batch.records.iter().map(|record| {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        producer.send(
            FutureRecord::to(&record.topic)
                .key(&record.key)
                .payload(&record.payload)
                .headers(headers),
            Duration::from_secs(30),
        )
    });
    for delivery in futures::future::join_all(sends).await {
        delivery.map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn offsets_list(batch: &ScoredBatch) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &batch.next_offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(list)
}

/// Produces until every output is acknowledged, then stores the input
/// offsets. Retries forever on delivery failure (stalling is better than
/// losing a post); gives up only on shutdown, leaving the offsets unstored.
/// Returns whether the batch was completed.
async fn write_at_least_once(
    batch: &ScoredBatch,
    producer: &FutureProducer,
    consumer: &ServiceConsumer,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<bool, ClassifierError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match produce_all(batch, producer).await {
            Ok(()) => break,
            Err(e) => {
                metrics
                    .produce_retries
                    .with_label_values(&["at-least-once"])
                    .inc();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "delivery failed; producing the batch again");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    if batch.generation != consumer.context().generation() {
        tracing::info!(
            "batch finished after its partitions were revoked; the new owner re-delivers it"
        );
        return Ok(true);
    }
    let offsets = offsets_list(batch)?;
    if let Err(e) = consumer.store_offsets(&offsets) {
        tracing::warn!(error = %e, "cannot store offsets; the batch will be re-delivered");
    }
    Ok(true)
}

/// Outputs and input offsets in one Kafka transaction. Any failure aborts
/// it and is fatal: the process restarts from the last committed
/// transaction, which is exactly where nothing was lost or duplicated.
async fn write_transaction(
    batch: &ScoredBatch,
    producer: &FutureProducer,
    consumer: &ServiceConsumer,
) -> Result<bool, ClassifierError> {
    if batch.generation != consumer.context().generation() {
        tracing::info!("dropping a batch of revoked partitions; the new owner re-consumes it");
        return Ok(false);
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| ClassifierError::Stage("the consumer has no group metadata".into()))?;
    let timeout = Duration::from_secs(30);
    let result: Result<(), KafkaError> = async {
        producer.begin_transaction()?;
        produce_all(batch, producer).await?;
        let offsets = offsets_list(batch)?;
        tokio::task::block_in_place(|| {
            producer.send_offsets_to_transaction(&offsets, &group, timeout)?;
            producer.commit_transaction(timeout)
        })
    }
    .await;
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = tokio::task::block_in_place(|| producer.abort_transaction(timeout));
            Err(ClassifierError::Transaction(e))
        }
    }
}
