//! The review desk on Apache Kafka: sign-in, the refusals (wrong password, no or expired
//! session, missing or wrong CSRF token, a viewer deciding), and a reviewer's decision landing
//! on review.decisions.v1 under their name and showing on the page.

use std::time::Duration;

use serde_json::json;

use crate::common::{produce, shared_brokers, Stream};
use crate::harness::*;

pub(crate) const REVIEWER: (&str, &str, &str) = ("rina", "rina-password-1", "reviewer");
pub(crate) const VIEWER: (&str, &str, &str) = ("vino", "vino-password-1", "viewer");

pub(crate) async fn desk(
    test: &str,
    extra_env: &[(&str, &str)],
) -> (DashboardTopics, DashboardProcess, tempfile::NamedTempFile) {
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, test).await;
    let producer = Stream::standard(&brokers).producer();
    let items = vec![
        review_item(
            "n1",
            1,
            4,
            true,
            "Surat suara sudah DICOBLOS di TPS 05, sebarkan!",
        ),
        review_item("n2", 1, 2, false, "Pemilu diundur"),
    ];
    produce(&producer, &topics.review, &keyed(items)).await;
    let accounts = accounts_file(&[REVIEWER, VIEWER]);
    let mut env = vec![("PATROLI_ACCOUNTS_RELOAD_MS", "200")];
    env.extend_from_slice(extra_env);
    let mut dash = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &env);
    dash.wait_ready();
    (topics, dash, accounts)
}

/// Asserts `answer` is a refusal with `status`, showing `message` as the page's error.
pub fn refused(answer: &Answer, status: u16, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert!(
        answer
            .text
            .contains(&format!(r#"<p class="error" id="error">{message}</p>"#)),
        "expected {message:?} in {}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_decide_and_everyone_else_is_refused() {
    let (topics, dash, accounts) = desk("dash-desk", &[]).await;

    let wrong = dash
        .post_form("/login", None, &[("user", "rina"), ("password", "guess")])
        .await;
    refused(&wrong, 401, "wrong user name or password");
    assert!(wrong.header("set-cookie").is_none());
    let unknown = dash
        .post_form("/login", None, &[("user", "nobody"), ("password", "guess")])
        .await;
    refused(&unknown, 401, "wrong user name or password");

    let forged = dash
        .post_form_with(
            "/login",
            ("origin", "https://evil.example"),
            &[("user", REVIEWER.0), ("password", REVIEWER.1)],
        )
        .await;
    refused(&forged, 403, "cross-site sign-in refused");
    let ok = dash
        .post_form(
            "/login",
            None,
            &[("user", REVIEWER.0), ("password", REVIEWER.1)],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/review"));
    let set_cookie = ok.header("set-cookie").unwrap();
    assert!(
        set_cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Max-Age=28800"),
        "{set_cookie}"
    );
    let rina = set_cookie.split(';').next().unwrap().to_owned();

    // The desk: high priority first, reason words marked.
    let page = dash.get("/review", Some(&rina)).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), Some("DENY"), "never framed");
    let n1 = page.text.find(r#"id="n-n1""#).unwrap();
    let n2 = page.text.find(r#"id="n-n2""#).unwrap();
    assert!(n1 < n2, "the high-priority narrative comes first");
    assert!(page
        .text
        .contains("Surat suara sudah <mark>DICOBLOS</mark> di TPS 05, <mark>sebarkan</mark>!"));
    assert!(page
        .text
        .contains("burst: 12 accounts in 60 min from 2024-02-10T07:30:00Z"));
    let csrf = csrf_of(&page.text);

    let decide = |cookie: Option<String>, fields: Vec<(&'static str, String)>| {
        let dash = &dash;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            dash.post_form("/review/decisions", cookie.as_deref(), &fields)
                .await
        }
    };
    let confirm = |csrf: &str| {
        vec![
            ("narrative_id", "n1".to_owned()),
            ("action", "confirm".to_owned()),
            ("reason", "KPU says these ballots are fake".to_owned()),
            ("csrf", csrf.to_owned()),
        ]
    };
    refused(&decide(None, confirm(&csrf)).await, 401, "sign in first");
    let mut missing = confirm(&csrf);
    missing.pop();
    refused(
        &decide(Some(rina.clone()), missing).await,
        403,
        "missing CSRF token",
    );
    refused(
        &decide(Some(rina.clone()), confirm(&"0".repeat(64))).await,
        403,
        "CSRF token does not match this session",
    );

    let vino = dash.sign_in(VIEWER.0, VIEWER.1).await;
    let viewer_page = dash.get("/review", Some(&vino)).await;
    assert!(viewer_page.text.contains("Viewers cannot decide."));
    let vino_csrf = csrf_of(&viewer_page.text);
    refused(
        &decide(Some(vino.clone()), confirm(&vino_csrf)).await,
        403,
        "only reviewers may confirm or reject",
    );
    // A viewer's token is no good in a reviewer's session either.
    refused(
        &decide(Some(rina.clone()), confirm(&vino_csrf)).await,
        403,
        "CSRF token does not match this session",
    );
    let reject_without_reason = vec![
        ("narrative_id", "n2".to_owned()),
        ("action", "reject".to_owned()),
        ("reason", "  ".to_owned()),
        ("csrf", csrf.clone()),
    ];
    refused(
        &decide(Some(rina.clone()), reject_without_reason).await,
        400,
        "a reason is required to reject",
    );
    let mut unknown_narrative = confirm(&csrf);
    unknown_narrative[0].1 = "n404".into();
    refused(
        &decide(Some(rina.clone()), unknown_narrative).await,
        404,
        "no review item for narrative n404",
    );

    let done = decide(Some(rina.clone()), confirm(&csrf)).await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.header("location"), Some("/review#n-n1"));

    // A double click (or a colleague at the same moment) makes no second decision.
    refused(
        &decide(Some(rina.clone()), confirm(&csrf)).await,
        409,
        "narrative n1 was already confirmed by rina",
    );

    // Exactly one decision reached the topic, under the reviewer's name.
    let decision = assert_decisions_on_n1(
        &shared_brokers(),
        &topics.decisions,
        "KPU says these ballots are fake",
        false,
    );
    assert_eq!(decision.decision_id.len(), 32);

    let page = dash.get("/review", Some(&rina)).await;
    assert!(page.text.contains(&format!(
        r#"<p class="decision">Confirmed by <strong>rina</strong> at {}: KPU says these ballots are fake</p>"#,
        decision.decided_at
    )));
    let items = dash.get("/api/v1/review/items", Some(&rina)).await.json();
    assert_eq!(
        items["items"][0]["item"]["narrative_id"], "n2",
        "awaiting review first"
    );
    assert_eq!(items["items"][1]["decision"]["reviewer"], "rina");
    assert_eq!(items["items"][1]["awaiting_review"], false);
    let overview = dash.get("/api/v1/overview", Some(&rina)).await.json();
    assert_eq!(
        overview["review"],
        json!({"awaiting": 1, "high_priority": 0, "decided": 1})
    );
    assert_eq!(
        dash.metric(r#"patroli_dashboard_decisions_total{action="confirm"}"#),
        Some(1.0)
    );
    assert_eq!(
        dash.metric(r#"patroli_dashboard_sign_ins_total{outcome="wrong_password"}"#),
        Some(2.0)
    );

    // A changed accounts file applies to running sessions: rina is now a viewer, vino is gone.
    // (Rina's entry as it was, password hash and all, but for the role.)
    let entries = std::fs::read_to_string(accounts.path()).unwrap();
    let rina_entry = entries
        .split("\n\n")
        .find(|e| e.contains("user = \"rina\""))
        .unwrap();
    std::fs::write(
        accounts.path(),
        rina_entry.replace("\"reviewer\"", "\"viewer\""),
    )
    .unwrap();
    dash.wait_for_metric(
        "patroli_dashboard_accounts",
        |n| n == 1.0,
        Duration::from_secs(30),
    );
    let mut on_n2 = confirm(&csrf);
    on_n2[0].1 = "n2".into();
    refused(
        &decide(Some(rina.clone()), on_n2).await,
        403,
        "only reviewers may confirm or reject",
    );
    assert_eq!(
        dash.get("/api/v1/review/items", Some(&vino)).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_refused_and_a_trusted_proxy_header_signs_in() {
    let (_topics, dash, _accounts) = desk(
        "dash-expiry",
        &[
            ("PATROLI_SESSION_TTL_SECS", "1"),
            ("PATROLI_TRUSTED_USER_HEADER", "X-Forwarded-User"),
        ],
    )
    .await;
    let rina = dash.sign_in(REVIEWER.0, REVIEWER.1).await;
    let page = dash.get("/review", Some(&rina)).await;
    let csrf = csrf_of(&page.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let expired = dash
        .post_form(
            "/review/decisions",
            Some(&rina),
            &[
                ("narrative_id", "n1"),
                ("action", "confirm"),
                ("csrf", &csrf),
            ],
        )
        .await;
    refused(&expired, 401, "your session expired: sign in again");
    let items = dash.get("/api/v1/review/items", Some(&rina)).await;
    assert_eq!(items.status, 401);
    assert_eq!(
        items.json(),
        json!({"error": "session_expired", "message": "your session expired: sign in again"})
    );

    let proxied = dash
        .get_with("/api/v1/review/items", ("X-Forwarded-User", "rina"))
        .await;
    assert_eq!(proxied.status, 200, "{}", proxied.text);
    assert_eq!(proxied.json()["items"].as_array().unwrap().len(), 2);
    let stranger = dash
        .get_with("/api/v1/review/items", ("X-Forwarded-User", "mallory"))
        .await;
    assert_eq!(stranger.status, 403);
    assert_eq!(
        stranger.json(),
        json!({"error": "unknown_user", "message": "`mallory` has no dashboard account"})
    );
}
