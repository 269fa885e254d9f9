//! One decision per narrative, on Apache Kafka: decisions sent at the same moment get exactly
//! one out, the desk tells the takedown service's own status apart from "decision sent,
//! awaiting takedown", and held protected copies of a confirmed narrative are released by a
//! new signed confirmation, once.

use std::time::{Duration, Instant};

use patroli_contracts::{DecisionAction, PostRef, ReviewDecision};
use serde_json::{json, Value};

use crate::common::{produce, shared_brokers, Stream};
use crate::desk::{desk, refused, REVIEWER, VIEWER};
use crate::harness::*;

/// The allowed answers to the decisions that lost.
const LOST: [&str; 3] = [
    "narrative n1 was already confirmed by rina",
    "narrative n1 was already rejected by rina",
    "another decision on narrative n1 is being sent right now: reload the desk to see it",
];

fn decision_form<'a>(
    narrative: &'a str,
    action: &'a str,
    csrf: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("narrative_id", narrative),
        ("action", action),
        ("reason", "checked with KPU"),
        ("csrf", csrf),
    ]
}

/// The desk's JSON entry of `narrative`, once `done` holds for it.
async fn entry(
    dash: &DashboardProcess,
    cookie: &str,
    narrative: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let items = dash.get("/api/v1/review/items", Some(cookie)).await.json();
        let found = items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["item"]["narrative_id"] == narrative)
            .cloned();
        if let Some(found) = found.filter(|e| done(e)) {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "narrative {narrative} never got there: {items:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn on_x(post_id: &str) -> PostRef {
    PostRef {
        platform: "x".into(),
        post_id: post_id.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_sent_at_once_on_one_narrative_get_exactly_one_out() {
    let (topics, dash, _accounts) = desk("dash-race", &[]).await;
    // Two sessions of the same reviewer (two browsers), two requests each, all at once.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let cookie = dash.sign_in(REVIEWER.0, REVIEWER.1).await;
        let csrf = csrf_of(&dash.get("/review", Some(&cookie)).await.text);
        sessions.push((cookie, csrf));
    }
    let sends = ["confirm", "reject", "confirm", "reject"]
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            let (cookie, csrf) = &sessions[i % 2];
            let dash = &dash;
            async move {
                let form = decision_form("n1", action, csrf);
                (
                    action,
                    dash.post_form("/review/decisions", Some(cookie.as_str()), &form)
                        .await,
                )
            }
        });
    let answers = futures::future::join_all(sends).await;
    let accepted: Vec<&str> = answers
        .iter()
        .filter(|(_, a)| a.status == 303)
        .map(|(action, _)| *action)
        .collect();
    assert_eq!(accepted.len(), 1, "exactly one accepted");
    for (_, lost) in answers.iter().filter(|(_, a)| a.status != 303) {
        assert_eq!(lost.status, 409, "{}", lost.text);
        assert!(
            LOST.iter().any(|m| lost
                .text
                .contains(&format!(r#"<p class="error" id="error">{m}</p>"#))),
            "{}",
            lost.text
        );
    }
    let records = crate::gateway::read_topic(
        &shared_brokers(),
        &topics.decisions,
        1,
        Duration::from_secs(3),
    );
    assert_eq!(records.len(), 1, "one decision on the topic");
    let sent: ReviewDecision = serde_json::from_slice(&records[0].payload).unwrap();
    let action = match accepted[0] {
        "confirm" => DecisionAction::Confirm,
        _ => DecisionAction::Reject,
    };
    assert_eq!((sent.narrative_id.as_str(), sent.action), ("n1", action));

    // Sent, and the takedown service has not acted on it yet.
    let cookie = sessions[0].0.as_str();
    let n1 = entry(&dash, cookie, "n1", |_| true).await;
    assert_eq!(n1["decision"]["decision_id"], sent.decision_id);
    assert_eq!(
        (&n1["takedown_status"], &n1["awaiting_takedown"]),
        (&json!("pending_review"), &json!(true))
    );
    let page = dash.get("/review", Some(cookie)).await.text;
    assert!(page.contains(
        r#"<span class="badge takedown">takedown service: pending_review</span> <span class="badge awaiting">decision sent, awaiting takedown</span></h2>"#
    ), "{page}");
    // It acts: the item comes back at the next revision with its own status.
    let status = if action == DecisionAction::Confirm {
        "confirmed"
    } else {
        "rejected"
    };
    let producer = Stream::standard(&shared_brokers()).producer();
    let acted = item_with("n1", 2, status, &[("n1-p1", false)]);
    produce(&producer, &topics.review, &keyed(vec![acted])).await;
    let n1 = entry(&dash, cookie, "n1", |e| e["awaiting_takedown"] == false).await;
    assert_eq!(n1["takedown_status"], status);
    let page = dash.get("/review", Some(cookie)).await.text;
    assert!(page.contains(&format!(
        r#"<span class="badge takedown">takedown service: {status}</span></h2>"#
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_copies_of_a_confirmed_narrative_are_released_once() {
    let (topics, dash, _accounts) = desk("dash-release", &[]).await;
    let brokers = shared_brokers();
    let producer = Stream::standard(&brokers).producer();
    // n3 was confirmed (by budi, on revision 1 showing n3-p1); then n3-p2 joined from a
    // protected source and is held. n4 is confirmed with nothing held.
    let earlier = ReviewDecision {
        schema_version: 1,
        decision_id: "d-first".into(),
        narrative_id: "n3".into(),
        action: DecisionAction::Confirm,
        reason: None,
        reviewer: "budi".into(),
        decided_at: "2024-02-10T09:00:00Z".into(),
        confirmed_references: vec![],
        revision: 1,
        shown_posts: vec![on_x("n3-p1")],
        signature: None,
    };
    let earlier = ("n3".to_owned(), serde_json::to_vec(&earlier).unwrap());
    produce(&producer, &topics.decisions, &keyed(vec![earlier])).await;
    let items = vec![
        item_with("n3", 2, "confirmed", &[("n3-p1", false), ("n3-p2", true)]),
        item_with("n4", 2, "confirmed", &[("n4-p1", false)]),
    ];
    produce(&producer, &topics.review, &keyed(items)).await;
    let rina = dash.sign_in(REVIEWER.0, REVIEWER.1).await;
    let n3 = entry(&dash, &rina, "n3", |e| e["decision"]["reviewer"] == "budi").await;
    assert_eq!(
        n3["held_copies"],
        json!([{"platform": "x", "post_id": "n3-p2"}])
    );
    assert_eq!(n3["awaiting_takedown"], false);
    let n4 = entry(&dash, &rina, "n4", |_| true).await;
    assert_eq!(n4["held_copies"], json!([]));

    let page = dash.get("/review", Some(&rina)).await.text;
    let held = r#"<p class="held">Held back (protected sources, not requested until released): x:n3-p2</p>"#;
    assert!(page.contains(held), "{page}");
    assert_eq!(
        page.matches(r#"value="release">Release held copies</button>"#)
            .count(),
        1
    );
    let csrf = csrf_of(&page);
    let vino = dash.sign_in(VIEWER.0, VIEWER.1).await;
    let viewer_page = dash.get("/review", Some(&vino)).await.text;
    assert!(viewer_page.contains(held));
    assert!(
        !viewer_page.contains("Release held copies"),
        "viewers cannot release"
    );

    let send = |narrative: &'static str, action: &'static str| {
        let (dash, rina, csrf) = (&dash, &rina, &csrf);
        async move {
            dash.post_form(
                "/review/decisions",
                Some(rina.as_str()),
                &decision_form(narrative, action, csrf),
            )
            .await
        }
    };
    refused(
        &send("n2", "release").await,
        409,
        "narrative n2 is not confirmed by the takedown service: nothing is held",
    );
    refused(
        &send("n4", "release").await,
        409,
        "narrative n4 has no held copies to release",
    );
    let released = send("n3", "release").await;
    assert_eq!(released.status, 303, "{}", released.text);
    assert_eq!(released.header("location"), Some("/review#n-n3"));

    // Signed and on the topic next to the first confirmation, showing what the desk showed.
    let records =
        crate::gateway::read_topic(&brokers, &topics.decisions, 2, Duration::from_secs(2));
    assert_eq!(records.len(), 2);
    let release: ReviewDecision = records
        .iter()
        .map(|r| serde_json::from_slice::<ReviewDecision>(&r.payload).unwrap())
        .find(|d| d.decision_id != "d-first")
        .unwrap();
    assert_eq!(
        (
            release.narrative_id.as_str(),
            release.action,
            release.reviewer.as_str(),
            release.reason.as_deref(),
            release.revision,
        ),
        (
            "n3",
            DecisionAction::Confirm,
            "rina",
            Some("release held copies"),
            2
        )
    );
    assert_eq!(release.shown_posts, [on_x("n3-p1"), on_x("n3-p2")]);
    assert!(release.confirmed_references.is_empty());
    assert_ne!(release.decision_id, "d-first");
    assert!(signed_by_the_dashboard(&release));

    // Released: nothing held any more, and no second release or confirmation.
    let n3 = entry(&dash, &rina, "n3", |e| e["decision"]["reviewer"] == "rina").await;
    assert_eq!(
        (&n3["held_copies"], &n3["awaiting_takedown"]),
        (&json!([]), &json!(true))
    );
    let page = dash.get("/review", Some(&rina)).await.text;
    assert!(!page.contains("Release held copies"), "{page}");
    refused(
        &send("n3", "release").await,
        409,
        "narrative n3 has no held copies to release",
    );
    refused(
        &send("n3", "confirm").await,
        409,
        "narrative n3 was already confirmed by rina",
    );
    assert_eq!(
        dash.metric(r#"patroli_dashboard_decisions_total{action="release"}"#),
        Some(1.0)
    );
}
