//! size: the poison-input and crash scenarios, each with every assertion the issue names.
//!
//! The takedown service under poison inputs and SIGKILLs, on the broker: inputs that would
//! make an oversized or broken record are audited and the service goes on; a service killed
//! again and again while posts and decisions flow requests every confirmed post exactly once.
//!
//! Sizes: `PATROLI_SOAK_SIZE` copies of one narrative in the poison test (default 1,201: three
//! pages), and `PATROLI_TAKEDOWN_SOAK` = `events,narratives,kills` for the crash test (default
//! `600,60,3`). The documented full run:
//!
//! ```text
//! PATROLI_SOAK_SIZE=20000 PATROLI_TAKEDOWN_SOAK=20000,2000,10 \
//!   cargo test -p patroli --test takedown_faults -- --test-threads 1
//! ```

mod common;
#[path = "common/takedown.rs"]
#[allow(dead_code)] // tests/takedown.rs uses the rest
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{kafka, produce};
use harness::{DecisionKeys, TakedownCollector, TakedownOutputs, TakedownProcess, TestPost};
use patroli_contracts::{topics, AuditSubject, DecisionAction, ReviewDecision, ReviewItem};
use rdkafka::producer::FutureProducer;

const HOAX: &str = "Surat suara di TPS 05 Kelurahan Cempaka sudah dicoblos duluan untuk paslon nomor 2 sebelum pemilih datang. Petugas KPPS diam saja, Bawaslu tdk bertindak. Sebarkan sebelum dihapus!";
const POLICY: &str = "version = \"faults-1\"\n[defaults]\nreview = 0.7\n";
/// How long no new output must come before the outcome is counted.
const QUIET: Duration = Duration::from_secs(5);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Setup {
    /// Each test's own: both read the same topics whole.
    _broker: patroli_runtime::LocalBroker,
    brokers: String,
    producer: FutureProducer,
    keys: DecisionKeys,
    policy: tempfile::NamedTempFile,
    group: String,
    collector: TakedownCollector,
}

impl Setup {
    async fn new() -> Self {
        let (broker, brokers, policy) = harness::broker_with_policy(POLICY).await;
        let producer = kafka(&brokers)
            .idempotent_producer("takedown-faults")
            .create()
            .expect("producer");
        Setup {
            _broker: broker,
            collector: TakedownCollector::start(&brokers),
            group: format!("takedown-faults-{}", rand::random::<u32>()),
            keys: DecisionKeys::generate(),
            brokers,
            producer,
            policy,
        }
    }

    fn spawn(&self) -> TakedownProcess {
        let mut service =
            TakedownProcess::spawn(&self.brokers, &self.group, self.policy.path(), &self.keys);
        service.wait_ready();
        service
    }

    async fn send(&self, topic: &str, messages: Vec<(String, Vec<u8>)>) {
        let messages: Vec<_> = messages
            .into_iter()
            .map(|(k, v)| (Some(k), Some(v)))
            .collect();
        produce(&self.producer, topic, &messages).await;
    }

    async fn send_posts(&self, posts: &[TestPost]) {
        let raw = posts.iter().map(|p| (p.key(), p.raw_json())).collect();
        self.send(topics::POSTS_RAW, raw).await;
        let scored = posts.iter().map(|p| (p.key(), p.scored_json())).collect();
        self.send(topics::POSTS_SCORED, scored).await;
    }

    async fn decide(&self, decisions: &[ReviewDecision]) {
        let messages = decisions
            .iter()
            .map(|d| (d.narrative_id.clone(), serde_json::to_vec(d).unwrap()))
            .collect();
        self.send(topics::REVIEW_DECISIONS, messages).await;
    }

    /// Waits for the audit entry about an input whose reason starts with `why`.
    fn audited_input(&self, what: &str, why: &str) -> String {
        let outputs = self.collector.wait_until(what, |o| {
            o.audit
                .iter()
                .any(|a| a.subject == AuditSubject::Input && a.why.starts_with(why))
        });
        let entry = outputs
            .audit
            .iter()
            .find(|a| a.subject == AuditSubject::Input && a.why.starts_with(why))
            .unwrap();
        entry.why.clone()
    }

    /// `patroli audit verify` on the audit topic.
    fn verify_audit_chain(&self) {
        let verified = std::process::Command::new(env!("CARGO_BIN_EXE_patroli"))
            .args(["audit", "verify", "--brokers", &self.brokers])
            .output()
            .expect("run patroli audit verify");
        assert!(
            verified.status.success(),
            "{}{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    /// Waits until `done` holds and nothing new came out for [`QUIET`]; returns the outputs.
    fn quiescent(&self, what: &str, done: impl Fn(&TakedownOutputs) -> bool) -> TakedownOutputs {
        let started = Instant::now();
        let mut last = (0, 0, 0, 0);
        let mut since = Instant::now();
        loop {
            let outputs = self.collector.snapshot();
            let now = (
                outputs.review.len(),
                outputs.requests.len(),
                outputs.labels.len(),
                outputs.audit.len(),
            );
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= QUIET && done(&outputs) {
                return outputs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "no quiescence with {what} within 10 minutes: {} requests",
                outputs.requests.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn copy(platform: &'static str, id: String, text: &str, minute: u32) -> TestPost {
    TestPost {
        url: Some(format!("https://{platform}.example/{id}")),
        platform,
        author: format!("u-{id}"),
        post_id: id,
        text: text.to_owned(),
        minute,
        score: 0.9,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_inputs_are_audited_and_the_service_goes_on() {
    let copies = env_usize("PATROLI_SOAK_SIZE", 1_201);
    let setup = Setup::new().await;
    let mut service = setup.spawn();

    // One narrative with many copies on one platform: its record stays small, its confirmation
    // goes out in pages.
    let posts: Vec<TestPost> = (0..copies)
        .map(|i| copy("x", format!("m{i:05}"), HOAX, (i % 600) as u32))
        .collect();
    setup.send_posts(&posts).await;
    let items = setup
        .collector
        .wait_until("every copy in the review item", |o| {
            o.items().values().any(|i| i.post_count == copies as u64)
        });
    let item = items.items().into_values().next().unwrap();

    // A signed decision whose reason no state record can carry (the topic takes 1 MB at most;
    // anything over 64 KiB is refused).
    let huge = setup.keys.decision(
        "d-huge",
        &item,
        DecisionAction::Confirm,
        Some(&"x".repeat(900_000)),
    );
    let bytes = serde_json::to_vec(&huge).unwrap().len();
    // A decision for a narrative that does not exist.
    let mut unknown = item.clone();
    unknown.narrative_id = "n-unknown".into();
    let stray = setup
        .keys
        .decision("d-stray", &unknown, DecisionAction::Confirm, None);
    setup.decide(&[huge, stray]).await;
    assert_eq!(
        setup.audited_input("the huge decision's refusal", "decision d-huge refused"),
        format!("decision d-huge refused: {bytes} bytes, over the 65536 a narrative's state record can carry")
    );
    setup.audited_input(
        "the stray decision's audit",
        "decision for unknown narrative n-unknown",
    );

    // A malformed state record, read at the next start-up.
    setup
        .send(
            topics::TAKEDOWN_STATE,
            vec![("post:x:broken".into(), b"{not json".to_vec())],
        )
        .await;
    assert!(service.terminate().success(), "a clean stop");
    let _service = setup.spawn();
    let why = setup.audited_input(
        "the malformed state record's audit",
        "post record post:x:broken: ",
    );
    assert!(why.contains("key must be a string"), "{why}");

    // The service went on: a valid confirmation of the narrative goes out, in pages.
    let confirm = setup
        .keys
        .decision("d-confirm", &item, DecisionAction::Confirm, Some("checked"));
    setup.decide(&[confirm]).await;
    let outputs = setup.quiescent("the confirmation's requests", |o| {
        o.requests.iter().map(|r| r.posts.len()).sum::<usize>() == copies
    });
    let mut sizes: Vec<usize> = outputs.requests.iter().map(|r| r.posts.len()).collect();
    let mut expected: Vec<usize> = (0..copies)
        .step_by(500)
        .map(|start| (copies - start).min(500))
        .collect();
    sizes.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sizes, expected);
    assert_eq!(outputs.unique_requests().len(), outputs.requests.len());
    setup.verify_audit_chain();
}

/// A text of 24 words of letters only, for narrative `k`.
fn narrative_text(k: usize) -> String {
    let mut state = (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..24)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (0..7)
                .map(|i| (b'a' + ((state >> (i * 5)) % 26) as u8) as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `count` narrative texts whose fingerprints are pairwise far apart, so none groups with
/// another (grouping distance 10).
fn distinct_texts(count: usize) -> Vec<String> {
    let mut texts: Vec<(String, u64)> = Vec::with_capacity(count);
    let mut k = 0;
    while texts.len() < count {
        let text = narrative_text(k);
        k += 1;
        let print = u64::from_str_radix(&patroli_contracts::fingerprint(&text), 16).unwrap();
        if texts.iter().all(|(_, p)| (p ^ print).count_ones() > 20) {
            texts.push((text, print));
        }
    }
    texts.into_iter().map(|(t, _)| t).collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    Confirmed,
    Rejected,
    Unreviewed,
}

fn fate(k: usize) -> Fate {
    match k % 3 {
        0 => Fate::Confirmed,
        1 => Fate::Rejected,
        _ => Fate::Unreviewed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_while_posts_and_decisions_flow_request_every_confirmed_post_once() {
    let soak = std::env::var("PATROLI_TAKEDOWN_SOAK").unwrap_or_else(|_| "600,60,3".into());
    let [events, narratives, kills]: [usize; 3] = soak
        .split(',')
        .map(|n| {
            n.parse()
                .expect("PATROLI_TAKEDOWN_SOAK=events,narratives,kills")
        })
        .collect::<Vec<_>>()
        .try_into()
        .expect("three numbers");
    let setup = Setup::new().await;
    let texts = distinct_texts(narratives);
    let platforms = ["x", "facebook", "tiktok"];
    let posts: Vec<TestPost> = (0..events)
        .map(|i| {
            let k = i % narratives;
            copy(
                platforms[i % 3],
                format!("e{i:05}"),
                &texts[k],
                (i % 600) as u32,
            )
        })
        .collect();
    let narrative_of: BTreeMap<String, usize> = posts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.post_id.clone(), i % narratives))
        .collect();
    let chunks: Vec<&[TestPost]> = posts.chunks(events.div_ceil(kills + 1)).collect();

    let mut service = setup.spawn();
    let mut decided: BTreeSet<String> = BTreeSet::new();
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    for (round, chunk) in chunks.iter().enumerate() {
        setup.send_posts(chunk).await;
        // Decisions for every narrative with a review item not decided yet.
        let decisions = decide_new(&setup, &texts, &mut decided, &mut fates);
        setup.decide(&decisions).await;
        if round < kills {
            // Kill while it works: after some output of this round, before it is all out.
            let before = setup.collector.snapshot().review.len();
            setup
                .collector
                .wait_until("output of this round", |o| o.review.len() > before);
            assert!(
                service.child.try_wait().unwrap().is_none(),
                "the service is alive before kill {round}"
            );
            service.signal(libc::SIGKILL);
            let status = service.child.wait().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "kill {round} landed");
            service = setup.spawn();
        }
    }
    // Narratives whose items came late get their decisions too.
    let all_items = setup
        .collector
        .wait_until("every narrative's item", |o| o.items().len() == narratives);
    assert_eq!(all_items.items().len(), narratives);
    let decisions = decide_new(&setup, &texts, &mut decided, &mut fates);
    setup.decide(&decisions).await;

    let confirmed_posts: BTreeSet<String> = posts
        .iter()
        .filter(|p| {
            fates.get(&narrative_id_of(&texts[narrative_of[&p.post_id]])) == Some(&Fate::Confirmed)
        })
        .map(|p| p.post_id.clone())
        .collect();
    let outputs = setup.quiescent("every confirmed post requested", |o| {
        o.requests.iter().map(|r| r.posts.len()).sum::<usize>() >= confirmed_posts.len()
    });
    // Committed exactly once: no request twice, every confirmed post in exactly one.
    assert_eq!(outputs.unique_requests().len(), outputs.requests.len());
    let mut listed: BTreeMap<String, usize> = BTreeMap::new();
    for request in &outputs.requests {
        assert_eq!(
            fates.get(&request.narrative_id),
            Some(&Fate::Confirmed),
            "request {} for a narrative nobody confirmed",
            request.request_id
        );
        for post in &request.posts {
            *listed.entry(post.post_id.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        listed.keys().cloned().collect::<BTreeSet<_>>(),
        confirmed_posts
    );
    assert!(listed.values().all(|&n| n == 1), "a post in two requests");
    assert_eq!(
        fates.values().filter(|f| **f == Fate::Confirmed).count(),
        narratives.div_ceil(3)
    );
    drop(service);
    setup.verify_audit_chain();
}

/// The narrative id the service gives the narrative of `text` (named after its fingerprint).
fn narrative_id_of(text: &str) -> String {
    format!("n-{}", patroli_contracts::fingerprint(text))
}

/// Signed decisions for the narratives with an item and no decision yet: confirm, reject or
/// none by the narrative's index.
fn decide_new(
    setup: &Setup,
    texts: &[String],
    decided: &mut BTreeSet<String>,
    fates: &mut BTreeMap<String, Fate>,
) -> Vec<ReviewDecision> {
    let index: BTreeMap<String, usize> = texts
        .iter()
        .enumerate()
        .map(|(k, t)| (narrative_id_of(t), k))
        .collect();
    let items: Vec<ReviewItem> = setup.collector.snapshot().items().into_values().collect();
    let mut decisions = Vec::new();
    for item in items {
        if !decided.insert(item.narrative_id.clone()) {
            continue;
        }
        let fate = fate(index[&item.narrative_id]);
        fates.insert(item.narrative_id.clone(), fate);
        let action = match fate {
            Fate::Confirmed => DecisionAction::Confirm,
            Fate::Rejected => DecisionAction::Reject,
            Fate::Unreviewed => continue,
        };
        let id = format!("d-{}", item.narrative_id);
        decisions.push(setup.keys.decision(&id, &item, action, Some("checked")));
    }
    decisions
}
