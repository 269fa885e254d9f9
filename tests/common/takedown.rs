//! Harness for the takedown tests: the `patroli serve takedown` child process, a collector of its
//! output topics, and builders for the events it consumes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patroli_contracts::{
    fingerprint, topics, AuditEvent, DecisionAction, DecisionSigner, LabelRecord, Latency,
    ModelRef, PostRef, Reasons, ReviewDecision, ReviewItem, ScoredEvent, SourceKind, SourceOffset,
    TakedownRequest,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::common::{kafka, service_wrapper, ServiceProcess};

/// A `patroli serve takedown` child process.
pub struct TakedownProcess(ServiceProcess);
service_wrapper!(TakedownProcess, 0);

impl TakedownProcess {
    pub fn spawn(brokers: &str, group: &str, policy: &Path, keys: &DecisionKeys) -> Self {
        let env = [
            ("PATROLI_KAFKA__BROKERS", brokers.to_owned()),
            ("PATROLI_GROUP_ID", group.to_owned()),
            // One per group: tests sharing a broker do not fence each other.
            (
                "PATROLI_TRANSACTIONAL_ID",
                format!("patroli-takedown-{group}"),
            ),
            ("PATROLI_POLICY_FILE", policy.display().to_string()),
            (
                "PATROLI_DECISION_KEYS_FILE",
                keys.verifying.display().to_string(),
            ),
            ("PATROLI_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ];
        TakedownProcess(ServiceProcess::spawn("takedown", env))
    }

    /// Waits until `/readyz` answers 200 (state rebuilt, consuming).
    pub fn wait_ready(&mut self) {
        self.wait_readyz(200, Duration::from_secs(60));
    }
}

/// A decision signing key pair made by `patroli keys generate`, as operators make them: the
/// test signs with the dashboard's half, the service verifies with the other.
pub struct DecisionKeys {
    _dir: tempfile::TempDir,
    pub verifying: PathBuf,
    signer: DecisionSigner,
}

impl DecisionKeys {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let signing = dir.path().join("dashboard.signing.toml");
        let verifying = dir.path().join("takedown.verifying.toml");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_patroli"))
            .args(["keys", "generate", "--key-id", "dashboard-test"])
            .arg("--signing-key")
            .arg(&signing)
            .arg("--verifying-keys")
            .arg(&verifying)
            .status()
            .expect("run patroli keys generate");
        assert!(status.success());
        DecisionKeys {
            signer: DecisionSigner::load(&signing).expect("a signing key file"),
            _dir: dir,
            verifying,
        }
    }

    /// A reviewer's decision on `item` as the dashboard's desk makes it: the revision and posts
    /// shown, signed with the dashboard's key.
    pub fn decision(
        &self,
        id: &str,
        item: &ReviewItem,
        action: DecisionAction,
        reason: Option<&str>,
    ) -> ReviewDecision {
        let mut decision = ReviewDecision {
            schema_version: 1,
            decision_id: id.into(),
            narrative_id: item.narrative_id.clone(),
            action,
            reason: reason.map(str::to_owned),
            reviewer: "reviewer_07".into(),
            decided_at: "2024-02-13T09:00:00Z".into(),
            confirmed_references: Vec::new(),
            revision: item.revision,
            shown_posts: item.sample_posts.iter().map(|p| p.post.clone()).collect(),
            signature: None,
        };
        self.signer.sign(&mut decision);
        decision
    }

    /// A confirmation of `item` that also confirms the complaint-referenced posts `references`.
    pub fn confirming_references(
        &self,
        id: &str,
        item: &ReviewItem,
        references: &[PostRef],
    ) -> ReviewDecision {
        let mut decision = self.decision(id, item, DecisionAction::Confirm, None);
        decision.confirmed_references = references.to_vec();
        self.signer.sign(&mut decision);
        decision
    }
}

/// Everything read from the takedown output topics, raw (duplicates included).
#[derive(Default, Clone)]
pub struct TakedownOutputs {
    pub review: Vec<ReviewItem>,
    pub requests: Vec<TakedownRequest>,
    pub labels: Vec<LabelRecord>,
    pub audit: Vec<AuditEvent>,
}

impl TakedownOutputs {
    /// The latest revision of each narrative's review item.
    pub fn items(&self) -> BTreeMap<String, ReviewItem> {
        let mut items: BTreeMap<String, ReviewItem> = BTreeMap::new();
        for item in &self.review {
            let newer = items
                .get(&item.narrative_id)
                .is_none_or(|known| known.revision < item.revision);
            if newer {
                items.insert(item.narrative_id.clone(), item.clone());
            }
        }
        items
    }

    /// Requests by id (re-produced duplicates collapse).
    pub fn unique_requests(&self) -> BTreeMap<String, TakedownRequest> {
        self.requests
            .iter()
            .map(|r| (r.request_id.clone(), r.clone()))
            .collect()
    }

    pub fn unique_labels(&self) -> BTreeMap<String, LabelRecord> {
        self.labels
            .iter()
            .map(|l| (l.label_id.clone(), l.clone()))
            .collect()
    }

    pub fn unique_audit(&self) -> BTreeMap<String, AuditEvent> {
        self.audit
            .iter()
            .map(|a| (a.event_id.clone(), a.clone()))
            .collect()
    }
}

/// Reads the takedown output topics (committed records) from the beginning in the background.
pub struct TakedownCollector {
    outputs: Arc<Mutex<TakedownOutputs>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TakedownCollector {
    pub fn start(brokers: &str) -> Self {
        let consumer: BaseConsumer = kafka(brokers)
            .client_config("takedown-collector")
            .set(
                "group.id",
                format!("td-collector-{}", rand::random::<u64>()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            // What partners and the dashboard see: the service writes in transactions.
            .set("isolation.level", "read_committed")
            .create()
            .expect("collector consumer");
        consumer
            .subscribe(&[
                topics::REVIEW_QUEUE,
                topics::TAKEDOWN_REQUESTS,
                topics::LABELS,
                topics::TAKEDOWN_AUDIT,
            ])
            .expect("subscribe");
        let outputs = Arc::new(Mutex::new(TakedownOutputs::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, s) = (outputs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let payload = message.payload().expect("outputs have payloads");
                let mut outputs = o.lock().unwrap();
                let topic = message.topic();
                match topic {
                    topics::REVIEW_QUEUE => outputs.review.push(decode(topic, payload)),
                    topics::TAKEDOWN_REQUESTS => {
                        let request: TakedownRequest = decode(topic, payload);
                        let key = message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned());
                        assert_eq!(key.as_deref(), Some(request.platform.as_str()));
                        outputs.requests.push(request);
                    }
                    topics::LABELS => outputs.labels.push(decode(topic, payload)),
                    _ => outputs.audit.push(decode(topic, payload)),
                }
            }
        });
        TakedownCollector {
            outputs,
            stop,
            thread: Some(thread),
        }
    }

    pub fn snapshot(&self) -> TakedownOutputs {
        self.outputs.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was read so far; returns that.
    pub fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&TakedownOutputs) -> bool,
    ) -> TakedownOutputs {
        let started = Instant::now();
        loop {
            let outputs = self.snapshot();
            if done(&outputs) {
                return outputs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}: {} items, {} requests, {} labels",
                outputs.items().len(),
                outputs.unique_requests().len(),
                outputs.unique_labels().len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TakedownCollector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(topic: &str, payload: &[u8]) -> T {
    serde_json::from_slice(payload).unwrap_or_else(|e| panic!("invalid message on {topic}: {e}"))
}

/// A post as the test stream carries it: the raw post (for its text) and its scored event.
pub struct TestPost {
    pub platform: &'static str,
    pub post_id: String,
    pub author: String,
    pub text: String,
    pub minute: u32,
    pub score: f32,
    pub url: Option<String>,
}

impl TestPost {
    pub fn key(&self) -> String {
        format!("{}:{}", self.platform, self.post_id)
    }

    pub fn raw_json(&self) -> Vec<u8> {
        serde_json::json!({
            "schema_version": 1,
            "platform": self.platform,
            "post_id": self.post_id,
            "text": self.text,
            "created_at": self.created_at(),
            "author": self.author,
            "url": self.url,
        })
        .to_string()
        .into_bytes()
    }

    fn created_at(&self) -> String {
        format!(
            "2024-02-13T{:02}:{:02}:00+07:00",
            8 + self.minute / 60,
            self.minute % 60
        )
    }

    pub fn scored_json(&self) -> Vec<u8> {
        let event = ScoredEvent {
            schema_version: 1,
            event_id: format!("scored-{}", self.key()),
            source_kind: SourceKind::Post,
            post: PostRef {
                platform: self.platform.into(),
                post_id: self.post_id.clone(),
            },
            complaint_id: None,
            referenced_post: None,
            author: self.author.clone(),
            created_at: self.created_at(),
            url: self.url.clone(),
            region: None,
            lang: Some("id".into()),
            score: self.score,
            label: if self.score >= 0.5 {
                patroli_contracts::Label::Disinformation
            } else {
                patroli_contracts::Label::NotDisinformation
            },
            category: "ballot_fraud".into(),
            categories: BTreeMap::from([("ballot_fraud".to_owned(), self.score)]),
            model: ModelRef {
                name: "test".into(),
                version: "1".into(),
            },
            scored_at: "2024-02-13T02:00:00Z".into(),
            latency: Latency {
                processing_ms: 1.0,
                end_to_end_ms: None,
            },
            fingerprint: fingerprint(&self.text),
            reasons: Reasons {
                top_tokens: vec!["dicoblos".into()],
            },
            matches: Vec::new(),
            source: SourceOffset {
                topic: topics::POSTS_RAW.into(),
                partition: 0,
                offset: 0,
            },
        };
        serde_json::to_vec(&event).expect("scored event serialises")
    }
}

/// Post ids per platform a set of requests lists.
pub fn listed_by_platform<'a>(
    requests: impl IntoIterator<Item = &'a TakedownRequest>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in requests {
        listed
            .entry(request.platform.clone())
            .or_default()
            .extend(request.posts.iter().map(|p| p.post_id.clone()));
    }
    listed
}

/// A broker holding every patroli topic, its bootstrap servers, and `policy` written to the
/// file the takedown service is pointed at.
pub async fn broker_with_policy(
    policy: &str,
) -> (
    patroli_runtime::LocalBroker,
    String,
    tempfile::NamedTempFile,
) {
    let broker = crate::common::start_broker();
    let brokers = broker.bootstrap_servers();
    patroli_runtime::ensure_topics(&kafka(&brokers), &topics::LOCAL_PARTITIONS)
        .await
        .expect("create topics");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), policy).unwrap();
    (broker, brokers, file)
}
