//! Start-up of the gateway and its stages under the service harness (health and metrics until
//! the end, a drain deadline): background duties (key reloads, broker probe, limiter
//! housekeeping) and the API server.

use crate::api::{router, App};
use crate::config::GatewayConfig;
use crate::keys::{KeyStore, Reload};
use crate::limits::PerIpLimiter;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use patroli_contracts::Limits;
use patroli_runtime::{Harness, Health, Shutdown};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const READY_BROKER: &str = "broker_reachable";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),
    #[error(transparent)]
    Http(#[from] patroli_runtime::HttpError),
    #[error("cannot bind the API to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the producer failed fatally; restart with a fresh one")]
    FatalProducer,
    #[error("the API server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Stopped(#[from] patroli_runtime::HarnessError),
}

/// Addresses the gateway listens on, reported once bound (port 0 picks a free one).
pub struct Bound {
    pub api: SocketAddr,
    pub http: SocketAddr,
}

/// Runs the gateway until `shutdown`; `on_bound` learns the listening addresses.
pub async fn run(
    config: GatewayConfig,
    shutdown: Shutdown,
    on_bound: impl FnOnce(Bound),
) -> Result<(), GatewayError> {
    config.validate().map_err(GatewayError::Config)?;
    let metrics = Metrics::new();
    let health = Health::new(&[READY_BROKER]);
    let mut harness = Harness::start(
        &shutdown,
        Duration::from_secs(config.drain_timeout_secs),
        config.http_addr,
        metrics.registry.clone(),
        health.clone(),
    )
    .await?;

    let keys = KeyStore::new(config.default_rate);
    match &config.keys_file {
        Some(path) => {
            keys.reload(path)?;
            tracing::info!(keys = keys.len(), path = %path.display(), "partner keys loaded");
        }
        None => tracing::warn!("no keys_file configured: every POST /v1/posts gets 401"),
    }
    metrics.keys.set(keys.len() as i64);
    // Without a keys file there is nothing to be invalid.
    metrics.keys_file_valid.set(1);

    let mut producer_config = config.kafka.idempotent_producer("patroli-gateway");
    // A request must not hang for librdkafka's default minute when the broker is gone:
    // after this long its messages fail and the client gets 503.
    producer_config.set("message.timeout.ms", config.produce_timeout_ms.to_string());
    // Each request waits for its acknowledgement; lingering only adds latency.
    producer_config.set("linger.ms", "1");
    // The limit the publisher checks records against, so librdkafka never refuses one alone.
    producer_config.set("message.max.bytes", config.max_message_bytes.to_string());
    let producer: FutureProducer = producer_config.create()?;
    let fatal = CancellationToken::new();
    let salt = if config.reporter_salt.is_empty() {
        tracing::warn!("reporter_salt is empty: reporter pseudonyms change with every restart");
        rand::random::<[u8; 32]>().to_vec()
    } else {
        config.reporter_salt.as_bytes().to_vec()
    };
    let per_ip = PerIpLimiter::new(
        config.complaints.per_ip_per_minute,
        config.complaints.per_ip_burst,
        config.trust_forwarded_for,
    )
    .ok_or_else(|| GatewayError::Config("complaint limits must be at least 1".into()))?;
    let app = Arc::new(App {
        limits: Limits {
            max_text_bytes: config.max_text_bytes,
        },
        publisher: Publisher::new(
            producer.clone(),
            Duration::from_secs(config.dedup_window_secs),
            config.dedup_capacity,
            config.max_message_bytes,
            metrics.clone(),
            fatal.clone(),
        ),
        keys: keys.clone(),
        per_ip: per_ip.clone(),
        metrics: metrics.clone(),
        reporter_salt: salt,
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
        config: config.clone(),
    });

    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: config.listen_addr,
        source,
    })?;
    tracing::info!(%api_addr, "gateway API on http://{api_addr}/v1/");
    on_bound(Bound {
        api: api_addr,
        http: harness.http_addr(),
    });

    let stop = harness.stop();
    harness.spawn(
        "duties",
        background(
            config.clone(),
            keys,
            per_ip,
            producer.clone(),
            health,
            metrics,
            stop.clone(),
        ),
    );
    harness.spawn("api", async move {
        let serving = {
            let fatal = fatal.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = fatal.cancelled() => {}
                }
            }
        };
        let served = axum::serve(
            listener,
            router(app).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(serving)
        .await;
        // Requests in flight have had their answers; anything left is flushed before exit.
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        served.map_err(GatewayError::Serve)?;
        if fatal.is_cancelled() {
            return Err(GatewayError::FatalProducer);
        }
        Ok(())
    });
    harness.run().await?;
    tracing::info!("gateway stopped cleanly");
    Ok(())
}

async fn background(
    config: GatewayConfig,
    keys: KeyStore,
    per_ip: Arc<PerIpLimiter>,
    producer: FutureProducer,
    health: Health,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut reload = tokio::time::interval(Duration::from_millis(config.keys_reload_ms.max(100)));
    let mut probe = tokio::time::interval(Duration::from_secs(5));
    let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = reload.tick() => {
                if let Some(path) = &config.keys_file {
                    match keys.reload(path) {
                        Ok(reload) => {
                            if reload == Reload::Loaded {
                                tracing::info!(keys = keys.len(), "partner keys reloaded");
                            }
                            metrics.keys_file_valid.set(1);
                        }
                        Err(e) => {
                            metrics.keys_file_valid.set(0);
                            if !e.repeated() {
                                metrics.key_reload_failures.inc();
                                tracing::error!(error = %e, "keeping the last valid partner keys");
                            }
                        }
                    }
                    metrics.keys.set(keys.len() as i64);
                }
            }
            _ = probe.tick() => {
                let p = producer.clone();
                let reachable = tokio::task::spawn_blocking(move || {
                    p.client().fetch_metadata(None, Duration::from_secs(3)).is_ok()
                })
                .await
                .unwrap_or(false);
                health.set(READY_BROKER, reachable);
            }
            _ = housekeeping.tick() => per_ip.forget_idle(),
        }
    }
}
