//! The consumer-lag gauge against a real broker's watermarks and the
//! group's committed offsets.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const POSTS: usize = 600;
const GROUP: &str = "lag";

/// `patroli_consumer_lag` per (topic, partition) as the classifier serves it.
fn lag_gauge(classifier: &ClassifierProcess) -> BTreeMap<(String, i32), i64> {
    let Some((_, body)) = classifier.get("/metrics") else {
        return BTreeMap::new();
    };
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("patroli_consumer_lag{")?;
            let (labels, value) = rest.split_once("} ")?;
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
            };
            Some((
                (label("topic")?, label("partition")?.parse().ok()?),
                value.parse().ok()?,
            ))
        })
        .collect()
}

/// The real backlog per input partition: high watermark minus the group's
/// committed offset (the low watermark if it has none).
fn backlog(stream: &Stream) -> BTreeMap<(String, i32), i64> {
    // Never joins the group: committed offsets are read, not taken over.
    let reader: BaseConsumer = kafka(&stream.brokers)
        .client_config("test-lag")
        .set("group.id", stream.unique(GROUP))
        .create()
        .expect("reader");
    let mut wanted = TopicPartitionList::new();
    for (topic, partitions) in [
        (&stream.raw, raw_partitions()),
        (&stream.complaints, complaint_partitions()),
    ] {
        for partition in 0..partitions {
            wanted.add_partition(topic, partition);
        }
    }
    // A freshly started broker may still be loading the group coordinator;
    // that answer is transient, so ask again.
    let started = Instant::now();
    let committed = loop {
        match reader.committed_offsets(wanted.clone(), Duration::from_secs(10)) {
            Ok(committed) => break committed,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("committed offsets not available yet ({e}); asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("committed offsets: {e}"),
        }
    };
    let backlog = committed
        .elements()
        .iter()
        .map(|e| {
            let (low, high) = reader
                .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))
                .expect("watermarks");
            let done = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            ((e.topic().to_owned(), e.partition()), high - done)
        })
        .collect();
    drop(committed); // before the consumer (docs/broker.md, client rules)
    backlog
}

fn wait_for_lag(
    classifier: &ClassifierProcess,
    want: &BTreeMap<(String, i32), i64>,
) -> BTreeMap<(String, i32), i64> {
    let started = Instant::now();
    loop {
        let seen = lag_gauge(classifier);
        if &seen == want {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "lag gauge {seen:?} never matched the backlog {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// With batches held open nothing is committed, so the gauge shows every
/// produced post as lag; once everything is scored and committed it shows
/// zero. Both times it equals high watermark minus committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_equals_the_backlog() {
    let stream = Stream::create(&shared_brokers(), "lag").await;
    let model = tiny_model();
    stream.produce_posts(&stream.producer(), 0..POSTS).await;

    let held_open = [
        ("PATROLI_BATCH__MAX_POSTS", "1000000"),
        ("PATROLI_BATCH__MAX_TOKENS", "1000000000"),
        ("PATROLI_BATCH__MAX_WAIT_MS", "3600000"),
        ("PATROLI_LAG_REFRESH_MS", "200"),
    ];
    let mut held = ClassifierProcess::spawn(&stream, model.path(), GROUP, &held_open);
    let backlog_before = backlog(&stream);
    assert_eq!(
        backlog_before.values().sum::<i64>(),
        POSTS as i64,
        "nothing is committed yet"
    );
    wait_for_lag(&held, &backlog_before);
    assert!(held.terminate().success());

    let collector = Collector::start(&stream, "read_committed");
    let running = ClassifierProcess::spawn(
        &stream,
        model.path(),
        GROUP,
        &[("PATROLI_LAG_REFRESH_MS", "200")],
    );
    collector.wait_for(POSTS, Duration::from_secs(120));
    // Offsets are committed after their outputs are written, on the
    // classifier's commit interval: poll for it.
    let started = Instant::now();
    let drained = loop {
        let backlog = backlog(&stream);
        if backlog.values().all(|&lag| lag == 0) {
            break backlog;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "offsets never committed up to the end: {backlog:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    wait_for_lag(&running, &drained);
    drop(running);
    assert_eq!(
        collector.finish().missing_posts(POSTS),
        Vec::<String>::new()
    );
}
