//! What the classifier produced, read back from its output topics, and the
//! crash driver that kills classifiers while they work.

use super::{post_key, ClassifierProcess, Stream};
use patroli_contracts::{DlqEvent, ScoredEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Reads both output topics of a stream in the background, from the
/// beginning, by assignment rather than as a group member: a group would be
/// rebalanced when the broker restarts and, having committed nothing, read
/// everything again, counting phantom duplicates. Progress is judged by what was actually read:
/// in exactly-once mode the watermark also counts aborted messages and
/// transaction markers, which a `read_committed` reader never sees.
pub struct Collector {
    pub outputs: Arc<Mutex<Outputs>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub fn start(stream: &Stream, isolation: &str) -> Self {
        let consumer: BaseConsumer = super::kafka(&stream.brokers)
            .client_config("test-collector")
            .set("group.id", format!("collector-{}", rand::random::<u64>()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
            .expect("collector consumer");
        let mut partitions = TopicPartitionList::new();
        for topic in [&stream.scored, &stream.dlq] {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .expect("output topic metadata");
            for partition in metadata.topics()[0].partitions() {
                partitions
                    .add_partition_offset(topic, partition.id(), Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer
            .assign(&partitions)
            .expect("assign the output topics");
        let outputs = Arc::new(Mutex::new(Outputs::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, s) = (outputs.clone(), stop.clone());
        let dlq_topic = stream.dlq.clone();
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
                if message.topic() == dlq_topic {
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

/// Runs `instances` classifiers from `spawn(instance)` and, `kills` times,
/// SIGKILLs a random one after a random number of distinct outputs (plus a
/// random few ms, so kills land mid-batch too) and restarts it at once, as
/// Kubernetes would. Returns the instances still running. The seed is
/// printed; `PATROLI_CRASH_SEED` reproduces a run.
pub fn kill_repeatedly(
    collector: &Collector,
    expected: usize,
    kills: usize,
    instances: usize,
    spawn: impl Fn(usize) -> ClassifierProcess,
) -> Vec<ClassifierProcess> {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("PATROLI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash points from seed {seed} (PATROLI_CRASH_SEED reproduces)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kill_at: Vec<(usize, usize)> = (0..kills)
        .map(|_| {
            (
                rng.random_range(expected / 30..expected * 5 / 6),
                rng.random_range(0..instances),
            )
        })
        .collect();
    kill_at.sort_unstable();
    let mut running: Vec<ClassifierProcess> = (0..instances).map(&spawn).collect();
    for (round, (at, victim)) in kill_at.iter().enumerate() {
        let started = Instant::now();
        while collector.unique_total() < *at {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "no progress before kill {} ({} distinct outputs)",
                round + 1,
                collector.unique_total()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        running[*victim].kill();
        eprintln!(
            "kill {} (instance {victim}) after {} distinct outputs",
            round + 1,
            collector.unique_total()
        );
        running[*victim] = spawn(*victim);
    }
    running
}

/// Restarts any instance that exited on its own (an exactly-once instance
/// exits when the broker fails its transaction), as Kubernetes would, until
/// `expected` distinct outputs were read.
pub fn supervise_until(
    collector: &Collector,
    expected: usize,
    limit: Duration,
    instance: &mut ClassifierProcess,
    spawn: impl Fn() -> ClassifierProcess,
) -> usize {
    let started = Instant::now();
    let mut restarts = 0;
    while collector.unique_total() < expected {
        if let Ok(Some(status)) = instance.child.try_wait() {
            eprintln!("classifier exited with {status}; restarting it");
            *instance = spawn();
            restarts += 1;
        }
        assert!(
            started.elapsed() < limit,
            "only {} of {expected} distinct events after {limit:?}",
            collector.unique_total()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    restarts
}
