//! What the dashboard needs whole survives a restart however old it is: the review queue and
//! the decisions are read from their beginning, while scored events (a stream) keep the
//! look-back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use patroli_contracts::{DecisionAction, ReviewDecision};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::common::{shared_brokers, Stream};
use crate::desk::REVIEWER;
use crate::harness::*;

/// Two days ago: past the default look-back of 24 hours.
fn two_days_ago_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_millis() as i64 - 48 * 3600 * 1000
}

/// Produces `(key, value)` with the record timestamp `at_ms`, as a record written then.
async fn produce_at(
    producer: &FutureProducer,
    topic: &str,
    message: (String, Vec<u8>),
    at_ms: i64,
) {
    let (key, value) = message;
    let record = FutureRecord::to(topic)
        .key(&key)
        .payload(&value)
        .timestamp(at_ms);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_items_and_decisions_older_than_the_lookback_survive_a_restart() {
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-old-state").await;
    let producer = Stream::standard(&brokers).producer();
    let old = two_days_ago_ms();
    for item in [
        review_item("n1", 1, 4, true, "Surat suara sudah dicoblos"),
        review_item("n2", 1, 2, false, "Pemilu diundur"),
    ] {
        produce_at(&producer, &topics.review, item, old).await;
    }
    let rejected = ReviewDecision {
        schema_version: 1,
        decision_id: "d-old".into(),
        narrative_id: "n2".into(),
        action: DecisionAction::Reject,
        reason: Some("satire, labelled as such".into()),
        reviewer: "budi".into(),
        decided_at: "2024-02-10T09:00:00Z".into(),
        confirmed_references: vec![],
        revision: 1,
        shown_posts: vec![],
        signature: None,
    };
    let rejected = ("n2".to_owned(), serde_json::to_vec(&rejected).unwrap());
    produce_at(&producer, &topics.decisions, rejected, old).await;
    // A scored event as old is past the window: never counted.
    produce_at(
        &producer,
        &topics.scored,
        scored(0, "x", "kecurangan", None, 0.9),
        old,
    )
    .await;

    let accounts = accounts_file(&[REVIEWER]);
    let mut first = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &[]);
    first.wait_ready();
    assert!(first.terminate().success(), "SIGTERM ends it cleanly");
    let mut dash = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &[]);
    dash.wait_ready();

    let rina = dash.sign_in(REVIEWER.0, REVIEWER.1).await;
    let items = dash.get("/api/v1/review/items", Some(&rina)).await.json();
    let listed: Vec<_> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["item"]["narrative_id"].as_str().unwrap().to_owned(),
                e["awaiting_review"].as_bool().unwrap(),
                e["decision"]["reviewer"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("n1".to_owned(), true, None),
            ("n2".to_owned(), false, Some("budi".to_owned()))
        ]
    );
    let overview = dash.get("/api/v1/overview", Some(&rina)).await.json();
    assert_eq!(overview["posts_scored"], 0);
    assert_eq!(
        overview["review"],
        json!({"awaiting": 1, "high_priority": 1, "decided": 1})
    );

    let csrf = csrf_of(&dash.get("/review", Some(&rina)).await.text);
    let decide = |narrative: &'static str, action: &'static str| {
        let (dash, rina, csrf) = (&dash, &rina, &csrf);
        async move {
            let fields = [
                ("narrative_id", narrative),
                ("action", action),
                ("reason", "KPU says these ballots are fake"),
                ("csrf", csrf.as_str()),
            ];
            dash.post_form("/review/decisions", Some(rina.as_str()), &fields)
                .await
        }
    };
    let done = decide("n1", "confirm").await;
    assert_eq!(done.status, 303, "{}", done.text);
    let again = decide("n2", "confirm").await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again
            .text
            .contains("narrative n2 was already rejected by budi"),
        "{}",
        again.text
    );
    let records =
        crate::gateway::read_topic(&brokers, &topics.decisions, 2, Duration::from_secs(2));
    let mut decisions: Vec<(String, DecisionAction, String)> = records
        .iter()
        .map(|r| {
            let d: ReviewDecision = serde_json::from_slice(&r.payload).unwrap();
            (d.narrative_id, d.action, d.reviewer)
        })
        .collect();
    decisions.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        decisions,
        [
            ("n1".to_owned(), DecisionAction::Confirm, "rina".to_owned()),
            ("n2".to_owned(), DecisionAction::Reject, "budi".to_owned())
        ]
    );
}
