//! Every non-2xx answer: a JSON body `{"error": code, "message": ..., "field": ...}` naming
//! what to fix, plus `errors` listing each invalid post of a batch.

use crate::publish::PublishError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patroli_contracts::InvalidInput;
use serde::Serialize;
use std::time::Duration;

/// One invalid item; `index` is its position in a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub error: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ItemError {
    /// The classifier's own validation error, located in the request.
    pub fn from_invalid(index: Option<usize>, invalid: &InvalidInput) -> Self {
        let prefix = index.map(|i| format!("[{i}]")).unwrap_or_default();
        let field = invalid.field().map(|f| match index {
            Some(_) => format!("{prefix}.{f}"),
            None => f.to_owned(),
        });
        let message = match index {
            Some(_) => format!("{prefix}: {}", invalid.detail),
            None => invalid.detail.clone(),
        };
        ItemError {
            index,
            error: invalid.reason.as_str().to_owned(),
            message,
            field,
        }
    }
}

/// Boxed: it travels in every handler's `Result`, which should stay small.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    body: ItemError,
    errors: Vec<ItemError>,
    retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ItemError]>::is_empty")]
    errors: &'a [ItemError],
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            status,
            body: ItemError {
                index: None,
                error: error.to_owned(),
                message: message.into(),
                field: None,
            },
            errors: Vec::new(),
            retry_after: None,
        }))
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.0.body.field = Some(field.into());
        self
    }

    pub fn bad_request(error: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// A 400 for invalid items: the first one on top, all of them (at most 100) in `errors`.
    pub fn invalid_items(mut errors: Vec<ItemError>) -> Self {
        let total = errors.len();
        errors.truncate(100);
        let first = errors.first().cloned().expect("at least one invalid item");
        let mut body = first.clone();
        body.index = None;
        if total > 1 {
            body.message = format!("{} ({total} invalid posts)", first.message);
        }
        ApiError(Box::new(Inner {
            status: StatusCode::BAD_REQUEST,
            body,
            errors: if first.index.is_some() {
                errors
            } else {
                Vec::new()
            },
            retry_after: None,
        }))
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn rate_limited(wait: Duration, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        error.0.retry_after = Some(wait);
        error
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as `Content-Type: application/json`",
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {limit} bytes"),
        )
    }

    /// Why the events of a request of `item`s (a batch when `indexed`) were not written:
    /// a record too large is 413 (a retry cannot help), anything else 503.
    pub fn not_published(error: &PublishError, item: &str, indexed: bool) -> Self {
        const TOO_LARGE: &str = "record_too_large";
        match error {
            PublishError::TooLarge { index, size, max } => {
                let what = if indexed {
                    format!("{item} [{index}]")
                } else {
                    format!("the {item}")
                };
                let error = Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    TOO_LARGE,
                    format!(
                        "{what} would be a {size}-byte Kafka record; the broker accepts at most {max} bytes per record: shorten it (extra fields count too)"
                    ),
                );
                if indexed {
                    error.field(format!("[{index}]"))
                } else {
                    error
                }
            }
            PublishError::RefusedAsTooLarge(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                TOO_LARGE,
                format!(
                    "the broker refused a {item} as too large; shorten it (extra fields count too)"
                ),
            ),
            PublishError::NotAcknowledged { .. } => Self::broker_unavailable(),
        }
    }

    pub fn overloaded(limit: usize) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("the gateway is at its limit of {limit} concurrent requests; retry later"),
        );
        error.0.retry_after = Some(Duration::from_secs(1));
        error
    }

    pub fn broker_unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            "the event broker did not acknowledge every message; retry the same request later",
        );
        error.0.retry_after = Some(Duration::from_secs(5));
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError(error) = self;
        let body = Body {
            error: &error.body.error,
            message: &error.body.message,
            field: error.body.field.as_deref(),
            errors: &error.errors,
        };
        let mut response = (error.status, Json(&body)).into_response();
        let headers = response.headers_mut();
        if error.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = error.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
