//! Crash safety: the classifier is killed with SIGKILL at random points
//! while consuming 10,000 posts and restarted each time. Nothing may be
//! lost; duplicates are allowed in at-least-once mode (and reported), and
//! de-duplicating by `event_id` leaves exactly one event per post.

mod common;

use common::*;
use std::time::Duration;

const POSTS: usize = 10_000;
const KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_consumption_loses_nothing_at_least_once_on_tansu() {
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    create_topics(&brokers).await;
    let model = tiny_model();
    produce_posts(&producer(&brokers), 0..POSTS).await;

    let collector = Collector::start(&brokers, "read_committed");
    let _survivor = kill_repeatedly(&collector, POSTS, KILLS, || {
        ClassifierProcess::spawn(&brokers, model.path(), "crash", &[])
    });
    collector.wait_for(POSTS, Duration::from_secs(300));
    let outputs = collector.finish();

    let missing = outputs.missing_posts(POSTS);
    assert!(
        missing.is_empty(),
        "{} posts lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(outputs.unique_scored().len(), POSTS);
    assert!(outputs.dlq.is_empty(), "no valid post may be dead-lettered");
    let duplicates = outputs.scored.len() - POSTS;
    eprintln!(
        "at-least-once after {KILLS} SIGKILLs: {} scored messages for {POSTS} posts, {duplicates} duplicates removed by event_id",
        outputs.scored.len()
    );
}
