//! Builders for the events the dashboard reads, as the services upstream write them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A scored event as the classifier writes it.
pub fn scored(
    i: usize,
    platform: &str,
    category: &str,
    region: Option<&str>,
    score: f32,
) -> (String, Vec<u8>) {
    let flagged = score >= 0.5;
    let label = if flagged {
        "disinformation"
    } else {
        "not_disinformation"
    };
    let categories: BTreeMap<&str, f32> = [(category, score), ("lainnya", 1.0 - score)].into();
    let value = json!({
        "schema_version": 1, "event_id": format!("ev{i}"), "source_kind": "post",
        "post": {"platform": platform, "post_id": format!("p{i}")}, "complaint_id": null,
        "author": format!("anon-{i}"), "created_at": "2024-02-10T08:00:00Z", "url": null,
        "region": region, "lang": "id", "score": score, "label": label, "category": category,
        "categories": categories, "model": {"name": "patroli-e5s1", "version": "2.0.0"},
        "scored_at": "2024-02-10T08:00:01Z",
        "latency": {"processing_ms": 3.0, "end_to_end_ms": null},
        "fingerprint": "0123456789abcdef", "reasons": {"top_tokens": ["dicoblos"]},
        "source": {"topic": "posts.raw.v1", "partition": 0, "offset": i},
    });
    (format!("{platform}:p{i}"), value.to_string().into_bytes())
}

pub fn dlq(i: usize, reason: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "event_id": format!("dlq{i}"),
        "source": {"topic": "posts.raw.v1", "partition": 0, "offset": i},
        "key": null, "original_base64": "bm90IGpzb24=", "reason": reason,
        "detail": "test", "failed_at": "2024-02-10T08:00:00Z",
    });
    (
        format!("posts.raw.v1:0:{i}"),
        value.to_string().into_bytes(),
    )
}

/// Revision `revision` of a narrative's review item.
pub fn review_item(
    narrative: &str,
    revision: u64,
    post_count: u64,
    high: bool,
    text: &str,
) -> (String, Vec<u8>) {
    let coordinated = high.then(|| {
        json!({"distinct_authors": 12, "window_minutes": 60, "window_start": "2024-02-10T07:30:00Z"})
    });
    let value = json!({
        "schema_version": 1, "event_id": format!("{narrative}-{revision}"),
        "narrative_id": narrative, "revision": revision, "status": "pending_review",
        "priority": if high { "high" } else { "normal" }, "coordinated": coordinated,
        "category": "kecurangan", "score": 0.93, "categories": {"kecurangan": 0.93, "lainnya": 0.07},
        "reason_words": ["dicoblos", "sebarkan"], "post_count": post_count,
        "platforms": ["facebook", "x"], "first_seen": "2024-02-10T07:31:00Z",
        "last_seen": format!("2024-02-10T08:{revision:02}:00Z"),
        "sample_posts": [{
            "post": {"platform": "x", "post_id": format!("{narrative}-p1")}, "url": null,
            "author": "anon-1", "created_at": "2024-02-10T07:31:00Z", "score": 0.93,
            "text": text, "protected": false,
        }],
        "policy_version": "test", "updated_at": "2024-02-10T08:00:00Z",
    });
    (narrative.to_owned(), value.to_string().into_bytes())
}

/// Revision `revision` of `narrative`'s review item as the takedown service republishes it,
/// with `status` and sample posts `(post_id on x, protected)`.
pub fn item_with(
    narrative: &str,
    revision: u64,
    status: &str,
    samples: &[(&str, bool)],
) -> (String, Vec<u8>) {
    let (key, value) = review_item(narrative, revision, 2, false, "Pemilu diundur");
    let mut value: Value = serde_json::from_slice(&value).unwrap();
    value["status"] = json!(status);
    value["sample_posts"] = samples
        .iter()
        .map(|(id, protected)| {
            json!({
                "post": {"platform": "x", "post_id": id}, "url": null, "author": "anon-1",
                "created_at": "2024-02-10T07:31:00Z", "score": 0.93, "text": "Pemilu diundur",
                "protected": protected,
            })
        })
        .collect();
    (key, value.to_string().into_bytes())
}

pub fn request(id: &str, platform: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "request_id": id, "platform": platform, "narrative_id": "n1",
        "posts": [{"post_id": "p1", "url": null}], "category": "kecurangan", "score": 0.93,
        "evidence_excerpt": null, "basis": "confirmed", "decision_id": "d1", "coordinated": null,
        "policy_version": "test", "created_at": "2024-02-10T09:00:00Z",
    });
    (platform.to_owned(), value.to_string().into_bytes())
}

pub fn status(request: &str, status: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "request_id": request, "platform": "x", "status": status,
        "reason": null, "reported_by": "x-trust-safety", "reported_at": "2024-02-10T10:00:00Z",
    });
    (request.to_owned(), value.to_string().into_bytes())
}

/// `(key, value)` pairs as `produce` takes them.
pub fn keyed(messages: Vec<(String, Vec<u8>)>) -> Vec<(Option<String>, Option<Vec<u8>>)> {
    messages
        .into_iter()
        .map(|(k, v)| (Some(k), Some(v)))
        .collect()
}
