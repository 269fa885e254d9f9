//! `POST /v1/posts`: one post (a JSON object) or a batch (an array of them) from a partner.
//! Each post is validated by the classifier's own decoder and forwarded byte for byte, so
//! partners' extra fields survive and nothing accepted here can be dead-lettered later.
//! A batch is all or nothing: one invalid post rejects the request.

use crate::api::{accepted, json_body, trace, App};
use crate::error::{ApiError, ItemError};
use crate::keys::ApiKey;
use crate::limits::retry_after;
use crate::publish::{fingerprint, Outgoing};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use patroli_contracts::{decode_input, topics, ScoringInput};
use serde_json::json;
use serde_json::value::RawValue;
use std::num::NonZeroU32;
use std::sync::Arc;

pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    app.observe("posts", accept(&app, request)).await
}

async fn accept(app: &App, request: Request) -> Result<Response, ApiError> {
    let headers = &request.headers().clone();
    // The key first: an unknown client is refused before its body is read.
    let key = authenticate(app, headers)?;
    let _permit = app.admit()?;
    let body = json_body(request, app.config.max_body_bytes).await?;
    let Batch { items, indexed } = split_batch(&body)?;
    if items.len() > app.config.max_batch_posts {
        // 400, not 413: the batch limit is part of the request schema (`maxItems`).
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_posts",
            format!(
                "the batch has {} posts, at most {} are accepted per request",
                items.len(),
                app.config.max_batch_posts
            ),
        ));
    }
    let posts = validate(app, &items, indexed)?;
    check_platform(&key, &posts, indexed)?;
    let count = NonZeroU32::new(posts.len() as u32).expect("batches are never empty");
    match key.limiter.check_n(count) {
        Ok(Ok(())) => {}
        Ok(Err(not_until)) => {
            return Err(ApiError::rate_limited(
                retry_after(not_until),
                format!(
                    "key `{}` is limited to {} posts/s (burst {})",
                    key.id, key.rate.per_second, key.rate.burst
                ),
            ))
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_posts",
                format!(
                "the batch has {count} posts, more than key `{}` may send at once ({}); split it",
                key.id, key.rate.burst
            ),
            ))
        }
    }
    let ids: Vec<String> = posts.iter().map(|(_, input)| input.post.key()).collect();
    let messages = posts
        .iter()
        .zip(&ids)
        .map(|((bytes, _), id)| Outgoing {
            topic: app.config.posts_topic.clone(),
            key: id.clone(),
            payload: bytes.to_vec(),
            fingerprint: fingerprint(&[bytes]),
        })
        .collect();
    let published = app
        .publisher
        .publish(messages, &trace(headers))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, key = %key.id, "posts not written");
            ApiError::not_published(&e, "post", indexed)
        })?;
    Ok(accepted(json!({
        "accepted": ids.len(),
        "duplicates": published.duplicates,
        "ids": ids,
    })))
}

fn authenticate(app: &App, headers: &HeaderMap) -> Result<Arc<ApiKey>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .ok_or_else(|| {
            ApiError::unauthorized("send your partner key as `Authorization: Bearer <key>`")
        })?;
    app.keys
        .authenticate(presented)
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked key"))
}

struct Batch<'b> {
    /// The exact bytes of each post.
    items: Vec<&'b [u8]>,
    /// The body was an array: errors name posts by index (`[3].text`).
    indexed: bool,
}

/// A body that is not a valid array is judged whole by the classifier's decoder, so the
/// error is the one it would give.
fn split_batch(body: &[u8]) -> Result<Batch<'_>, ApiError> {
    let is_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if is_array {
        if let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(body) {
            if items.is_empty() {
                return Err(ApiError::bad_request(
                    "empty_batch",
                    "the batch holds no posts",
                ));
            }
            return Ok(Batch {
                items: items.into_iter().map(|raw| raw.get().as_bytes()).collect(),
                indexed: true,
            });
        }
    }
    Ok(Batch {
        items: vec![body],
        indexed: false,
    })
}

fn validate<'b>(
    app: &App,
    items: &[&'b [u8]],
    indexed: bool,
) -> Result<Vec<(&'b [u8], ScoringInput)>, ApiError> {
    let mut posts = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, bytes) in items.iter().enumerate() {
        match decode_input(topics::POSTS_RAW, Some(bytes), &app.limits) {
            Ok(input) => posts.push((*bytes, input)),
            Err(invalid) => errors.push(ItemError::from_invalid(indexed.then_some(i), &invalid)),
        }
    }
    if errors.is_empty() {
        Ok(posts)
    } else {
        Err(ApiError::invalid_items(errors))
    }
}

fn check_platform(
    key: &ApiKey,
    posts: &[(&[u8], ScoringInput)],
    indexed: bool,
) -> Result<(), ApiError> {
    let Some((i, (_, input))) = posts
        .iter()
        .enumerate()
        .find(|(_, (_, input))| input.post.platform != key.platform)
    else {
        return Ok(());
    };
    let field = if indexed {
        format!("[{i}].platform")
    } else {
        "platform".to_owned()
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "platform_not_allowed",
        format!(
            "key `{}` may only post as platform `{}`, not `{}`",
            key.id, key.platform, input.post.platform
        ),
    )
    .field(field))
}
