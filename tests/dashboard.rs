//! The dashboard on Apache Kafka: known events on its six topics give exactly the expected
//! numbers on every API endpoint, new events show up live, and a restarted dashboard (which
//! rebuilds its view from the topics) shows the very same numbers. In the same binary (one
//! broker): the review desk (dashboard/desk.rs), one decision per narrative and releasing held
//! copies (dashboard/decisions.rs), sign-in limits and who sees post texts
//! (dashboard/signin.rs), the OpenAPI document checked by schemathesis (dashboard/openapi.rs)
//! and state older than the look-back surviving a restart (dashboard/restart.rs).

mod common;
#[path = "dashboard/decisions.rs"]
mod decisions;
#[path = "dashboard/desk.rs"]
mod desk;
#[path = "common/gateway.rs"]
mod gateway;
#[path = "common/dashboard.rs"]
mod harness;
#[path = "dashboard/openapi.rs"]
mod openapi;
#[path = "dashboard/restart.rs"]
mod restart;
#[path = "dashboard/signin.rs"]
mod signin;

use std::collections::BTreeMap;

use common::*;
use harness::*;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

/// (platform, category, region, score); a score of 0.5 or more is labelled disinformation.
const POSTS: [(&str, &str, Option<&str>, f32); 12] = [
    ("x", "kecurangan", Some("DKI Jakarta"), 0.95),
    ("x", "kecurangan", Some("DKI Jakarta"), 0.85),
    ("x", "hoaks_jadwal", Some("Jawa Barat"), 0.72),
    ("x", "lainnya", Some("DKI Jakarta"), 0.05),
    ("x", "lainnya", None, 0.15),
    ("facebook", "kecurangan", Some("Jawa Barat"), 0.91),
    ("facebook", "lainnya", Some("Jawa Barat"), 0.25),
    ("facebook", "lainnya", None, 0.35),
    ("facebook", "lainnya", Some("DKI Jakarta"), 0.45),
    ("tiktok", "hoaks_jadwal", Some("DKI Jakarta"), 0.55),
    ("tiktok", "lainnya", Some("Jawa Barat"), 0.02),
    ("tiktok", "lainnya", Some("Jawa Barat"), 0.12),
];

pub async fn feed(producer: &FutureProducer, topics: &DashboardTopics) {
    let mut scored_messages: Vec<_> = POSTS
        .iter()
        .enumerate()
        .map(|(i, (platform, category, region, score))| {
            scored(i, platform, category, *region, *score)
        })
        .collect();
    // Not a scored event: counted as invalid, never as a post.
    scored_messages.push(("x:broken".into(), b"not json".to_vec()));
    // A future contract version it cannot know the meaning of: also invalid, not counted.
    let (key, future) = scored(99, "x", "kecurangan", None, 0.9);
    let future = String::from_utf8(future)
        .unwrap()
        .replace("\"schema_version\":1", "\"schema_version\":2");
    scored_messages.push((key, future.into_bytes()));
    produce(producer, &topics.scored, &keyed(scored_messages)).await;
    let dead = vec![
        dlq(1, "not_json"),
        dlq(2, "not_json"),
        dlq(3, "text_too_long"),
    ];
    produce(producer, &topics.dlq, &keyed(dead)).await;
    // n1's second revision arrives first: the view keeps the higher revision.
    let items = vec![
        review_item("n1", 2, 5, false, "Surat suara sudah dicoblos, sebarkan!"),
        review_item("n1", 1, 3, false, "Surat suara sudah dicoblos"),
        review_item("n2", 1, 2, true, "Pemilu diundur, sebarkan ke keluarga"),
    ];
    produce(producer, &topics.review, &keyed(items)).await;
    let requests = vec![
        request("r1", "x"),
        request("r2", "facebook"),
        request("r3", "tiktok"),
    ];
    produce(producer, &topics.requests, &keyed(requests)).await;
    // r9's request is outside the window: its status still counts, under that status.
    let statuses = vec![
        status("r1", "acknowledged"),
        status("r2", "acknowledged"),
        status("r2", "removed"),
        status("r9", "rejected"),
    ];
    produce(producer, &topics.status, &keyed(statuses)).await;
}

/// Every endpoint's answer, without what depends on the clock (window, throughput, lag,
/// bucket starts): series are summed over their buckets.
async fn numbers(dash: &DashboardProcess) -> Value {
    let mut overview = dash.json("/api/v1/overview").await;
    for volatile in ["window", "throughput", "consumer_lag"] {
        overview.as_object_mut().unwrap().remove(volatile);
    }
    let mut series = serde_json::Map::new();
    for dimension in ["platform", "category", "region", "label"] {
        let answer = dash
            .json(&format!("/api/v1/series?bucket=1h&dimension={dimension}"))
            .await;
        assert_eq!(answer["bucket"], "1h");
        assert_eq!(answer["dimension"], dimension);
        series.insert(dimension.into(), summed(&answer));
    }
    json!({
        "overview": overview,
        "series": series,
        "histogram": dash.json("/api/v1/scores/histogram").await,
        "narratives": dash.json("/api/v1/narratives").await,
        "requests": dash.json("/api/v1/requests").await,
        "dlq": dash.json("/api/v1/dlq").await,
    })
}

/// `{value: [posts, flagged]}` over all of a series' buckets.
fn summed(series: &Value) -> Value {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for point in series["points"].as_array().unwrap() {
        for (value, count) in point["values"].as_object().unwrap() {
            let total = totals.entry(value.clone()).or_default();
            total.0 += count["posts"].as_u64().unwrap();
            total.1 += count["flagged"].as_u64().unwrap();
        }
    }
    json!(totals)
}

fn bins(counts: [u64; 10]) -> Value {
    let bins: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, count)| json!({"from": i as f64 / 10.0, "to": (i + 1) as f64 / 10.0, "count": count}))
        .collect();
    json!({"total": counts.iter().sum::<u64>(), "bins": bins})
}

/// As a reader who has not signed in sees it: without the sample post's text.
fn narrative(id: &str, priority: &str, posts: u64, last_seen: &str) -> Value {
    json!({
        "narrative_id": id, "status": "pending_review", "priority": priority,
        "category": "kecurangan", "score": 0.93, "post_count": posts,
        "platforms": ["facebook", "x"], "first_seen": "2024-02-10T07:31:00Z",
        "last_seen": last_seen,
    })
}

/// Aggregates for readers who have not signed in (off by default).
const PUBLIC: [(&str, &str); 1] = [("PATROLI_PUBLIC_AGGREGATES", "true")];

fn expected(extra: bool) -> Value {
    let (posts, flagged) = if extra { (14, 6) } else { (12, 5) };
    let mut platform = json!({"facebook": [4, 1], "tiktok": [3, 1], "x": [5, 3]});
    let mut category = json!({"hoaks_jadwal": [2, 2], "kecurangan": [3, 3], "lainnya": [7, 0]});
    let mut region = json!({"DKI Jakarta": [5, 3], "Jawa Barat": [5, 2], "unknown": [2, 0]});
    let mut label = json!({"disinformation": [5, 5], "not_disinformation": [7, 0]});
    let mut histogram = [2, 2, 1, 1, 1, 1, 0, 1, 1, 2];
    if extra {
        platform = json!({"facebook": [4, 1], "tiktok": [4, 2], "x": [6, 3]});
        category = json!({"hoaks_jadwal": [2, 2], "kecurangan": [4, 4], "lainnya": [8, 0]});
        region = json!({"DKI Jakarta": [6, 3], "Jawa Barat": [5, 2], "unknown": [3, 1]});
        label = json!({"disinformation": [6, 6], "not_disinformation": [8, 0]});
        histogram = [2, 2, 1, 2, 1, 1, 0, 1, 1, 3];
    }
    json!({
        "overview": {
            "posts_scored": posts, "posts_flagged": flagged,
            "share_flagged": flagged as f64 / posts as f64,
            "dlq_events": 3, "invalid_events": 2,
            "model": {"name": "patroli-e5s1", "version": "2.0.0"},
            "ready": true,
            "review": {"awaiting": 2, "high_priority": 1, "decided": 0},
            "requests": 4,
        },
        "series": {"platform": platform, "category": category, "region": region, "label": label},
        "histogram": bins(histogram),
        "narratives": {"narratives": [
            narrative("n1", "normal", 5, "2024-02-10T08:02:00Z"),
            narrative("n2", "high", 2, "2024-02-10T08:01:00Z"),
        ]},
        "requests": {"total": 4, "by_state": {"acknowledged": 1, "rejected": 1, "removed": 1, "requested": 1}},
        "dlq": {"total": 3, "by_reason": {"not_json": 2, "text_too_long": 1}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_exactly_the_topics_numbers_live_and_after_a_restart() {
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-numbers").await;
    let producer = Stream::standard(&brokers).producer();
    feed(&producer, &topics).await;

    let mut dash = DashboardProcess::spawn(&brokers, &topics, None, &PUBLIC);
    dash.wait_ready();
    assert_eq!(numbers(&dash).await, expected(false));

    // Live: two more posts arrive while it runs.
    let more = vec![
        scored(12, "x", "lainnya", Some("DKI Jakarta"), 0.3),
        scored(13, "tiktok", "kecurangan", None, 0.99),
    ];
    produce(&producer, &topics.scored, &keyed(more)).await;
    dash.wait_json("/api/v1/overview", |o| o["posts_scored"] == 14)
        .await;
    let live = numbers(&dash).await;
    assert_eq!(live, expected(true));

    // The API refuses what it does not know, in JSON.
    let bad = dash
        .get("/api/v1/series?bucket=2m&dimension=platform", None)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json(),
        json!({"error": "bad_query", "message": "bucket must be one of 1m, 5m, 1h"})
    );
    let bad = dash.get("/api/v1/series?bucket=1m", None).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["message"],
        "dimension must be one of platform, category, region, label"
    );
    let items = dash.get("/api/v1/review/items", None).await;
    assert_eq!(items.status, 401);
    assert_eq!(
        items.json(),
        json!({"error": "sign_in_required", "message": "sign in first"})
    );

    // The live stream sends a snapshot at once, and a browser still connected to it does not
    // hold up shutdown.
    let mut stream = reqwest::get(dash.url("/api/v1/stream")).await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&first).starts_with("event: snapshot\ndata: {\"overview\":"),
        "{first:?}"
    );
    assert!(
        dash.terminate().success(),
        "SIGTERM ends the dashboard cleanly"
    );
    drop(stream);
    let mut restarted = DashboardProcess::spawn(&brokers, &topics, None, &PUBLIC);
    restarted.wait_ready();
    assert_eq!(numbers(&restarted).await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_topics_are_rebuilt_at_once() {
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-empty").await;
    let mut dash = DashboardProcess::spawn(&brokers, &topics, None, &PUBLIC);
    dash.wait_ready();
    let overview = dash.json("/api/v1/overview").await;
    assert_eq!(overview["posts_scored"], 0);
    assert_eq!(overview["ready"], true);
    assert_eq!(overview["model"], Value::Null);
    assert_eq!(
        dash.json("/api/v1/requests").await,
        json!({"total": 0, "by_state": {"acknowledged": 0, "rejected": 0, "removed": 0, "requested": 0}})
    );
}

#[test]
fn dashboard_user_prints_an_entry_the_dashboard_accepts() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let run = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_patroli"))
            .args(["dashboard-user", "--user", "rina", "--role", "reviewer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("a long enough password");
    assert!(out.status.success());
    let entry = String::from_utf8(out.stdout).unwrap();
    assert!(entry.starts_with("[[users]]\nuser = \"rina\"\npassword_hash = \"$argon2id$"));
    assert!(entry.ends_with("\"\nrole = \"reviewer\"\n"), "{entry}");
    let accounts =
        patroli_dashboard::Accounts::parse(&entry, std::path::Path::new("accounts.toml")).unwrap();
    let account = accounts.verify("rina", "a long enough password").unwrap();
    assert_eq!(account.role, patroli_dashboard::Role::Reviewer);
    assert!(accounts.verify("rina", "a long enough passwor").is_none());

    let short = run("short");
    assert!(!short.status.success());
    assert_eq!(
        String::from_utf8_lossy(&short.stderr).lines().next(),
        Some("Error: the password must be at least 12 characters")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_after_start_up_is_waited_for() {
    let brokers = shared_brokers();
    let mut topics = DashboardTopics::create(&brokers, "dash-late").await;
    topics.status = format!("{}.late", topics.status);
    let mut dash = DashboardProcess::spawn(&brokers, &topics, None, &[]);
    // It waits (unready) instead of exiting over the missing topic.
    dash.wait_readyz(503, std::time::Duration::from_secs(60));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        http_get(dash.http_port, "/readyz").map(|(s, _)| s),
        Some(503)
    );
    patroli_runtime::ensure_topics(&kafka(&brokers), &[(topics.status.as_str(), 1)])
        .await
        .unwrap();
    dash.wait_ready();
}
