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
