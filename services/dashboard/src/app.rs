//! The web application: shared state of the handlers and the routes.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use patroli_contracts::DecisionSigner;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountStore;
use crate::auth::Problem;
use crate::config::DashboardConfig;
use crate::rules::Claims;
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::stream::Feed;
use crate::throttle::Throttle;
use crate::{api, assets, desk, signin, stream};

pub struct App {
    pub config: DashboardConfig,
    pub shared: Arc<Shared>,
    pub accounts: AccountStore,
    pub sessions: Sessions,
    pub producer: FutureProducer,
    /// Signs every decision; `None` = decisions are refused (no key configured).
    pub signer: Option<DecisionSigner>,
    pub csrf_secret: [u8; 32],
    /// Password checks at once: each argon2 check holds ~19 MiB, so a burst of sign-ins (or a
    /// guessing attack) is refused (503) past it instead of exhausting the pod's memory.
    pub password_checks: tokio::sync::Semaphore,
    pub throttle: Throttle,
    pub feed: Feed,
    /// Narratives a decision is under way for: at most one at a time each.
    pub deciding: Claims,
    /// Ends live streams on shutdown (they would otherwise hold the server open).
    pub stop: CancellationToken,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(desk::overview_page))
        .route("/review", get(desk::review_page))
        .route("/login", get(signin::login_page).post(signin::login))
        .route("/logout", post(desk::logout))
        .route("/review/decisions", post(desk::decide))
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/series", get(api::series))
        .route("/api/v1/scores/histogram", get(api::histogram))
        .route("/api/v1/narratives", get(api::narratives))
        .route("/api/v1/requests", get(api::requests))
        .route("/api/v1/dlq", get(api::dlq))
        .route("/api/v1/review/items", get(api::review_items))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/openapi.yaml", get(api::openapi))
        .route("/assets/{*path}", get(assets::serve))
        .fallback(not_found)
        .layer(axum::middleware::map_response(protect))
        .with_state(app)
}

/// Headers every answer carries: pages are never framed (the review desk's buttons cannot be
/// clickjacked), load scripts and styles from this origin only, and are not content-sniffed.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such page").json()
}

impl Problem {
    /// For API clients.
    pub fn json(&self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }

    /// For people at the review desk.
    pub fn html(&self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::pages::problem(self),
        )
            .into_response()
    }
}
