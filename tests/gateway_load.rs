//! Load from a second process (`patroli load-gateway`) over loopback, bounded in requests and
//! time. Afterwards every post the gateway acknowledged is on the topic exactly once (checked
//! by id) and no post of a refused request is. The report (req/s, p99) is printed for
//! docs/performance.md; speed itself is not asserted.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use common::*;
use gateway::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const KEY: &str = "pk_load_0123456789abcdef0123456789abcdef";
pub const REQUESTS: usize = 20_000;
pub const SECONDS: &str = "30";
pub const INVALID_EVERY: usize = 25;

/// Runs `patroli load-gateway` to completion; returns its report.
pub fn run_load(url: &str, results: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_patroli"))
        .args([
            "load-gateway",
            "--url",
            url,
            "--key",
            KEY,
            "--platform",
            "x",
        ])
        .arg("--results")
        .arg(results)
        .args(extra)
        .output()
        .expect("run patroli load-gateway");
    assert!(
        out.status.success(),
        "load client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("load report is JSON")
}

/// One line of the load client's results.
pub struct Outcome {
    pub request: usize,
    pub status: u16,
    pub ids: Vec<String>,
}

pub fn outcomes(results: &Path) -> Vec<Outcome> {
    std::fs::read_to_string(results)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Outcome {
                request: v["request"].as_u64().unwrap() as usize,
                status: v["status"].as_u64().unwrap() as u16,
                ids: v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|id| id.as_str().unwrap().to_owned())
                    .collect(),
            }
        })
        .collect()
}

/// Post ids by the status their request got.
pub fn ids_by_status(outcomes: &[Outcome]) -> BTreeMap<u16, Vec<&str>> {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for outcome in outcomes {
        by_status
            .entry(outcome.status)
            .or_default()
            .extend(outcome.ids.iter().map(String::as_str));
    }
    by_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_post_is_on_the_topic_and_no_refused_one_is() {
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    let topics = GatewayTopics::create(&brokers, "load").await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        key_entry("load", "x", KEY, Some((1_000_000, 1_000_000))),
    )
    .unwrap();
    let mut gw = GatewayProcess::spawn(&brokers, &topics, keys.path(), &[]);
    gw.wait_ready();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let report = run_load(
        &gw.url(""),
        &results,
        &[
            "--requests",
            &REQUESTS.to_string(),
            "--seconds",
            SECONDS,
            "--concurrency",
            "32",
            "--invalid-every",
            &INVALID_EVERY.to_string(),
            "--id-prefix",
            "load",
        ],
    );
    eprintln!("load report: {report:#}");

    let outcomes = outcomes(&results);
    assert!(!outcomes.is_empty());
    for outcome in &outcomes {
        let planted = outcome.request % INVALID_EVERY == 0;
        let expected = if planted { 400 } else { 202 };
        assert_eq!(outcome.status, expected, "request {}", outcome.request);
    }
    let by_status = ids_by_status(&outcomes);
    let accepted: HashSet<&str> = by_status[&202].iter().copied().collect();
    let records = read_topic(
        &brokers,
        &topics.posts,
        accepted.len(),
        Duration::from_secs(3),
    );
    let mut on_topic: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *on_topic.entry(record.key.as_str()).or_default() += 1;
    }
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !on_topic.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not written: {missing:?}"
    );
    let refused: Vec<_> = by_status[&400]
        .iter()
        .filter(|id| on_topic.contains_key(*id))
        .collect();
    assert!(refused.is_empty(), "refused but written: {refused:?}");
    assert_eq!(records.len(), accepted.len(), "no post written twice");
    assert_eq!(
        gw.metric(r#"patroli_gateway_requests_total{endpoint="posts",status="202"}"#),
        Some(accepted.len() as f64)
    );
}

/// The broker is SIGKILLed under load and restarted on the same data: requests meanwhile get
/// 503 (none is acknowledged without being written), and the gateway serves again once the
/// broker is back, without a restart of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_crash_under_load_gives_503_loses_nothing_and_the_gateway_recovers() {
    let mut broker = start_broker();
    let brokers = broker.bootstrap_servers();
    let topics = GatewayTopics::create(&brokers, "crash").await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        key_entry("load", "x", KEY, Some((1_000_000, 1_000_000))),
    )
    .unwrap();
    let mut gw = GatewayProcess::spawn(&brokers, &topics, keys.path(), &[]);
    gw.wait_ready();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let load = {
        let (url, results) = (gw.url(""), results.clone());
        std::thread::spawn(move || {
            run_load(
                &url,
                &results,
                &[
                    "--requests",
                    "1000000",
                    "--seconds",
                    "40",
                    "--concurrency",
                    "16",
                    "--id-prefix",
                    "crash",
                ],
            )
        })
    };
    let accepted = r#"patroli_gateway_requests_total{endpoint="posts",status="202"}"#;
    let refused = r#"patroli_gateway_requests_total{endpoint="posts",status="503"}"#;
    let wait_for = |series: &str, at_least: f64, limit: Duration| {
        let started = std::time::Instant::now();
        while gw.metric(series).unwrap_or(0.0) < at_least {
            assert!(
                started.elapsed() < limit,
                "{series} stayed below {at_least}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(accepted, 500.0, Duration::from_secs(30));
    broker.kill();
    eprintln!(
        "broker killed after {:?} acknowledged requests",
        gw.metric(accepted)
    );
    wait_for(refused, 10.0, Duration::from_secs(30));
    let before_restart = gw.metric(accepted).unwrap_or(0.0);
    broker.restart().expect("restart the broker on its data");
    eprintln!(
        "broker back; {:?} requests got 503 meanwhile",
        gw.metric(refused)
    );
    let report = load.join().expect("load thread");
    eprintln!("load report: {report:#}");

    // Served again without a gateway restart (by the load if it was still running, else now).
    let started = std::time::Instant::now();
    let url = gw.url("/v1/posts");
    while gw.metric(accepted).unwrap_or(0.0) <= before_restart {
        let body = serde_json::json!({
            "schema_version": 1, "platform": "x", "post_id": "after-restart",
            "text": "pemilu aman", "created_at": "2024-02-14T07:00:00Z", "author": "a",
        });
        post(&url, Some(KEY), "application/json", body.to_string()).await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let outcomes = outcomes(&results);
    let by_status = ids_by_status(&outcomes);
    let statuses: Vec<u16> = by_status.keys().copied().collect();
    assert_eq!(
        statuses,
        [202, 503],
        "acknowledged, or refused during the outage"
    );
    let acknowledged: HashSet<&str> = by_status[&202].iter().copied().collect();
    let records = read_topic(
        &brokers,
        &topics.posts,
        acknowledged.len(),
        Duration::from_secs(3),
    );
    let on_topic: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !on_topic.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not on the topic: {lost:?}"
    );
    let refused_written = by_status[&503]
        .iter()
        .filter(|id| on_topic.contains(*id))
        .count();
    eprintln!(
        "{} acknowledged, all on the topic; {} refused with 503, of which {refused_written} \
         were written before their timeout (a retry is deduplicated downstream by key)",
        acknowledged.len(),
        by_status[&503].len()
    );
}
