//! Crash safety: the classifier is killed with SIGKILL at random points
//! while consuming 10,000 posts and restarted each time. Nothing may be
//! lost; duplicates are allowed in at-least-once mode (and reported), and
//! de-duplicating by `event_id` leaves exactly one event per post.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
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

    let seed: u64 = std::env::var("PATROLI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash points from seed {seed} (PATROLI_CRASH_SEED reproduces)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Kill after a random share of the stream has come out, in order.
    let mut kill_at: Vec<usize> = (0..KILLS)
        .map(|_| rng.random_range(300..POSTS - 1500))
        .collect();
    kill_at.sort_unstable();

    let collector = Collector::start(&brokers, "read_committed");
    for (round, at) in kill_at.iter().enumerate() {
        let mut classifier = ClassifierProcess::spawn(&brokers, model.path(), "crash", &[]);
        let started = std::time::Instant::now();
        while collector.unique_total() < *at {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "no progress before kill {round}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // A little random extra so kills land mid-batch as well as between.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        classifier.kill();
        eprintln!(
            "kill {} after {} distinct outputs",
            round + 1,
            collector.unique_total()
        );
    }
    let _survivor = ClassifierProcess::spawn(&brokers, model.path(), "crash", &[]);
    collector.wait_for(POSTS, Duration::from_secs(300));
    let outputs = collector.finish();

    let keys = outputs.scored_keys();
    let missing: Vec<_> = (0..POSTS)
        .map(post_key)
        .filter(|k| !keys.contains(k))
        .collect();
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
