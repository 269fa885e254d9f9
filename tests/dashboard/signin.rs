//! Sign-in under attack and who sees post texts, on Apache Kafka: a flood of wrong passwords is
//! answered 429 (per address, then per user) while other reviewers, and the attacked reviewer's
//! own browser, still get in; a changed password ends the old session; post texts go to the
//! signed in only, on the API and the live stream; the live stream takes a capped number of pages.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::desk::{desk, REVIEWER, VIEWER};
use crate::harness::*;

const N1_TEXT: &str = "Surat suara sudah DICOBLOS di TPS 05, sebarkan!";

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// 60 wrong passwords for rina at once from `from`; the answers' statuses counted.
async fn flood(dash: &DashboardProcess, from: IpAddr) -> BTreeMap<u16, usize> {
    let guesses: Vec<[(&str, String); 2]> = (0..60)
        .map(|i| {
            [
                ("user", REVIEWER.0.to_owned()),
                ("password", format!("guess-{i}")),
            ]
        })
        .collect();
    let answers = join_all(guesses.iter().map(|[(u, user), (p, guess)]| async move {
        dash.login_from(from, None, &[(*u, user.as_str()), (*p, guess.as_str())])
            .await
    }))
    .await;
    let mut statuses = BTreeMap::new();
    for answer in &answers {
        *statuses.entry(answer.status).or_default() += 1;
        if answer.status == 429 {
            let secs: u64 = answer.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=3600).contains(&secs), "Retry-After {secs}");
            assert!(answer.text.contains(&format!(
                r#"<p class="error" id="error">too many sign-in attempts: try again in {secs} seconds</p>"#
            )));
        }
        if answer.status == 503 {
            assert_eq!(answer.header("retry-after"), Some("1"));
        }
        assert!(answer.cookie("patroli_session").is_none());
    }
    statuses
}

/// Attempts whose password was checked: wrong (401) or refused because every check was busy
/// (503, how many depends on timing); both spent an attempt.
fn checked(statuses: &BTreeMap<u16, usize>) -> usize {
    statuses.get(&401).copied().unwrap_or(0) + statuses.get(&503).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_flood_is_slowed_and_locks_no_reviewer_out() {
    // Buckets that do not refill during the test, so every count is exact.
    let (_topics, dash, _accounts) = desk(
        "dash-flood",
        &[
            ("PATROLI_SIGN_IN__ADDRESS_BURST", "10"),
            ("PATROLI_SIGN_IN__ADDRESS_REFILL_SECS", "3600"),
            ("PATROLI_SIGN_IN__USER_BURST", "15"),
            ("PATROLI_SIGN_IN__USER_REFILL_SECS", "3600"),
        ],
    )
    .await;
    let rina = [("user", REVIEWER.0), ("password", REVIEWER.1)];
    // Rina's own browser signed in before the attack (one of her 15 attempts).
    let before = dash.login_from(loopback(5), None, &rina).await;
    assert_eq!(before.status, 303, "{}", before.text);
    let device = before.cookie("patroli_device").expect("a device cookie");

    // One address: its 10 attempts are checked, the other 50 are not.
    let first = flood(&dash, loopback(1)).await;
    assert_eq!(first.get(&429), Some(&50), "{first:?}");
    assert_eq!(checked(&first), 10, "{first:?}");
    assert!(first.get(&401).is_some_and(|n| *n >= 1), "{first:?}");
    // Another address: 10 pass its own bucket, but rina's holds only 4 more.
    let second = flood(&dash, loopback(3)).await;
    assert_eq!(second.get(&429), Some(&56), "{second:?}");
    assert_eq!(checked(&second), 4, "{second:?}");

    // Rina's bucket is empty: even her right password from a new browser waits...
    let new_browser = dash.login_from(loopback(4), None, &rina).await;
    assert_eq!(new_browser.status, 429, "{}", new_browser.text);
    // ...but the browser she signed in from before gets in, from anywhere,
    let known = dash.login_from(loopback(4), Some(&device), &rina).await;
    assert_eq!(known.status, 303, "{}", known.text);
    assert!(known.cookie("patroli_session").is_some());
    // and so does every other reviewer.
    let vino = dash
        .login_from(
            loopback(2),
            None,
            &[("user", VIEWER.0), ("password", VIEWER.1)],
        )
        .await;
    assert_eq!(vino.status, 303, "{}", vino.text);
    // Her browser's attempts are still checked (a wrong password is just wrong), while a
    // forged device cookie counts against her empty bucket.
    let mistyped = [("user", REVIEWER.0), ("password", "rina-pasword-1")];
    let known = dash.login_from(loopback(6), Some(&device), &mistyped).await;
    assert_eq!(known.status, 401, "{}", known.text);
    let forged = format!("patroli_device={}", "0".repeat(64));
    let forged = dash.login_from(loopback(6), Some(&forged), &mistyped).await;
    assert_eq!(forged.status, 429, "{}", forged.text);

    let outcome = |outcome: &str| {
        dash.metric(&format!(
            r#"patroli_dashboard_sign_ins_total{{outcome="{outcome}"}}"#
        ))
        .unwrap()
    };
    assert_eq!(outcome("address_limited"), 100.0);
    assert_eq!(outcome("user_limited"), 8.0);
    assert_eq!(outcome("ok"), 3.0);
    assert_eq!(outcome("wrong_password") + outcome("busy"), 15.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_ends_the_sessions_signed_in_with_the_old_one() {
    let (_topics, dash, accounts) = desk("dash-password", &[]).await;
    let rina = dash.sign_in(REVIEWER.0, REVIEWER.1).await;
    let vino = dash.sign_in(VIEWER.0, VIEWER.1).await;
    assert_eq!(
        dash.get("/api/v1/review/items", Some(&rina)).await.status,
        200
    );

    // Rina's entry gets a new password hash; vino's stays byte for byte.
    let entries = std::fs::read_to_string(accounts.path()).unwrap();
    let vino_entry = entries
        .split("\n\n")
        .find(|e| e.contains("user = \"vino\""))
        .unwrap();
    let changed = accounts_file(&[(REVIEWER.0, "rina-password-2", REVIEWER.2)]);
    let rina_entry = std::fs::read_to_string(changed.path()).unwrap();
    std::fs::write(accounts.path(), format!("{rina_entry}{vino_entry}\n")).unwrap();
    dash.wait_for_metric(
        "patroli_dashboard_sessions",
        |n| n == 1.0,
        Duration::from_secs(30),
    );
    let items = dash.get("/api/v1/review/items", Some(&rina)).await;
    assert_eq!(items.status, 401);
    assert_eq!(
        items.json(),
        json!({"error": "sign_in_required", "message": "sign in first"})
    );
    assert_eq!(dash.get("/review", Some(&rina)).await.status, 401);
    assert_eq!(
        dash.get("/api/v1/review/items", Some(&vino)).await.status,
        200,
        "an unchanged account keeps its session"
    );
    let old = dash
        .post_form(
            "/login",
            None,
            &[("user", REVIEWER.0), ("password", REVIEWER.1)],
        )
        .await;
    assert_eq!(old.status, 401);
    let renewed = dash.sign_in(REVIEWER.0, "rina-password-2").await;
    assert_eq!(
        dash.get("/api/v1/review/items", Some(&renewed))
            .await
            .status,
        200
    );
}

/// The data of the stream's first event, read as `cookie`'s holder.
async fn first_snapshot(dash: &DashboardProcess, cookie: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(dash.url("/api/v1/stream"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let mut stream = request.send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = stream.chunk().await.unwrap().expect("an event");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = text.split("\n\n").next().unwrap();
    event
        .strip_prefix("event: snapshot\ndata: ")
        .unwrap_or_else(|| panic!("not a snapshot: {event}"))
        .to_owned()
}

fn samples(narratives: &Value) -> Vec<Option<&Value>> {
    narratives["narratives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.get("sample_text"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_texts_go_to_the_signed_in_only_and_aggregates_only_when_public() {
    let (_topics, private, _accounts) = desk("dash-private", &[]).await;
    let refused = json!({"error": "sign_in_required", "message": "sign in first"});
    for path in [
        "/api/v1/overview",
        "/api/v1/series?bucket=1h&dimension=platform",
        "/api/v1/scores/histogram",
        "/api/v1/narratives",
        "/api/v1/requests",
        "/api/v1/dlq",
        "/api/v1/stream",
    ] {
        let answer = private.get(path, None).await;
        assert_eq!(answer.status, 401, "{path}");
        assert_eq!(answer.json(), refused, "{path}");
    }
    let page = private.get("/", None).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/login"));
    let rina = private.sign_in(REVIEWER.0, REVIEWER.1).await;
    assert_eq!(private.get("/", Some(&rina)).await.status, 200);
    let narratives = private.get("/api/v1/narratives", Some(&rina)).await.json();
    assert_eq!(
        samples(&narratives),
        [Some(&json!(N1_TEXT)), Some(&json!("Pemilu diundur"))]
    );

    let (_topics, public, _accounts) =
        desk("dash-public", &[("PATROLI_PUBLIC_AGGREGATES", "true")]).await;
    let anonymous = public.get("/api/v1/narratives", None).await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(samples(&anonymous.json()), [None, None]);
    assert!(!anonymous.text.contains("DICOBLOS"), "{}", anonymous.text);
    assert_eq!(anonymous.json()["narratives"][0]["narrative_id"], "n1");
    let rina = public.sign_in(REVIEWER.0, REVIEWER.1).await;
    let signed_in = public.get("/api/v1/narratives", Some(&rina)).await.json();
    assert_eq!(samples(&signed_in)[0], Some(&json!(N1_TEXT)));

    // The live stream: the same snapshot, with texts for the signed in only.
    let anonymous: Value = serde_json::from_str(&first_snapshot(&public, None).await).unwrap();
    assert_eq!(samples(&anonymous["narratives"]), [None, None]);
    let signed_in: Value =
        serde_json::from_str(&first_snapshot(&public, Some(&rina)).await).unwrap();
    assert_eq!(
        samples(&signed_in["narratives"]),
        [Some(&json!(N1_TEXT)), Some(&json!("Pemilu diundur"))]
    );
    assert_eq!(signed_in["overview"], anonymous["overview"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_takes_at_most_max_stream_clients_pages() {
    let (_topics, dash, _accounts) = desk(
        "dash-streams",
        &[
            ("PATROLI_PUBLIC_AGGREGATES", "true"),
            ("PATROLI_MAX_STREAM_CLIENTS", "2"),
        ],
    )
    .await;
    let open = || {
        reqwest::Client::new()
            .get(dash.url("/api/v1/stream"))
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = dash.get("/api/v1/stream", None).await;
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), Some("5"));
    assert_eq!(
        third.json(),
        json!({"error": "too_many_streams", "message": "too many live pages are open: try again later"})
    );
    assert_eq!(dash.metric("patroli_dashboard_stream_clients"), Some(2.0));
    assert_eq!(
        dash.metric("patroli_dashboard_stream_refusals_total"),
        Some(1.0)
    );

    // A page that leaves frees its place (noticed at the latest at the next keep-alive).
    drop(first);
    let started = Instant::now();
    let mut again = open().await.unwrap();
    while again.status().as_u16() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        again = open().await.unwrap();
    }
    let chunk = again.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).starts_with("event: snapshot\n"));
    drop(second);
}
