//! The Kafka broker itself is SIGKILLed mid-stream and restarted on the same
//! data folder, in both delivery modes. Nothing acknowledged may be lost, and
//! in exactly-once mode a `read_committed` reader sees no duplicate. Each
//! test has a broker of its own, since it kills it.

mod common;

use common::*;
use std::time::Duration;

const POSTS: usize = 6_000;

async fn broker_crash(delivery: &str) -> Outputs {
    let mut broker = start_broker();
    let stream = Stream::create(&broker.bootstrap_servers(), delivery).await;
    let model = tiny_model();
    let producer = stream.producer();
    stream.produce_posts(&producer, 0..POSTS / 2).await;

    let collector = Collector::start(&stream, "read_committed");
    let transactional_id = stream.unique("classifier");
    let env = [
        ("PATROLI_DELIVERY", delivery),
        ("PATROLI_TRANSACTIONAL_ID", transactional_id.as_str()),
    ];
    let spawn = || ClassifierProcess::spawn(&stream, model.path(), "broker-crash", &env);
    let mut classifier = spawn();
    supervise_until(
        &collector,
        POSTS / 4,
        Duration::from_secs(120),
        &mut classifier,
        spawn,
    );

    broker.kill();
    eprintln!(
        "{delivery}: broker killed after {} distinct outputs",
        collector.unique_total()
    );
    std::thread::sleep(Duration::from_secs(2));
    broker
        .restart()
        .expect("restart the broker on its data folder");
    stream.produce_posts(&producer, POSTS / 2..POSTS).await;

    let restarts = supervise_until(
        &collector,
        POSTS,
        Duration::from_secs(300),
        &mut classifier,
        spawn,
    );
    // Late duplicates, if any, arrive within the wait.
    collector.wait_for(POSTS, Duration::from_secs(10));
    let outputs = collector.finish();
    assert_eq!(
        outputs.missing_posts(POSTS),
        Vec::<String>::new(),
        "{delivery}: posts lost to the broker crash"
    );
    assert_eq!(outputs.unique_scored().len(), POSTS);
    assert!(outputs.dlq.is_empty(), "no valid post may be dead-lettered");
    eprintln!(
        "{delivery}: {} scored messages for {POSTS} posts after a broker crash ({restarts} classifier restarts)",
        outputs.scored.len()
    );
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_a_broker_sigkill_without_duplicates() {
    let outputs = broker_crash("exactly-once").await;
    assert_eq!(
        outputs.scored.len(),
        POSTS,
        "a read_committed reader sees each post once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_survives_a_broker_sigkill_without_loss() {
    broker_crash("at-least-once").await;
}
