//! Wiring: the three stages of the read-score-write loop joined by bounded
//! channels, and the service around them (health, metrics, start-up and
//! shutdown):
//!
//! 1. poll ([`crate::poll`]): receive, decode, tokenize, batch;
//! 2. score ([`crate::score`]): the model on tokio's blocking pool;
//! 3. write ([`crate::write`]): produce outputs, then make input offsets
//!    durable.
//!
//! Rebalances ([`crate::rebalance`]) drain in-flight batches before the
//! partitions go.

use crate::config::{ClassifierConfig, DeliveryMode};
use crate::lag::report_lag;
use crate::metrics::Metrics;
use crate::poll::{poll_loop, Batch, Poller};
use crate::rebalance::{commit_stored, InFlight, ServiceConsumer, ServiceContext, READY_ASSIGNED};
use crate::score::{score_batch, score_stage, ScoredBatch};
use crate::write::{write_stage, Writer, READY_OUTPUT};
use futures::FutureExt;
use patroli_contracts::ModelRef;
use patroli_inference::{Classifier, InferenceOptions};
use patroli_runtime::{serve_http, Health};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const READY_MODEL: &str = "model_loaded";
const READY_BROKER: &str = "broker_reachable";

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Http(#[from] patroli_runtime::HttpError),
    #[error("cannot load the model: {0}")]
    Model(#[from] patroli_inference::ModelError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("transaction failed, the batch will be re-consumed after restart: {0}")]
    Transaction(KafkaError),
    #[error("a pipeline stage stopped unexpectedly: {0}")]
    Stage(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "the broker refuses the classifier's output for good, check the topic and its ACLs: {0}"
    )]
    OutputRefused(KafkaError),
    #[error(
        "the broker rejects even the smallest dead letter for the input at {source_key}: {error}"
    )]
    Unwritable {
        source_key: String,
        error: KafkaError,
    },
}

/// Runs the classifier until `shutdown` is cancelled (then drains and
/// commits) or a fatal error occurs.
pub async fn run(
    config: ClassifierConfig,
    shutdown: CancellationToken,
) -> Result<(), ClassifierError> {
    check_config(&config)?;
    let metrics = Metrics::new();
    let health = Health::new(&[READY_MODEL, READY_BROKER, READY_ASSIGNED, READY_OUTPUT]);
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
        int8: None,
    };
    let model_dir = patroli_inference::locate_model_dir(&config.model_dir)?;
    let classifier = tokio::task::spawn_blocking(move || Classifier::load(&model_dir, &options))
        .await
        .map_err(|e| ClassifierError::Stage(e.to_string()))??;
    let spec = classifier.spec();
    patroli_contracts::taxonomy::check_model_categories(
        &spec.categories,
        &spec.disinformation_categories,
    )
    .map_err(|why| {
        ClassifierError::Config(format!("model {}: {why}", config.model_dir.display()))
    })?;
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
    tracing::info!(model = %model.name, version = %model.version, threads = classifier.threads(), "model loaded");

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
    metrics
        .claims_archive
        .set(classifier.claim_count().unwrap_or(0) as i64);
    // Posts are matched against every known claim from the first one on.
    let claims_stop = shutdown.child_token();
    let _stop_claims_on_return = claims_stop.clone().drop_guard();
    let claims = crate::claims::catch_up_then_follow(
        &config,
        classifier.clone(),
        metrics.clone(),
        claims_stop.clone(),
    )
    .await?;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    health.set(READY_OUTPUT, true);
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
    let score = {
        let (classifier, config, metrics) = (classifier.clone(), config.clone(), metrics.clone());
        move |batch| score_batch(&classifier, batch, &model, &config, &metrics)
    };
    let scorer = spawn_stage("scorer", &stop, score_stage(batch_rx, scored_tx, score));
    let writer = spawn_stage(
        "writer",
        &stop,
        write_stage(
            scored_rx,
            Writer {
                producer: producer.clone(),
                consumer: consumer.clone(),
                in_flight: in_flight.clone(),
                delivery: config.delivery,
                metrics: metrics.clone(),
                health: health.clone(),
                dlq_topic: config.dlq_topic.clone(),
            },
            stop.clone(),
        ),
    );

    let lag = tokio::spawn(report_lag(
        consumer.clone(),
        metrics.clone(),
        Duration::from_millis(config.lag_refresh_ms),
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

    let _ = lag.await;
    let scored = scorer.await;
    let written = writer.await;
    if config.delivery == DeliveryMode::AtLeastOnce {
        if let Err(e) = commit_stored(consumer.as_ref()) {
            tracing::warn!(error = %e, "final commit failed; the last batches will be re-delivered");
        }
    }
    consumer.unsubscribe();
    claims_stop.cancel();
    if let Some(follower) = claims {
        let _ = follower.await;
    }
    let _ = producer.flush(Duration::from_secs(10));
    http_stop.cancel();
    let _ = http.await;
    scored.map_err(|e| ClassifierError::Stage(e.to_string()))??;
    written.map_err(|e| ClassifierError::Stage(e.to_string()))??;
    tracing::info!("classifier stopped cleanly");
    Ok(())
}

/// Runs one stage of the pipeline as its own task. A stage that fails or
/// panics cancels `stop`, so the poll loop and with it every other stage
/// ends, and the service exits with the stage's error.
fn spawn_stage<F>(
    name: &'static str,
    stop: &CancellationToken,
    stage: F,
) -> tokio::task::JoinHandle<Result<(), ClassifierError>>
where
    F: std::future::Future<Output = Result<(), ClassifierError>> + Send + 'static,
{
    let stop = stop.clone();
    tokio::spawn(async move {
        let result = match AssertUnwindSafe(stage).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(ClassifierError::Stage(format!(
                "the {name} panicked: {}",
                panic_message(panic.as_ref())
            ))),
        };
        if let Err(e) = &result {
            tracing::error!(stage = name, error = %e, "pipeline stage failed; stopping");
            stop.cancel();
        }
        result
    })
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Settings the service cannot honour are refused before anything starts.
fn check_config(config: &ClassifierConfig) -> Result<(), ClassifierError> {
    if let Some(strategy) = config.kafka.extra.get("partition.assignment.strategy") {
        if strategy
            .split(',')
            .any(|s| s.trim() == "cooperative-sticky")
        {
            return Err(ClassifierError::Config(format!(
                "kafka.extra sets partition.assignment.strategy = {strategy:?}, but the \
                 classifier drains, pauses and drops queued work for its whole assignment at \
                 once, which is only correct with eager rebalancing; use \"range\" or \
                 \"roundrobin\" (or remove the setting)"
            )));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Any stage that panics ends the whole service with an error, never
    /// with a clean stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_scorer_stops_the_service_with_an_error() {
        let stop = CancellationToken::new();
        let (batch_tx, batch_rx) = mpsc::channel(1);
        let (scored_tx, mut scored_rx) = mpsc::channel(1);
        let scorer = spawn_stage(
            "scorer",
            &stop,
            score_stage(batch_rx, scored_tx, |_: Batch| -> ScoredBatch {
                panic!("boom")
            }),
        );
        batch_tx
            .send(Batch {
                items: Vec::new(),
                generation: 0,
            })
            .await
            .expect("scorer is running");
        let failed = scorer.await.unwrap().expect_err("a panic is a failure");
        assert_eq!(
            failed.to_string(),
            "a pipeline stage stopped unexpectedly: the scorer panicked: boom"
        );
        assert!(stop.is_cancelled(), "the poll loop must stop too");
        assert!(scored_rx.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_or_failing_stage_cancels_the_others() {
        let stop = CancellationToken::new();
        async fn on_fire() -> Result<(), ClassifierError> {
            panic!("disk on fire")
        }
        let writer = spawn_stage("writer", &stop, on_fire());
        assert_eq!(
            writer.await.unwrap().unwrap_err().to_string(),
            "a pipeline stage stopped unexpectedly: the writer panicked: disk on fire"
        );
        assert!(stop.is_cancelled());

        let stop = CancellationToken::new();
        let failing = spawn_stage("writer", &stop, async {
            Err(ClassifierError::Stage("nope".into()))
        });
        assert!(failing.await.unwrap().is_err());
        assert!(stop.is_cancelled());

        let stop = CancellationToken::new();
        let fine = spawn_stage("writer", &stop, async { Ok(()) });
        assert!(fine.await.unwrap().is_ok());
        assert!(!stop.is_cancelled(), "a clean end stops nothing");
    }

    /// Drain and pause work on the whole assignment at once, which only
    /// eager rebalancing matches; cooperative-sticky is refused up front.
    #[tokio::test]
    async fn cooperative_sticky_assignment_is_refused_at_start_up() {
        let mut config = ClassifierConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            ..ClassifierConfig::default()
        };
        config.kafka.extra.insert(
            "partition.assignment.strategy".into(),
            "cooperative-sticky".into(),
        );
        let refused = run(config, CancellationToken::new()).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "invalid configuration: kafka.extra sets partition.assignment.strategy = \
             \"cooperative-sticky\", but the classifier drains, pauses and drops queued work \
             for its whole assignment at once, which is only correct with eager rebalancing; \
             use \"range\" or \"roundrobin\" (or remove the setting)"
        );
    }
}
