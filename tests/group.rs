//! Scaling: two classifier instances in one consumer group split the
//! partitions; stopping one (SIGTERM, as Kubernetes does) while posts flow
//! hands its partitions to the other without losing or repeating a post: it
//! finishes and commits its in-flight batches before it leaves.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_partitions_and_hand_over_on_stop() {
    let total_partitions = (raw_partitions() + complaint_partitions()) as f64;
    let stream = Stream::create(&shared_brokers(), "group").await;
    let model = tiny_model();
    let producer = stream.producer();
    let collector = Collector::start(&stream, "read_committed");

    let mut first = ClassifierProcess::spawn(&stream, model.path(), "split", &[]);
    first.wait_for_metric(
        "patroli_assigned_partitions",
        |n| n == total_partitions,
        Duration::from_secs(60),
    );
    stream.produce_posts(&producer, 0..2000).await;

    let second = ClassifierProcess::spawn(&stream, model.path(), "split", &[]);
    let limit = Duration::from_secs(90);
    let started = std::time::Instant::now();
    loop {
        let (a, b) = (
            first.metric("patroli_assigned_partitions").unwrap_or(0.0),
            second.metric("patroli_assigned_partitions").unwrap_or(0.0),
        );
        if a > 0.0 && b > 0.0 && a + b == total_partitions {
            eprintln!("split: {a} + {b} partitions");
            break;
        }
        assert!(
            started.elapsed() < limit,
            "partitions never split (first {a}, second {b})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stream.produce_posts(&producer, 2000..6000).await;
    // Stop the first one while the new posts are being scored.
    collector.wait_until(
        "the hand-over's posts being scored",
        Duration::from_secs(120),
        |o| o.unique_total() > 2000,
    );
    let stopped_at = collector.unique_total();
    let status = first.terminate();
    assert!(
        stopped_at < 6000,
        "the first instance was stopped only after every post was scored ({stopped_at})"
    );
    assert!(
        status.success(),
        "SIGTERM must end the classifier cleanly, got {status}"
    );
    second.wait_for_metric(
        "patroli_assigned_partitions",
        |n| n == total_partitions,
        Duration::from_secs(60),
    );
    stream.produce_posts(&producer, 6000..8000).await;

    collector.wait_for(8000, Duration::from_secs(300));
    let outputs = collector.finish();
    assert_eq!(
        outputs.missing_posts(8000),
        Vec::<String>::new(),
        "posts lost in the hand-over"
    );
    assert_eq!(outputs.unique_scored().len(), 8000);
    assert_eq!(
        outputs.scored.len(),
        8000,
        "a graceful hand-over repeats no post"
    );
    eprintln!("hand-over after {stopped_at} of 8000 posts: 8000 scored messages, 0 duplicates");
}
