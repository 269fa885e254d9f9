//! Shared harness for the pipeline tests: a real tansu broker on loopback,
//! a tiny model built on the fly, the `patroli` binary as a child process,
//! and a reader that collects what the classifier produced.
#![allow(dead_code)] // each test binary uses a different part of the harness

use patroli_contracts::{topics, DlqEvent, ScoredEvent};
use patroli_runtime::{ensure_topics, KafkaConfig, LocalBroker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RAW_PARTITIONS: i32 = 6;
pub const COMPLAINT_PARTITIONS: i32 = 3;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn start_broker() -> LocalBroker {
    LocalBroker::start(&repo_root()).expect("start tansu (deploy/local/broker.sh)")
}

pub fn kafka(brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_owned(),
        ..KafkaConfig::default()
    }
}

/// The pipeline's topics and their partition counts in every test.
pub const TOPICS: [(&str, i32); 4] = [
    (topics::POSTS_RAW, RAW_PARTITIONS),
    (topics::COMPLAINTS, COMPLAINT_PARTITIONS),
    (topics::POSTS_SCORED, RAW_PARTITIONS),
    (topics::POSTS_DLQ, 1),
];

pub async fn create_topics(brokers: &str) {
    ensure_topics(&kafka(brokers), &TOPICS)
        .await
        .expect("create topics");
}

/// librdkafka's in-process mock broker with the pipeline's topics, for what
/// tansu cannot do (transactions, injected faults). It listens on loopback,
/// so a classifier child process can reach it.
pub fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    for (topic, partitions) in TOPICS {
        // The mock's own API: an admin CreateTopics call hangs on it.
        mock.create_topic(topic, partitions, 1).expect("mock topic");
    }
    mock
}

/// A complete tiny model directory (same loading code path as the real one).
pub fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    patroli_model::build_tiny_model(dir.path(), 7).expect("build tiny model");
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `patroli serve classifier` child process.
pub struct ClassifierProcess {
    pub child: Child,
    pub http_port: u16,
}

impl ClassifierProcess {
    pub fn spawn(brokers: &str, model_dir: &Path, group: &str, extra_env: &[(&str, &str)]) -> Self {
        let http_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_patroli"));
        command
            .args(["serve", "classifier"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PATROLI_KAFKA__BROKERS", brokers)
            .env("PATROLI_MODEL_DIR", model_dir)
            .env("PATROLI_GROUP_ID", group)
            .env("PATROLI_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("PATROLI_SESSION_TIMEOUT_MS", "6000")
            .env("PATROLI_THREADS", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn patroli serve classifier");
        ClassifierProcess { child, http_port }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait for classifier")
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }

    /// Value of an unlabelled or fully-labelled metric line, e.g.
    /// `patroli_assigned_partitions` or `patroli_dlq_total{reason="not_json"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn wait_for_metric(
        &self,
        series: &str,
        want: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> f64 {
        let started = Instant::now();
        loop {
            if let Some(v) = self.metric(series) {
                if want(v) {
                    return v;
                }
            }
            assert!(
                started.elapsed() < limit,
                "{series} did not reach the expected value within {limit:?} (last {:?})",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ClassifierProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
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

pub fn producer(brokers: &str) -> FutureProducer {
    kafka(brokers)
        .idempotent_producer("test-producer")
        .create()
        .expect("producer")
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

pub async fn produce_posts(producer: &FutureProducer, range: std::ops::Range<usize>) {
    let messages: Vec<_> = range
        .map(|i| (Some(post_key(i)), Some(post_json(i).into_bytes())))
        .collect();
    produce(producer, topics::POSTS_RAW, &messages).await;
}

/// Everything read from the output topics, raw (duplicates included).
#[derive(Default)]
pub struct Outputs {
    pub scored: Vec<ScoredEvent>,
    pub dlq: Vec<DlqEvent>,
}

impl Outputs {
    pub fn unique_scored(&self) -> HashMap<String, &ScoredEvent> {
        self.scored
            .iter()
            .map(|e| (e.event_id.clone(), e))
            .collect()
    }
    pub fn unique_dlq(&self) -> HashMap<String, &DlqEvent> {
        self.dlq.iter().map(|e| (e.event_id.clone(), e)).collect()
    }
    pub fn unique_total(&self) -> usize {
        self.unique_scored().len() + self.unique_dlq().len()
    }
    /// Post keys that have a scored event.
    pub fn scored_keys(&self) -> HashSet<String> {
        self.scored.iter().map(|e| e.post.key()).collect()
    }

    /// Keys of posts `0..posts` with no scored event: lost posts.
    pub fn missing_posts(&self, posts: usize) -> Vec<String> {
        let keys = self.scored_keys();
        (0..posts)
            .map(post_key)
            .filter(|k| !keys.contains(k))
            .collect()
    }
}

/// Reads both output topics in the background (its own consumer group,
/// from the beginning). tansu's high watermark is unreliable, so progress
/// is judged by what was actually read, never by lag.
pub struct Collector {
    pub outputs: Arc<Mutex<Outputs>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub fn start(brokers: &str, isolation: &str) -> Self {
        let consumer: BaseConsumer = kafka(brokers)
            .client_config("test-collector")
            .set("group.id", format!("collector-{}", rand::random::<u64>()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("session.timeout.ms", "6000")
            .create()
            .expect("collector consumer");
        consumer
            .subscribe(&[topics::POSTS_SCORED, topics::POSTS_DLQ])
            .expect("subscribe");
        let outputs = Arc::new(Mutex::new(Outputs::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, s) = (outputs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                // Transport errors (an injected outage) are transient; the
                // consumer reconnects by itself.
                let Ok(message) = message else {
                    continue;
                };
                let payload = message.payload().expect("outputs have payloads");
                let mut outputs = o.lock().unwrap();
                if message.topic() == topics::POSTS_DLQ {
                    outputs
                        .dlq
                        .push(serde_json::from_slice(payload).expect("valid DLQ event"));
                } else {
                    outputs
                        .scored
                        .push(serde_json::from_slice(payload).expect("valid scored event"));
                }
            }
        });
        Collector {
            outputs,
            stop,
            thread: Some(thread),
        }
    }

    pub fn unique_total(&self) -> usize {
        self.outputs.lock().unwrap().unique_total()
    }

    /// Waits until `expected` distinct events were read, then a little
    /// longer so late duplicates are counted too.
    pub fn wait_for(&self, expected: usize, limit: Duration) {
        let started = Instant::now();
        while self.unique_total() < expected {
            assert!(
                started.elapsed() < limit,
                "only {} of {expected} distinct events after {limit:?}",
                self.unique_total()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    pub fn finish(mut self) -> Outputs {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("collector thread");
        }
        std::mem::take(&mut *self.outputs.lock().unwrap())
    }
}

/// Runs classifiers from `spawn` and SIGKILLs each after a random number of
/// distinct outputs (plus a random few ms, so kills land mid-batch too),
/// `kills` times; returns the survivor that finishes the stream. The seed
/// is printed; `PATROLI_CRASH_SEED` reproduces a run.
pub fn kill_repeatedly(
    collector: &Collector,
    posts: usize,
    kills: usize,
    spawn: impl Fn() -> ClassifierProcess,
) -> ClassifierProcess {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("PATROLI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash points from seed {seed} (PATROLI_CRASH_SEED reproduces)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kill_at: Vec<usize> = (0..kills)
        .map(|_| rng.random_range(posts / 30..posts * 5 / 6))
        .collect();
    kill_at.sort_unstable();
    for (round, at) in kill_at.iter().enumerate() {
        let mut classifier = spawn();
        let started = Instant::now();
        while collector.unique_total() < *at {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "no progress before kill {}",
                round + 1
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        classifier.kill();
        eprintln!(
            "kill {} after {} distinct outputs",
            round + 1,
            collector.unique_total()
        );
    }
    spawn()
}
