//! The public HTTP API: routes, shared state and what every endpoint checks the same way
//! (content type, body size, concurrency, timing and status metrics).
//!
//! A handler reads its body only after the cheap checks that can refuse the request (the
//! partner key, the per-address limit) and after taking a concurrency permit: a client
//! without a key cannot make the gateway buffer a megabyte, and slow bodies hold a bounded
//! number of permits.

use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::keys::KeyStore;
use crate::limits::PerIpLimiter;
use crate::metrics::Metrics;
use crate::publish::{Publisher, Trace};
use crate::{complaints, posts};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use patroli_contracts::Limits;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The committed OpenAPI document, served so clients and tests read what the server obeys.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

pub struct App {
    pub config: GatewayConfig,
    pub keys: KeyStore,
    pub per_ip: Arc<PerIpLimiter>,
    pub publisher: Publisher,
    pub metrics: Metrics,
    /// The classifier's limits: what passes here, the classifier scores.
    pub limits: Limits,
    pub reporter_salt: Vec<u8>,
    /// `max_concurrent_requests` permits.
    pub in_flight: Arc<Semaphore>,
}

pub fn router(app: Arc<App>) -> Router {
    let posts_limit = app.config.max_body_bytes;
    let complaints_limit = app.config.complaints.max_body_bytes;
    Router::new()
        .route(
            "/v1/posts",
            post(posts::handle).layer(DefaultBodyLimit::max(posts_limit)),
        )
        .route(
            "/v1/complaints",
            post(complaints::handle).layer(DefaultBodyLimit::max(complaints_limit)),
        )
        .route("/v1/openapi.yaml", get(openapi))
        .fallback(not_found)
        .with_state(app)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

impl App {
    /// Runs `handler` and records its status and duration under `endpoint`.
    pub async fn observe<F>(&self, endpoint: &str, handler: F) -> Response
    where
        F: std::future::Future<Output = Result<Response, ApiError>>,
    {
        let started = Instant::now();
        let response = handler.await.unwrap_or_else(IntoResponse::into_response);
        self.metrics
            .request_seconds
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .requests
            .with_label_values(&[endpoint, response.status().as_str()])
            .inc();
        response
    }
}

impl App {
    /// A permit to answer one request, held until it is answered; 503 when all are taken.
    pub fn admit(&self) -> Result<Admitted, ApiError> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(self.config.max_concurrent_requests))?;
        self.metrics.in_flight.inc();
        Ok(Admitted {
            _permit: permit,
            gauge: self.metrics.in_flight.clone(),
        })
    }
}

/// One admitted request, counted in `patroli_gateway_requests_in_flight` until dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// 415 unless the body is declared JSON (checked before a byte of it is read), then 413 if it
/// is over `limit` (the route's `DefaultBodyLimit`, stopping the read there).
pub async fn json_body(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    Bytes::from_request(request, &())
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(limit),
            status => ApiError::new(status, "unreadable_body", rejection.body_text()),
        })
}

/// Trace headers for the events of one request: the caller's `X-Request-Id` if it sent a
/// sane one, else a fresh id.
pub fn trace(headers: &HeaderMap) -> Trace {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
    };
    Trace {
        trace_id: header("x-request-id").unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
        traceparent: header("traceparent"),
        ingest_time_ms: (time_now_ms()),
    }
}

fn time_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub fn accepted(body: serde_json::Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
