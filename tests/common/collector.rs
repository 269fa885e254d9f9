//! What the classifier produced, read back from its output topics, and the
//! crash driver that kills classifiers while they work.

use super::{post_key, ClassifierProcess, Stream, SESSION_TIMEOUT};
use patroli_contracts::{DlqEvent, ScoredEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// How long the output topics must stay silent, once every expected event
/// was read, before a test counts duplicates: twice the classifiers' session
/// timeout. After a SIGKILL the group waits that long for the dead member
/// before its partitions are handed on and their uncommitted tail is read
/// again, and the output pauses meanwhile, so a late duplicate comes after
/// such a pause. A shorter wait would count before it arrives.
pub const QUIET: Duration = Duration::from_secs(2 * SESSION_TIMEOUT.as_secs());

/// What the reader thread shares with the test.
struct Shared {
    outputs: Outputs,
    /// When the last message (duplicates included) was read.
    last_read: Instant,
    /// Why the reader stopped early: the test fails with it.
    failure: Option<String>,
}

/// Reads both output topics of a stream in the background, from the
/// beginning, by assignment rather than as a group member: a group would be
/// rebalanced when the broker restarts and, having committed nothing, read
/// everything again, counting phantom duplicates. Progress is judged by what was actually read:
/// in exactly-once mode the watermark also counts aborted messages and
/// transaction markers, which a `read_committed` reader never sees.
///
/// The reader thread never panics: what it cannot read is reported back and
/// fails the test at its next look (`unique_total`, `wait_for`, `finish`).
pub struct Collector {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
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
        let shared = Arc::new(Mutex::new(Shared {
            outputs: Outputs::default(),
            last_read: Instant::now(),
            failure: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (shared.clone(), stop.clone());
        let dlq_topic = stream.dlq.clone();
        let thread = std::thread::spawn(move || {
            if let Err(failure) = read(&consumer, &dlq_topic, &into, &stopped) {
                into.lock().unwrap().failure = Some(failure);
            }
        });
        Collector {
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `f` on what was read so far; fails the test if the reader
    /// stopped early.
    fn look<T>(&self, f: impl FnOnce(&Shared) -> T) -> T {
        let shared = self.shared.lock().unwrap();
        if let Some(failure) = &shared.failure {
            panic!("the output reader failed: {failure}");
        }
        assert!(
            !self.thread.as_ref().is_some_and(|t| t.is_finished()),
            "the output reader thread ended unexpectedly"
        );
        f(&shared)
    }

    pub fn unique_total(&self) -> usize {
        self.look(|s| s.outputs.unique_total())
    }

    /// Messages read, duplicates included.
    pub fn messages(&self) -> usize {
        self.look(|s| s.outputs.scored.len() + s.outputs.dlq.len())
    }

    /// Waits (polling, up to `limit`) until what was read satisfies `done`;
    /// fails with `what` and the count read otherwise.
    pub fn wait_until(&self, what: &str, limit: Duration, done: impl Fn(&Outputs) -> bool) {
        let started = Instant::now();
        while !self.look(|s| done(&s.outputs)) {
            assert!(
                started.elapsed() < limit,
                "{what}: not reached after {limit:?} ({} distinct of {} messages read)",
                self.unique_total(),
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `expected` distinct events were read (within `limit`),
    /// then until nothing new was read for `QUIET` since then (within
    /// `QUIET` x 6 of that: output that never stops is a failure), so late
    /// duplicates are counted too. Call it after the last kill.
    pub fn wait_for(&self, expected: usize, limit: Duration) {
        self.wait_until(&format!("{expected} distinct events"), limit, |o| {
            o.unique_total() >= expected
        });
        let reached = Instant::now();
        loop {
            let last_read = self.look(|s| s.last_read);
            let silent = last_read.max(reached).elapsed();
            if silent >= QUIET {
                return;
            }
            assert!(
                reached.elapsed() < QUIET * 6,
                "the output topics never stayed silent for {QUIET:?} within {:?} of reading \
                 {expected} distinct events ({} messages read)",
                QUIET * 6,
                self.messages()
            );
            std::thread::sleep(QUIET - silent);
        }
    }

    pub fn finish(mut self) -> Outputs {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the output reader thread panicked");
        }
        let mut shared = self.shared.lock().unwrap();
        if let Some(failure) = &shared.failure {
            panic!("the output reader failed: {failure}");
        }
        std::mem::take(&mut shared.outputs)
    }
}

impl Drop for Collector {
    /// A test that fails before `finish` still stops its reader.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The reader thread's loop: every output message, parsed, until `stop`.
fn read(
    consumer: &BaseConsumer,
    dlq_topic: &str,
    into: &Mutex<Shared>,
    stop: &AtomicBool,
) -> Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        // Transport errors (an injected outage, a restarting broker) are
        // transient; the consumer reconnects by itself.
        let Ok(message) = message else {
            continue;
        };
        let at = format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let payload = message
            .payload()
            .ok_or_else(|| format!("{at} has no payload"))?;
        let mut shared = into.lock().unwrap();
        if message.topic() == dlq_topic {
            let event = serde_json::from_slice(payload)
                .map_err(|e| format!("{at} is not a valid DLQ event: {e}"))?;
            shared.outputs.dlq.push(event);
        } else {
            let event = serde_json::from_slice(payload)
                .map_err(|e| format!("{at} is not a valid scored event: {e}"))?;
            shared.outputs.scored.push(event);
        }
        shared.last_read = Instant::now();
    }
    Ok(())
}

/// Runs `instances` classifiers from `spawn(instance)` and, `kills` times,
/// SIGKILLs a random one and restarts it at once, as Kubernetes would. Each
/// kill comes after a random number of distinct outputs, once output is
/// flowing (a new message was read after that point), plus a random few ms,
/// so it lands while batches are being written. With `uncommitted`, a
/// `read_uncommitted` reader of the same topics, a kill instead comes the
/// moment that reader holds messages `collector` has not read: outputs of a
/// transaction still open, so the kill lands inside it. Every kill must hit
/// a running instance and end it (`ServiceProcess::sigkill`). Returns the
/// instances still running. The seed is printed; `PATROLI_CRASH_SEED`
/// reproduces a run.
pub fn kill_repeatedly(
    collector: &Collector,
    uncommitted: Option<&Collector>,
    expected: usize,
    kills: usize,
    instances: usize,
    spawn: impl Fn(usize) -> ClassifierProcess,
) -> Vec<ClassifierProcess> {
    use rand::{Rng, SeedableRng};
    assert!(
        kills >= 1,
        "a crash test needs at least one kill (PATROLI_SOAK_KILLS={kills} proves nothing)"
    );
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
        let before = format!("kill {}", round + 1);
        collector.wait_until(
            &format!("{before} at {at} distinct outputs"),
            Duration::from_secs(240),
            |o| o.unique_total() >= *at,
        );
        let pause = rng.random_range(0..150);
        match uncommitted {
            Some(uncommitted) => {
                // Aborted outputs of earlier kills stay in the gap: wait for it to grow.
                let gap = uncommitted.messages().saturating_sub(collector.messages());
                uncommitted.wait_until(
                    &format!("{before}: a transaction's outputs ahead of its commit"),
                    Duration::from_secs(240),
                    |o| o.scored.len() + o.dlq.len() > collector.messages() + gap,
                );
            }
            None => {
                let read = collector.messages();
                collector.wait_until(
                    &format!("{before}: output flowing again"),
                    Duration::from_secs(240),
                    |o| o.scored.len() + o.dlq.len() > read,
                );
                std::thread::sleep(Duration::from_millis(pause));
            }
        }
        running[*victim].sigkill();
        eprintln!(
            "{before} (instance {victim}) after {} distinct outputs",
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
