//! The read-only JSON API (documented in openapi.yaml). Aggregates need a sign-in unless
//! `public_aggregates` is on; post texts (narratives' `sample_text`) and review items (authors'
//! pseudonyms, full texts) always do.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::App;
use crate::auth::{caller, Problem, Reader};
use crate::report;
use crate::shared::{now_minute, READY_REBUILT};
use crate::state::Dimension;

/// The committed OpenAPI document, served so clients read what the server obeys.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

impl App {
    pub fn overview(&self) -> report::Overview {
        let ready = self
            .shared
            .health
            .checks()
            .get(READY_REBUILT)
            .copied()
            .unwrap_or(false);
        let lag = self.shared.lag.load(Ordering::Relaxed);
        self.shared
            .read(|view| report::overview(view, now_minute(), lag, ready))
    }
}

pub async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match Reader::of(&app, &headers) {
        Ok(_) => Json(app.overview()).into_response(),
        Err(problem) => problem.json(),
    }
}

/// `?bucket=1m|5m|1h&dimension=platform|category|region|label`, both required.
pub async fn series(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(problem) = Reader::of(&app, &headers) {
        return problem.json();
    }
    let bucket = query.get("bucket").map(String::as_str);
    let Some(&(bucket, minutes)) = report::BUCKETS.iter().find(|(b, _)| Some(*b) == bucket) else {
        return bad_query("bucket must be one of 1m, 5m, 1h");
    };
    let dimension = query.get("dimension").map(String::as_str);
    let Some(dimension) = dimension.and_then(Dimension::parse) else {
        return bad_query("dimension must be one of platform, category, region, label");
    };
    let series = app
        .shared
        .read(|view| report::series(view, bucket, minutes, dimension));
    Json(series).into_response()
}

fn bad_query(message: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "bad_query", message).json()
}

pub async fn histogram(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    aggregate(&app, &headers, report::histogram)
}

pub async fn narratives(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let reader = match Reader::of(&app, &headers) {
        Ok(reader) => reader,
        Err(problem) => return problem.json(),
    };
    let top = app.config.top_narratives;
    let mut narratives = app.shared.read(|view| report::narratives(view, top));
    if !reader.sees_texts() {
        narratives.withhold_texts();
    }
    Json(narratives).into_response()
}

pub async fn requests(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    aggregate(&app, &headers, report::requests)
}

pub async fn dlq(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    aggregate(&app, &headers, report::dlq)
}

/// An aggregate of the view, for whoever may read aggregates.
fn aggregate<T: serde::Serialize>(
    app: &App,
    headers: &HeaderMap,
    of: impl FnOnce(&crate::state::View) -> T,
) -> Response {
    match Reader::of(app, headers) {
        Ok(_) => Json(app.shared.read(of)).into_response(),
        Err(problem) => problem.json(),
    }
}

pub async fn review_items(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(problem) = caller(&app, &headers) {
        return problem.json();
    }
    Json(app.shared.read(report::review_items)).into_response()
}
