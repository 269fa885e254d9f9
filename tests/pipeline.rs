//! The pipeline on Apache Kafka (a real broker over TCP): every post that enters
//! comes out scored exactly once after de-duplication, every malformed one
//! lands in the DLQ with its reason, and the service reports its state.

mod common;

use common::*;
use patroli_contracts::DlqReason;
use std::collections::BTreeMap;
use std::time::Duration;

const POSTS: usize = 10_000;

fn malformed() -> Vec<(&'static str, Option<Vec<u8>>, DlqReason)> {
    let long_text = "a".repeat(10_001);
    vec![
        ("bad-1", Some(b"this is not json".to_vec()), DlqReason::NotJson),
        ("bad-2", Some(b"{\"text\": \"\xff\xfe\"}".to_vec()), DlqReason::InvalidUtf8),
        ("bad-3", None, DlqReason::EmptyPayload),
        (
            "bad-4",
            Some(br#"{"schema_version":1,"platform":"x","post_id":"m4","created_at":"2024-02-10T08:00:00Z","author":"a"}"#.to_vec()),
            DlqReason::MissingField,
        ),
        (
            "bad-5",
            Some(br#"{"schema_version":1,"platform":"x","post_id":"m5","text":"   ","created_at":"2024-02-10T08:00:00Z","author":"a"}"#.to_vec()),
            DlqReason::EmptyText,
        ),
        (
            "bad-6",
            Some(br#"{"schema_version":1,"platform":"x","post_id":7,"text":"halo","created_at":"2024-02-10T08:00:00Z","author":"a"}"#.to_vec()),
            DlqReason::WrongType,
        ),
        (
            "bad-7",
            Some(format!(r#"{{"schema_version":1,"platform":"x","post_id":"m7","text":"{long_text}","created_at":"2024-02-10T08:00:00Z","author":"a"}}"#).into_bytes()),
            DlqReason::TextTooLong,
        ),
        (
            "bad-8",
            Some(br#"{"schema_version":2,"platform":"x","post_id":"m8","text":"halo","created_at":"2024-02-10T08:00:00Z","author":"a"}"#.to_vec()),
            DlqReason::UnknownSchemaVersion,
        ),
        ("bad-9", Some(b"[1,2,3]".to_vec()), DlqReason::NotAnObject),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_posts_across_six_partitions_come_out_scored_and_bad_input_in_the_dlq() {
    let stream = Stream::create(&shared_brokers(), "pipeline").await;
    let model = tiny_model();
    let producer = stream.producer();

    let bad = malformed();
    let bad_messages: Vec<_> = bad
        .iter()
        .map(|(key, payload, _)| (Some(key.to_string()), payload.clone()))
        .collect();
    produce(&producer, &stream.raw, &bad_messages[..4]).await;
    stream.produce_posts(&producer, 0..POSTS).await;
    produce(&producer, &stream.raw, &bad_messages[4..]).await;
    let complaint = serde_json::json!({
        "schema_version": 1, "complaint_id": "c-1", "text": "Ada video surat suara tercoblos, tolong cek",
        "reported_at": "2024-02-11T09:00:00Z", "reporter": "warga-1", "platform": "x", "post_id": "p000001"
    });
    produce(
        &producer,
        &stream.complaints,
        &[(Some("c-1".into()), Some(complaint.to_string().into_bytes()))],
    )
    .await;

    let collector = Collector::start(&stream, "read_committed");
    let classifier = ClassifierProcess::spawn(&stream, model.path(), "pipeline", &[]);
    collector.wait_for(POSTS + 1 + bad.len(), Duration::from_secs(300));
    let outputs = collector.finish();

    let scored = outputs.unique_scored();
    let posts: Vec<_> = scored
        .values()
        .filter(|e| e.complaint_id.is_none())
        .collect();
    assert_eq!(
        posts.len(),
        POSTS,
        "one scored event per post after de-duplication"
    );
    assert_eq!(
        outputs.missing_posts(POSTS),
        Vec::<String>::new(),
        "posts without a scored event"
    );
    let from_complaint: Vec<_> = scored
        .values()
        .filter(|e| e.complaint_id.is_some())
        .collect();
    assert_eq!(from_complaint.len(), 1);
    assert_eq!(from_complaint[0].complaint_id.as_deref(), Some("c-1"));
    for event in scored.values() {
        assert!((0.0..=1.0).contains(&event.score), "score {}", event.score);
        let total: f32 = event.categories.values().sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "category probabilities sum to {total}"
        );
        assert_eq!(event.fingerprint.len(), 16);
        assert_eq!(
            event.source.topic == stream.complaints,
            event.complaint_id.is_some()
        );
    }

    let dlq = outputs.unique_dlq();
    let reasons: BTreeMap<String, DlqReason> = dlq
        .values()
        .map(|e| (e.key.clone().unwrap_or_default(), e.reason))
        .collect();
    let expected: BTreeMap<String, DlqReason> = bad
        .iter()
        .map(|(key, _, reason)| (key.to_string(), *reason))
        .collect();
    assert_eq!(
        reasons, expected,
        "every malformed post in the DLQ with its reason"
    );
    for event in dlq.values() {
        let original = bad
            .iter()
            .find(|(k, ..)| Some(*k) == event.key.as_deref())
            .unwrap();
        assert_eq!(
            event.original().unwrap(),
            original.1.clone().unwrap_or_default(),
            "the DLQ keeps the exact original bytes"
        );
        assert_eq!(event.source.topic, stream.raw);
    }

    // The service's own account agrees with what the topics hold.
    let consumed = classifier
        .metric(&format!(
            "patroli_consumed_total{{topic=\"{}\"}}",
            stream.raw
        ))
        .unwrap();
    assert!(
        consumed >= (POSTS + bad.len()) as f64,
        "consumed {consumed}"
    );
    let scored_total = classifier
        .metric("patroli_scored_total{label=\"disinformation\"}")
        .unwrap_or(0.0)
        + classifier
            .metric("patroli_scored_total{label=\"not_disinformation\"}")
            .unwrap_or(0.0);
    assert!(scored_total >= (POSTS + 1) as f64, "scored {scored_total}");
    assert_eq!(
        classifier.metric("patroli_dlq_total{reason=\"not_json\"}"),
        Some(1.0)
    );
    assert_eq!(
        classifier.metric("patroli_dlq_total{reason=\"text_too_long\"}"),
        Some(1.0)
    );
    let (_, metrics) = classifier.get("/metrics").unwrap();
    for name in [
        "patroli_batch_posts_bucket",
        "patroli_inference_seconds_bucket",
        "patroli_end_to_end_seconds_bucket",
        "patroli_model_info{name=",
        "patroli_assigned_partitions 9",
        "patroli_consumer_lag{",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    assert_eq!(classifier.get("/readyz").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_model_is_loaded_and_partitions_are_assigned() {
    let model = tiny_model();
    // Nothing listens on this port: the model loads, the broker never answers.
    let dead_port = free_port();
    let classifier = ClassifierProcess::spawn(
        &Stream::standard(&format!("127.0.0.1:{dead_port}")),
        model.path(),
        "unready",
        &[],
    );
    let started = std::time::Instant::now();
    let body = loop {
        if let Some((status, body)) = classifier.get("/readyz") {
            if body.contains(r#""model_loaded":true"#) {
                assert_eq!(status, 503);
                break body;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "model never loaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains(r#""partitions_assigned":false"#), "{body}");
    assert!(body.contains(r#""broker_reachable":false"#), "{body}");
    assert_eq!(
        classifier.get("/healthz").unwrap(),
        (200, "ok\n".to_owned())
    );
}

#[test]
fn a_missing_model_is_a_clear_startup_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_patroli"))
        .args(["serve", "classifier"])
        .env("PATROLI_MODEL_DIR", "/nonexistent/model")
        .env("PATROLI_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot load the model"), "{stderr}");
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");
}
