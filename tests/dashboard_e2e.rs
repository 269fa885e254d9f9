//! The dashboard end to end in real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from tests/e2e, installed by `npm ci`): the overview counts change as this
//! test produces events, a reviewer signs in and confirms a narrative, then releases the
//! protected copy the takedown service held back after that confirmation; both decisions are
//! then read back from review.decisions.v1. Screenshots land in target/e2e-artifacts/.

mod common;
#[path = "common/gateway.rs"]
mod gateway;
#[path = "common/dashboard.rs"]
mod harness;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use harness::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const PLATFORMS: [&str; 3] = ["x", "facebook", "tiktok"];
const CATEGORIES: [&str; 3] = ["kecurangan", "hoaks_jadwal", "lainnya"];
const REGIONS: [Option<&str>; 3] = [Some("DKI Jakarta"), Some("Jawa Barat"), None];

/// Posts `range`, spread over platforms, categories, regions and scores.
fn posts(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let score = ((i * 37) % 100) as f32 / 100.0;
            scored(
                i,
                PLATFORMS[i % 3],
                CATEGORIES[i % 3],
                REGIONS[i % 3 / 2 + i % 2],
                score,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_confirms_a_narrative_and_releases_its_held_copy_in_headless_chromium() {
    let e2e = repo_root().join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/e2e first (tests/run.sh does)"
    );
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-e2e").await;
    let producer = Stream::standard(&brokers).producer();
    produce(&producer, &topics.scored, &keyed(posts(0..40))).await;
    let dead = vec![
        dlq(1, "not_json"),
        dlq(2, "text_too_long"),
        dlq(3, "not_json"),
    ];
    produce(&producer, &topics.dlq, &keyed(dead)).await;
    let items = vec![
        review_item(
            "n1",
            1,
            12,
            true,
            "Surat suara sudah DICOBLOS di TPS 05, sebarkan sebelum dihapus!",
        ),
        review_item(
            "n2",
            1,
            3,
            false,
            "Pemilu diundur ke 21 Februari, sebarkan ke keluarga",
        ),
    ];
    produce(&producer, &topics.review, &keyed(items)).await;
    produce(
        &producer,
        &topics.requests,
        &keyed(vec![request("r1", "x"), request("r2", "tiktok")]),
    )
    .await;
    produce(
        &producer,
        &topics.status,
        &keyed(vec![status("r1", "removed")]),
    )
    .await;

    let accounts = accounts_file(&[("rina", "rina-password-1", "reviewer")]);
    // The browser looks at the overview before it signs in.
    let public = [("PATROLI_PUBLIC_AGGREGATES", "true")];
    let mut dash = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &public);
    dash.wait_ready();

    let artifacts = repo_root().join("target/e2e-artifacts");
    let mut node = tokio::process::Command::new("node")
        .arg(e2e.join("dashboard.mjs"))
        .arg(dash.url(""))
        .arg(&artifacts)
        .env("E2E_USER", "rina")
        .env("E2E_PASSWORD", "rina-password-1")
        .env("E2E_NARRATIVE", "n1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (Debian's nodejs)");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("read the script's output") {
            if line.starts_with("overview ") {
                // The browser shows the first numbers: now more posts arrive.
                produce(&producer, &topics.scored, &keyed(posts(40..55))).await;
            }
            if line.starts_with("decided ") {
                // The takedown service confirms n1, holding back a copy from a protected source.
                produce(
                    &producer,
                    &topics.review,
                    &keyed(vec![n1_holding_a_protected_copy()]),
                )
                .await;
            }
            said.push(line);
        }
        node.wait().await.expect("wait for node")
    };
    let exit = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser script finished in time");
    assert!(
        exit.success(),
        "the browser script failed after {said:?} (see {})",
        artifacts.display()
    );
    assert_eq!(said.len(), 5, "{said:?}");
    assert_eq!(said[0], "overview 40");
    let changed: u64 = said[1]
        .strip_prefix("overview-changed ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said:?}"));
    assert!((41..=55).contains(&changed), "{said:?}");
    assert_eq!(said[2], "decided n1");
    assert_eq!(
        said[3],
        "held Held back (protected sources, not requested until released): x:n1-p2"
    );
    assert_eq!(said[4], "released n1");

    assert_decisions_on_n1(
        &brokers,
        &topics.decisions,
        "Checked with KPU: these ballots are fake",
        true,
    );
    for shot in [
        "overview.png",
        "review.png",
        "review-decided.png",
        "review-held.png",
        "review-released.png",
    ] {
        assert!(artifacts.join(shot).is_file(), "{shot} saved");
    }
}
