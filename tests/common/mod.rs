//! Shared harness for the broker-backed tests: one Apache Kafka broker per
//! test binary (its tests run in parallel, each on its own topics and consumer
//! groups), a tiny model built on the fly, the `patroli` binary as a child
//! process, and a reader that collects what the classifier produced.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

mod classifier;
mod collector;
mod service;

pub use classifier::*;
pub use collector::*;
pub use service::*;

use patroli_contracts::topics;
use patroli_runtime::{ensure_topics, KafkaConfig, LocalBroker};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A broker of the test's own, for tests that kill or restart it.
pub fn start_broker() -> LocalBroker {
    LocalBroker::start(&repo_root()).expect("start Apache Kafka (deploy/local/kafka.sh)")
}

/// The test binary's broker, started on first use. It is never dropped; it
/// dies with the test process (LocalBroker's death signal).
pub fn shared_brokers() -> String {
    static BROKER: OnceLock<LocalBroker> = OnceLock::new();
    BROKER.get_or_init(start_broker).bootstrap_servers()
}

pub fn kafka(brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_owned(),
        ..KafkaConfig::default()
    }
}

pub fn partitions_of(topic: &str) -> i32 {
    topics::LOCAL_PARTITIONS
        .iter()
        .find(|(name, _)| *name == topic)
        .map(|(_, partitions)| *partitions)
        .expect("a pipeline topic")
}

pub fn raw_partitions() -> i32 {
    partitions_of(topics::POSTS_RAW)
}

pub fn complaint_partitions() -> i32 {
    partitions_of(topics::COMPLAINTS)
}

/// One test's pipeline topics and group names. Names carry a random tag, so
/// tests sharing a broker never see each other's messages or groups.
#[derive(Clone, Debug)]
pub struct Stream {
    pub brokers: String,
    pub raw: String,
    pub complaints: String,
    pub scored: String,
    pub dlq: String,
    pub claims: String,
    tag: String,
}

impl Stream {
    /// Fresh topics on `brokers`, with the local partition counts.
    pub async fn create(brokers: &str, name: &str) -> Stream {
        Stream::create_with(brokers, name, raw_partitions()).await
    }

    /// Fresh topics with `raw` partitions for the raw and scored topics.
    pub async fn create_with(brokers: &str, name: &str, raw: i32) -> Stream {
        let tag = format!("{name}-{:08x}", rand::random::<u32>());
        let named = |topic: &str| format!("{topic}.{tag}");
        let stream = Stream {
            brokers: brokers.to_owned(),
            raw: named(topics::POSTS_RAW),
            complaints: named(topics::COMPLAINTS),
            scored: named(topics::POSTS_SCORED),
            dlq: named(topics::POSTS_DLQ),
            claims: named(topics::CLAIMS),
            tag,
        };
        let layout: Vec<(&str, i32)> = stream
            .topics()
            .into_iter()
            .map(|(contract, name)| {
                let scales = [topics::POSTS_RAW, topics::POSTS_SCORED].contains(&contract);
                let partitions = if scales { raw } else { partitions_of(contract) };
                (name.as_str(), partitions)
            })
            .collect();
        ensure_topics(&kafka(brokers), &layout)
            .await
            .expect("create the test's topics");
        stream
    }

    /// The contract's own topic names, created on librdkafka's MockCluster
    /// (its own API: an admin CreateTopics call hangs on it). The mock is
    /// for injected broker faults only.
    pub fn on_mock(mock: &MockCluster<'static, DefaultProducerContext>) -> Stream {
        let stream = Stream::standard(&mock.bootstrap_servers());
        for (contract, name) in stream.topics() {
            mock.create_topic(name, partitions_of(contract), 1)
                .expect("mock topic");
        }
        stream
    }

    /// The contract's own topic names on `brokers`; creates nothing.
    pub fn standard(brokers: &str) -> Stream {
        Stream {
            brokers: brokers.to_owned(),
            raw: topics::POSTS_RAW.into(),
            complaints: topics::COMPLAINTS.into(),
            scored: topics::POSTS_SCORED.into(),
            dlq: topics::POSTS_DLQ.into(),
            claims: topics::CLAIMS.into(),
            tag: format!("{:08x}", rand::random::<u32>()),
        }
    }

    /// Each of the stream's topics with the contract it follows.
    fn topics(&self) -> [(&'static str, &String); 5] {
        [
            (topics::POSTS_RAW, &self.raw),
            (topics::COMPLAINTS, &self.complaints),
            (topics::POSTS_SCORED, &self.scored),
            (topics::POSTS_DLQ, &self.dlq),
            (topics::CLAIMS, &self.claims),
        ]
    }

    /// A consumer-group (or transactional) id unique to this stream.
    pub fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.tag)
    }

    /// The classifier's topic settings for this stream.
    pub fn classifier_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATROLI_POSTS_TOPIC".into(), self.raw.clone()),
            ("PATROLI_COMPLAINTS_TOPIC".into(), self.complaints.clone()),
            ("PATROLI_OUTPUT_TOPIC".into(), self.scored.clone()),
            ("PATROLI_DLQ_TOPIC".into(), self.dlq.clone()),
            ("PATROLI_CLAIMS_TOPIC".into(), self.claims.clone()),
        ]
    }

    pub fn producer(&self) -> FutureProducer {
        kafka(&self.brokers)
            .idempotent_producer("test-producer")
            .create()
            .expect("producer")
    }

    /// Produces posts `range` (see `post_json`) to the raw topic.
    pub async fn produce_posts(&self, producer: &FutureProducer, range: std::ops::Range<usize>) {
        let messages: Vec<_> = range
            .map(|i| (Some(post_key(i)), Some(post_json(i).into_bytes())))
            .collect();
        produce(producer, &self.raw, &messages).await;
    }
}

/// A complete tiny model directory (same loading code path as the real one).
pub fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    patroli_training::build_tiny_model(dir.path(), 7).expect("build tiny model");
    dir
}

/// The `schemathesis` executable (PyPI, pinned), installed on first use by
/// tests/schemathesis.sh, for the tests that check an OpenAPI document against its server.
pub fn schemathesis() -> String {
    let script = repo_root().join("tests/schemathesis.sh");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What every server must satisfy against its OpenAPI document: only documented statuses,
/// content types, headers and bodies, no unexpected 5xx, invalid requests and methods refused.
const OPENAPI_CHECKS: [&str; 7] = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
];

/// Runs schemathesis (from `schemathesis()`) on the committed OpenAPI document `spec`
/// (relative to the repository root) against the server at `url`, with `OPENAPI_CHECKS`
/// plus `extra_checks`, generated examples per operation and extra arguments (e.g. an auth
/// header). `workdir` holds its config (schemathesis.toml) and cache. Fails with its report
/// on any mismatch.
pub fn assert_server_obeys(
    spec: &str,
    url: &str,
    extra_checks: &[&str],
    max_examples: u32,
    extra: &[String],
    workdir: &std::path::Path,
) {
    let out = std::process::Command::new(schemathesis())
        .arg("run")
        .arg(repo_root().join(spec))
        .args(["--url", url])
        .args(extra)
        .args([
            "--checks",
            &[&OPENAPI_CHECKS[..], extra_checks].concat().join(","),
        ])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(workdir)
        .env("NO_COLOR", "1")
        // schemathesis reads its config from, and keeps a cache folder in, its working directory.
        .current_dir(workdir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the server and its document disagree:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const TEXTS: [&str; 6] = [
    "Surat suara sudah dicoblos di gudang KPU, sebarkan sebelum dihapus!",
    "Jadwal pemungutan suara 14 Februari 2024 pukul 07.00 sampai 13.00 WIB, bawa KTP-el.",
    "[HOAKS] Beredar pesan bahwa pemilu ditunda. Faktanya KPU tidak pernah mengumumkan itu.",
    "antrian di TPS 05 panjang bgt wkwk tp seru ketemu tetangga",
    "Harga cabai di pasar naik lagi, ibu-ibu pada ngeluh",
    "Debat capres semalam lebih banyak saling sindir daripada adu program.",
];

const PLATFORMS: [&str; 3] = ["x", "facebook", "tiktok"];

pub fn post_json(i: usize) -> String {
    serde_json::json!({
        "schema_version": 1,
        "platform": PLATFORMS[i % 3],
        "post_id": format!("p{i:06}"),
        "text": format!("{} #{i}", TEXTS[i % TEXTS.len()]),
        "created_at": "2024-02-10T08:00:00Z",
        "author": format!("anon-{}", i % 97),
        "region": "DKI Jakarta",
    })
    .to_string()
}

pub fn post_key(i: usize) -> String {
    format!("{}:p{i:06}", PLATFORMS[i % 3])
}

/// Produces `payload`s (with keys) to `topic`, awaiting every delivery.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    messages: &[(Option<String>, Option<Vec<u8>>)],
) {
    for chunk in messages.chunks(1000) {
        let sends = chunk.iter().map(|(key, payload)| {
            let mut record: FutureRecord<'_, String, Vec<u8>> = FutureRecord::to(topic);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            producer.send(record, Duration::from_secs(30))
        });
        for delivery in futures::future::join_all(sends).await {
            delivery.map_err(|(e, _)| e).expect("delivery");
        }
    }
}
