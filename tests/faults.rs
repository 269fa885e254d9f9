//! Injected broker faults. Apache Kafka cannot be told to fail a request, so
//! the broker here is librdkafka's MockCluster (in this process, on loopback)
//! with the classifier as a child process, in the default at-least-once mode.
//! The mock is for faults only: it does not implement transactions.

mod common;

use common::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::time::Duration;

const POSTS: usize = 3_000;

/// The broker rejects produce requests (a retriable error, as while
/// replicas are missing) for longer than the producer's delivery timeout:
/// deliveries fail, the writer must produce the batch again until it is
/// accepted, and must never store offsets past an undelivered output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_failures_longer_than_the_delivery_timeout_lose_nothing() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let stream = Stream::on_mock(&mock);
    let model = tiny_model();
    stream.produce_posts(&stream.producer(), 0..POSTS).await;

    // The next produce requests (all the classifier's: the posts are in)
    // fail; librdkafka retries them internally until the delivery timeout.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 12],
    );

    let collector = Collector::start(&stream, "read_committed");
    let classifier = ClassifierProcess::spawn(
        &stream,
        model.path(),
        "faults",
        &[("PATROLI_KAFKA__EXTRA", r#"{"message.timeout.ms": "1500"}"#)],
    );
    collector.wait_for(POSTS, Duration::from_secs(240));
    let retries = classifier
        .metric(r#"patroli_produce_retries_total{mode="at-least-once"}"#)
        .unwrap_or(0.0);
    let outputs = collector.finish();
    assert_eq!(
        outputs.missing_posts(POSTS),
        Vec::<String>::new(),
        "posts lost in the outage"
    );
    assert_eq!(outputs.unique_scored().len(), POSTS);
    assert!(
        outputs.dlq.is_empty(),
        "an outage must not dead-letter valid posts"
    );
    assert!(
        retries >= 1.0,
        "the outage should have failed at least one delivery (retries {retries})"
    );
    eprintln!(
        "outage: {retries} batch re-productions, {} scored messages for {POSTS} posts",
        outputs.scored.len()
    );
}

/// Without permission to write its output, retrying cannot help: the
/// classifier stops with exit status 1 and says why, instead of retrying
/// forever (its orchestrator restarts it and alerts on the crash loop). The
/// reason is its write stage's: it had started, consumed and scored posts
/// before the refusal, so it did not fail on anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_failure_stops_the_classifier_with_an_error() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let stream = Stream::on_mock(&mock);
    let model = tiny_model();
    // The mock fails the next produce requests of any client, so the posts
    // go in first; the classifier's writes are the ones refused.
    stream.produce_posts(&stream.producer(), 0..10).await;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 100],
    );
    let mut classifier = ClassifierProcess::spawn(&stream, model.path(), "faults-authz", &[]);
    let status = classifier.wait_exit(Duration::from_secs(120));
    let stderr = classifier.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.ends_with(
            "Error: classifier failed\n\nCaused by:\n    the broker refuses the classifier's \
             output for good, check the topic and its ACLs: Message production error: \
             TopicAuthorizationFailed (Broker: Topic authorization failed)\n"
        ),
        "{stderr}"
    );
}
