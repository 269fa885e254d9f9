//! `/healthz` (the process answers), `/readyz` (every named readiness check
//! holds: model loaded, broker reachable, partitions assigned ...) and
//! `/metrics` (Prometheus text format) for every service; and who a request's client is.

use axum::http::{HeaderMap, StatusCode};
use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind the health/metrics server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Named readiness checks, plus an optional heartbeat for liveness. A
/// service registers every check it needs as `false` at start, so `/readyz`
/// cannot report ready before each one has actually been satisfied.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<Mutex<BTreeMap<String, bool>>>,
    heartbeat: Arc<Mutex<Option<Heartbeat>>>,
}

#[derive(Clone, Copy)]
struct Heartbeat {
    last: Instant,
    max_age: Duration,
}

impl Health {
    pub fn new(checks: &[&str]) -> Self {
        let health = Health::default();
        for check in checks {
            health.set(check, false);
        }
        health
    }

    pub fn set(&self, check: &str, ok: bool) {
        self.lock().insert(check.to_owned(), ok);
    }

    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|ok| *ok)
    }

    pub fn checks(&self) -> BTreeMap<String, bool> {
        self.lock().clone()
    }

    /// From now on `/healthz` fails when `beat` was not called for
    /// `max_age`: a wedged main loop gets the pod restarted.
    pub fn watch_heartbeat(&self, max_age: Duration) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Some(Heartbeat {
            last: Instant::now(),
            max_age,
        });
    }

    pub fn beat(&self) {
        if let Some(heartbeat) = self
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            heartbeat.last = Instant::now();
        }
    }

    /// `Err` with the silence so far when the heartbeat is overdue.
    pub fn liveness(&self) -> Result<(), Duration> {
        match *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Heartbeat { last, max_age }) if last.elapsed() > max_age => Err(last.elapsed()),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        // A panic elsewhere while holding this lock leaves only booleans
        // behind, which are still meaningful.
        self.checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

/// Binds `addr` (port 0 picks a free port) and serves until `shutdown`.
/// Returns the bound address so tests and logs know where it listens.
pub async fn serve_http(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AppState { registry, health });
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health/metrics server failed");
        }
    });
    tracing::info!(%bound, "health and metrics on http://{bound}/metrics");
    Ok((bound, handle))
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(silence) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stalled: no heartbeat for {}s\n", silence.as_secs()),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let ready = state.health.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "checks": state.health.checks() })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", prometheus::TEXT_FORMAT)],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            e.to_string().into_bytes(),
        ),
    }
}

/// The client address of a request: the socket peer, or behind a trusted ingress
/// (`trust_forwarded_for`) the last `X-Forwarded-For` entry, the one the ingress appended. Earlier
/// entries are whatever the client sent, so when the last one is not an address the peer is
/// used rather than any of them.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = || {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?
            .to_str()
            .ok()?
            .rsplit(',')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    trust_forwarded_for
        .then(forwarded)
        .flatten()
        .unwrap_or(peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PEER: &str = "10.0.0.9:4000";

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_ingress_is_trusted_and_then_its_last_entry() {
        let peer = PEER.parse().unwrap();
        let headers = forwarded(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_ip(&headers, peer, false), ip("10.0.0.9"));
        assert_eq!(client_ip(&headers, peer, true), ip("203.0.113.7"));
        // Two header lines are one list: the ingress's entry is the last of the last line.
        let headers = forwarded(&["6.6.6.6", "198.51.100.1 , 2001:db8::1"]);
        assert_eq!(client_ip(&headers, peer, true), ip("2001:db8::1"));
        // An unreadable last entry never lets a client-sent one through.
        for last in ["6.6.6.6, unknown", "6.6.6.6,", "6.6.6.6, 203.0.113.7:443"] {
            assert_eq!(
                client_ip(&forwarded(&[last]), peer, true),
                ip("10.0.0.9"),
                "{last}"
            );
        }
        assert_eq!(client_ip(&HeaderMap::new(), peer, true), ip("10.0.0.9"));
    }

    proptest! {
        #[test]
        fn only_the_last_entry_counts_and_only_when_trusted(
            // Printable text without commas: each an entry a client made up.
            sent in proptest::collection::vec("[ -+.-~]{0,20}", 0..4),
            last in any::<IpAddr>(),
        ) {
            let peer: SocketAddr = PEER.parse().unwrap();
            let mut entries = sent;
            entries.push(last.to_string());
            let headers = forwarded(&[entries.join(", ").as_str()]);
            prop_assert_eq!(client_ip(&headers, peer, true), last);
            prop_assert_eq!(client_ip(&headers, peer, false), peer.ip());
        }

        #[test]
        fn without_an_address_last_the_peer_is_the_client(
            sent in proptest::collection::vec(any::<IpAddr>(), 0..4),
            junk in "[ -+.-~]{0,20}"
                .prop_filter("not an address", |j| j.trim().parse::<IpAddr>().is_err()),
        ) {
            let peer: SocketAddr = PEER.parse().unwrap();
            let mut entries: Vec<String> = sent.iter().map(IpAddr::to_string).collect();
            entries.push(junk);
            let headers = forwarded(&[entries.join(",").as_str()]);
            prop_assert_eq!(client_ip(&headers, peer, true), peer.ip());
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn readyz_turns_ready_only_when_every_check_holds() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("patroli_test_total", "test").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(3);
        let health = Health::new(&["model_loaded", "partitions_assigned"]);
        let shutdown = CancellationToken::new();
        let (addr, handle) = serve_http(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            health.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();

        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains(r#""model_loaded":false"#), "{body}");
        health.set("model_loaded", true);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        health.set("partitions_assigned", true);
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""ready":true"#), "{body}");

        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("patroli_test_total 3"), "{body}");

        shutdown.cancel();
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn healthz_fails_once_the_heartbeat_is_overdue() {
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let (addr, _) = serve_http(
            "127.0.0.1:0".parse().unwrap(),
            Registry::new(),
            health.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
        health.watch_heartbeat(Duration::from_millis(50));
        health.beat();
        assert_eq!(get(addr, "/healthz").await.0, 200);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            get(addr, "/healthz").await,
            (503, "stalled: no heartbeat for 0s\n".into())
        );
        health.beat();
        assert_eq!(get(addr, "/healthz").await.0, 200);
        shutdown.cancel();
    }
}
