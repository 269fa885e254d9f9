//! Fencing on Apache Kafka: a classifier that stalls mid-transaction (a long
//! GC pause, a frozen node) while a replacement with the same
//! `transactional.id` takes over is a zombie. When it wakes up, its
//! transaction must be fenced: a `read_committed` reader never sees its
//! writes, so every post appears exactly once, and the zombie exits 1,
//! naming the fencing, instead of carrying on.

mod common;

use common::*;
use std::time::{Duration, Instant};

const POSTS: usize = 6_000;
/// Posts produced after the zombie wakes up.
const TOTAL: usize = POSTS + 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_with_the_same_transactional_id_is_fenced() {
    let stream = Stream::create(&shared_brokers(), "zombie").await;
    let model = tiny_model();
    let producer = stream.producer();
    let collector = Collector::start(&stream, "read_committed");
    let transactional_id = stream.unique("classifier");
    let env = [
        ("PATROLI_DELIVERY", "exactly-once"),
        ("PATROLI_TRANSACTIONAL_ID", transactional_id.as_str()),
        // Small batches keep a transaction open nearly all the time, so the
        // freeze lands inside one.
        ("PATROLI_BATCH__MAX_POSTS", "8"),
        // The woken zombie learns it is fenced when its in-flight produce
        // requests fail; a short delivery timeout makes that quick.
        ("PATROLI_KAFKA__EXTRA", r#"{"message.timeout.ms": "10000"}"#),
    ];
    let mut zombie = ClassifierProcess::spawn(&stream, model.path(), "zombie", &env);
    stream.produce_posts(&producer, 0..POSTS / 2).await;
    let started = Instant::now();
    while collector.unique_total() < POSTS / 10 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    zombie.signal(libc::SIGSTOP);
    let frozen_at = collector.unique_total();

    let replacement = ClassifierProcess::spawn(&stream, model.path(), "zombie", &env);
    stream.produce_posts(&producer, POSTS / 2..POSTS).await;
    collector.wait_for(POSTS, Duration::from_secs(300));

    // The zombie wakes up, inside its old transaction if it was frozen in
    // one. Fresh posts make sure it tries to write in either case: it gets
    // partitions again when it rejoins the group, and a fenced producer
    // only learns its fate when it writes.
    zombie.signal(libc::SIGCONT);
    stream.produce_posts(&producer, POSTS..TOTAL).await;
    // Generous: after the failed write it waits out the drain timeout (30 s)
    // for batches still in flight.
    let status = zombie.wait_exit(Duration::from_secs(180));
    let stderr = zombie.stderr();
    assert_eq!(
        status.code(),
        Some(1),
        "a fenced instance exits 1: {stderr}"
    );
    // Its write fails as fenced (librdkafka's fatal error names it), and it
    // stops on that failed transaction, not on anything else.
    assert!(
        stderr.contains("Fatal error: Local: This instance has been fenced by a newer instance"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Error: classifier failed\n\nCaused by:\n    transaction failed, the batch will be \
             re-consumed after restart: "
        ),
        "{stderr}"
    );
    collector.wait_for(TOTAL, Duration::from_secs(120));
    let outputs = collector.finish();

    assert_eq!(
        outputs.missing_posts(TOTAL),
        Vec::<String>::new(),
        "posts lost"
    );
    assert_eq!(
        outputs.scored.len(),
        TOTAL,
        "the zombie's writes must never reach a read_committed reader"
    );
    assert_eq!(replacement.get("/readyz").map(|(s, _)| s), Some(200));
    eprintln!("zombie frozen after {frozen_at} outputs, fenced, exited with {status}");
}
