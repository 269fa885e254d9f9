//! Start-up and graceful shutdown of the dashboard: accounts, then its stages under the service
//! harness (health and metrics until the end, a drain deadline): the consumer thread rebuilding
//! the view, account reloads, session expiry, the live stream and the web server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use patroli_runtime::{Harness, Health, Shutdown};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::accounts::{AccountStore, Accounts, AccountsError};
use crate::app::{router, App};
use crate::config::DashboardConfig;
use crate::consume::{self, ConsumeError};
use crate::metrics::Metrics;
use crate::rules::Claims;
use crate::sessions::Sessions;
use crate::shared::{Shared, READY_REBUILT};
use crate::signin;
use crate::state::{Limits, View};
use crate::stream::{self, Feed};
use crate::throttle::Throttle;

/// A consumer thread silent this long (it beats every poll) is wedged: `/healthz` fails.
const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    SigningKey(#[from] patroli_contracts::KeyError),
    #[error(transparent)]
    Http(#[from] patroli_runtime::HttpError),
    #[error("cannot bind the dashboard to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("reading the topics failed: {0}")]
    Consume(#[from] ConsumeError),
    #[error("the web server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Stopped(#[from] patroli_runtime::HarnessError),
}

/// Addresses the dashboard listens on, reported once bound (port 0 picks a free one).
pub struct Bound {
    pub web: SocketAddr,
    pub http: SocketAddr,
}

/// Runs the dashboard until `shutdown`; `on_bound` learns the listening addresses.
pub async fn run(
    config: DashboardConfig,
    shutdown: Shutdown,
    on_bound: impl FnOnce(Bound),
) -> Result<(), DashboardError> {
    config.validate().map_err(DashboardError::Config)?;
    let signer = match &config.decision_signing_key_file {
        Some(path) => {
            let signer = patroli_contracts::DecisionSigner::load(path)?;
            tracing::info!(key_id = signer.key_id(), "decision signing key loaded");
            Some(signer)
        }
        None => {
            tracing::warn!(
                "no decision_signing_key_file configured: the review desk refuses decisions"
            );
            None
        }
    };
    let accounts = match &config.accounts_file {
        Some(path) => {
            let accounts = AccountStore::load(path)?;
            tracing::info!(accounts = accounts.current().len(), path = %path.display(), "dashboard accounts loaded");
            accounts
        }
        None => {
            tracing::warn!("no accounts_file configured: nobody can sign in to the review desk");
            AccountStore::new(Accounts::empty())
        }
    };
    if let Some(header) = &config.trusted_user_header {
        tracing::warn!(%header, "trusting the user name in a request header: only safe behind the proxy that sets it");
    }

    let metrics = Metrics::new();
    let health = Health::new(&[READY_REBUILT]);
    health.watch_heartbeat(HEARTBEAT_MAX_AGE);
    let mut harness = Harness::start(
        &shutdown,
        Duration::from_secs(config.drain_timeout_secs),
        config.http_addr,
        metrics.registry.clone(),
        health.clone(),
    )
    .await?;
    let stop = harness.stop();

    let view = View::new(Limits {
        lookback_minutes: (config.lookback_secs / 60) as i64,
        max_narratives: config.max_review_items,
        max_requests: config.max_requests,
    });
    let shared = Arc::new(Shared::new(view, health, metrics));
    let consumer = consume::create_consumer(&config)?;
    {
        let (config, shared, stop) = (config.clone(), shared.clone(), stop.clone());
        harness.spawn_blocking("consumer", move || {
            consume::run(consumer, config, shared, stop).map_err(DashboardError::Consume)
        });
    }

    let mut producer_config = config.kafka.idempotent_producer("patroli-dashboard");
    producer_config.set("message.timeout.ms", config.produce_timeout_ms.to_string());
    producer_config.set("linger.ms", "1");
    let producer: FutureProducer = producer_config.create()?;
    let app = Arc::new(App {
        sessions: Sessions::new(Duration::from_secs(config.session_ttl_secs)),
        config: config.clone(),
        shared,
        accounts,
        producer: producer.clone(),
        signer,
        csrf_secret: rand::random(),
        password_checks: tokio::sync::Semaphore::new(config.sign_in.max_password_checks),
        throttle: Throttle::new(&config.sign_in, config.trust_forwarded_for),
        feed: Feed::new(config.max_stream_clients),
        deciding: Claims::default(),
        stop: stop.clone(),
    });

    harness.spawn(
        "accounts reload",
        reload_accounts(app.clone(), stop.clone()),
    );
    harness.spawn(
        "session expiry",
        signin::forget_idle(app.clone(), stop.clone()),
    );
    harness.spawn("live stream", stream::publish(app.clone(), stop.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    let web = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    tracing::info!(%web, "dashboard on http://{web}/");
    on_bound(Bound {
        web,
        http: harness.http_addr(),
    });
    // The socket peer is the client the sign-in limits count (see `trust_forwarded_for`).
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    harness.spawn("web", async move {
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        // Decisions answered have been acknowledged; anything else is flushed before exit.
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        served.map_err(DashboardError::Serve)
    });
    harness.run().await?;
    tracing::info!("dashboard stopped cleanly");
    Ok(())
}

/// Re-reads the accounts file every `accounts_reload_ms` until `stop`; a broken file keeps the
/// accounts in force (and is counted and logged).
async fn reload_accounts(app: Arc<App>, stop: CancellationToken) {
    let Some(path) = app.config.accounts_file.clone() else {
        return;
    };
    let metrics = &app.shared.metrics;
    metrics.accounts.set(app.accounts.current().len() as i64);
    let every = Duration::from_millis(app.config.accounts_reload_ms.max(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let (reader, file) = (app.clone(), path.clone());
        let reloaded = tokio::task::spawn_blocking(move || reader.accounts.reload(&file)).await;
        match reloaded {
            Ok(Ok(true)) => {
                let accounts = app.accounts.current();
                metrics.accounts.set(accounts.len() as i64);
                // Sessions of removed accounts and of changed passwords end now, not only at
                // their next request (which refuses them too), so the gauge is true at once.
                let ended = app.sessions.end_unless(|session| {
                    accounts
                        .get(&session.user)
                        .is_some_and(|a| a.credential() == session.credential)
                });
                metrics.sessions.set(app.sessions.active() as i64);
                tracing::info!(
                    accounts = accounts.len(),
                    sessions_ended = ended,
                    "dashboard accounts reloaded"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                metrics.accounts_reload_failures.inc();
                tracing::error!(error = %e, "keeping the previous dashboard accounts");
            }
            Err(e) => tracing::error!(error = %e, "the accounts reload panicked"),
        }
    }
}
