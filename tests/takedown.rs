//! size: one end-to-end workflow, then the attacks run against the same broker and service, which share its setup.
//!
//! The takedown service end to end on the broker: near-duplicate grouping across platforms,
//! re-deliveries and out-of-order input, review → signed confirm/reject → requests and labels,
//! partner statuses, protected sources, a SIGKILL and a restart in the middle changing nothing;
//! then forged decisions and state records changing nothing, and the audit chain checked by
//! `patroli audit verify`.

mod common;
#[path = "common/takedown.rs"]
#[allow(dead_code)] // tests/complaints.rs uses the rest
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use common::{kafka, produce};
use harness::{listed_by_platform, DecisionKeys, TakedownCollector, TakedownProcess, TestPost};
use patroli_contracts::{
    topics, AuditSubject, DecisionAction, DecisionSigner, NarrativeStatus, RequestBasis,
    ReviewDecision, ReviewItem, ReviewLabel,
};
use rdkafka::producer::{FutureProducer, FutureRecord};

const HOAX: &str = "BREAKING!!! Surat suara di TPS 05 Kelurahan Cempaka sudah dicoblos duluan untuk paslon nomor 2 sebelum pemilih datang. Petugas KPPS diam saja, Bawaslu tdk bertindak. Sebarkan sebelum dihapus!";
const DATE: &str = "Info dari grup sebelah: pemungutan suara diundur ke tanggal 21 Februari karena logistik KPU belum siap, jadi besok gk usah ke TPS ya. Tolong teruskan ke keluarga dan tetangga kalian";
const QUOTE: &str = "Katanya capres itu bilang rakyat kecil tidak perlu ikut pemilu karena suaranya sudah diatur. Ini kutipan asli dari pidatonya di Medan kemarin, cek videonya sendiri kalau gak percaya";
const UNRELATED: [&str; 5] = [
    "Mantap banget bakso di depan kampus tadi siang, kuahnya gurih dan porsinya gede. Besok mau ajak anak-anak kos makan bareng di sana sambil nonton bola",
    "Debat capres ketiga malam ini membahas pertahanan, keamanan dan hubungan internasional. Para kandidat saling adu gagasan soal anggaran alutsista dan diplomasi di kawasan ASEAN",
    "Harga cabai di pasar induk naik lagi minggu ini, ibu-ibu pada ngeluh karena belanja dapur makin mahal padahal gaji suami tidak ikut naik sama sekali",
    "antrian di TPS dekat rumah panjang banget tapi seru ketemu tetangga lama, habis nyoblos langsung sarapan nasi uduk bareng keluarga besar di warung",
    "Jadwal pemungutan suara 14 Februari 2024 pukul 07.00 sampai 13.00 WIB, jangan lupa bawa KTP elektronik dan surat pemberitahuan memilih ke TPS masing-masing",
];
const PLATFORMS: [&str; 3] = ["x", "facebook", "tiktok"];

const POLICY: &str = r#"version = "test-2024.02"
[defaults]
review = 0.7
[protected]
accounts = ["x:kpu_ri"]
domains = ["kpu.go.id"]
[burst]
distinct_authors = 10
window_minutes = 60
"#;

/// The i-th of 50 lightly edited copies of the hoax, as copy-paste chains make them: case,
/// emoji, hashtags, links, elongation, and the candidate's number changed.
fn hoax_variant(i: usize) -> String {
    let text = match i % 5 {
        0 => HOAX.to_owned(),
        1 => HOAX.to_lowercase(),
        2 => format!("{HOAX} 😡😡🔥 #Pemilu2024 #TolakCurang https://t.co/a{i}"),
        3 => HOAX
            .replace("sebelum", "sebeluuuum")
            .replace("!!!", "!!!!!!"),
        _ => format!("#KawalSuara 🙏 {}", HOAX.to_uppercase()),
    };
    text.replace("nomor 2", &format!("nomor {}", i % 3 + 1))
}

fn post(
    platform: &'static str,
    id: String,
    author: String,
    text: String,
    minute: u32,
    score: f32,
) -> TestPost {
    TestPost {
        url: Some(format!("https://{platform}.example/{id}")),
        platform,
        post_id: id,
        author,
        text,
        minute,
        score,
    }
}

async fn send(producer: &FutureProducer, topic: &str, messages: Vec<(String, Vec<u8>)>) {
    let messages: Vec<_> = messages
        .into_iter()
        .map(|(k, v)| (Some(k), Some(v)))
        .collect();
    produce(producer, topic, &messages).await;
}

async fn send_scored(producer: &FutureProducer, posts: &[&TestPost]) {
    let messages = posts.iter().map(|p| (p.key(), p.scored_json())).collect();
    send(producer, topics::POSTS_SCORED, messages).await;
}

fn json(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// A decision as a `review.decisions.v1` message.
fn message(decision: &ReviewDecision) -> (String, Vec<u8>) {
    (
        decision.narrative_id.clone(),
        serde_json::to_vec(decision).unwrap(),
    )
}

fn status(request: &str, platform: &str, status: &str, reason: Option<&str>) -> (String, Vec<u8>) {
    let value = serde_json::json!({
        "schema_version": 1, "request_id": request, "platform": platform, "status": status,
        "reason": reason, "reported_by": format!("{platform}-trust-safety"),
        "reported_at": "2024-02-13T10:00:00Z",
    });
    (request.to_owned(), json(value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takedown_workflow_end_to_end() {
    let (_broker, brokers, policy) = harness::broker_with_policy(POLICY).await;
    let keys = DecisionKeys::generate();
    let producer: FutureProducer = kafka(&brokers)
        .idempotent_producer("takedown-test")
        .create()
        .expect("producer");
    let collector = TakedownCollector::start(&brokers);

    // 50 copies of one hoax on 3 platforms by 50 accounts over 4 hours; 5 copies of a second
    // narrative; 3 posts of a third from protected sources; 5 unrelated posts.
    let hoax: Vec<TestPost> = (0..50)
        .map(|i| {
            post(
                PLATFORMS[i % 3],
                format!("a{i:02}"),
                format!("u{i}"),
                hoax_variant(i),
                (i * 5) as u32,
                0.8 + (i % 10) as f32 / 100.0,
            )
        })
        .collect();
    let date: Vec<TestPost> = (0..5)
        .map(|i| {
            post(
                PLATFORMS[i % 3],
                format!("b{i}"),
                format!("v{i}"),
                format!("{DATE} {}", "!".repeat(i)),
                i as u32,
                0.85,
            )
        })
        .collect();
    let mut protected: Vec<TestPost> = (0..3)
        .map(|i| {
            post(
                "x",
                format!("c{i}"),
                format!("w{i}"),
                QUOTE.to_owned(),
                i as u32,
                0.99,
            )
        })
        .collect();
    protected[0].author = "kpu_ri".into();
    protected[1].url = Some("https://www.kpu.go.id/berita/c1".into());
    protected[2].url = Some("https://jatim.kpu.go.id/c2".into());
    let scores = [0.99, 0.75, 0.3, 0.3, 0.3];
    let unrelated: Vec<TestPost> = (0..5)
        .map(|i| {
            post(
                "facebook",
                format!("u{i}"),
                format!("z{i}"),
                UNRELATED[i].to_owned(),
                i as u32,
                scores[i],
            )
        })
        .collect();
    let everything: Vec<&TestPost> = hoax
        .iter()
        .chain(&date)
        .chain(&protected)
        .chain(&unrelated)
        .collect();
    send(
        &producer,
        topics::POSTS_RAW,
        everything.iter().map(|p| (p.key(), p.raw_json())).collect(),
    )
    .await;

    let group = format!("takedown-{}", rand::random::<u32>());
    let mut service = TakedownProcess::spawn(&brokers, &group, policy.path(), &keys);
    service.wait_ready();

    // First 30 copies newest first (out of order), 10 of them delivered twice, plus the rest.
    let mut first: Vec<&TestPost> = hoax[..30].iter().rev().collect();
    first.extend(&hoax[..10]);
    first.extend(date.iter().chain(&protected).chain(&unrelated));
    send_scored(&producer, &first).await;
    collector.wait_until("30 copies grouped", |o| {
        o.items().values().any(|i| i.post_count == 30)
    });

    // SIGKILL mid-stream: the restarted service rebuilds its state and carries on.
    service.kill();
    let mut service = TakedownProcess::spawn(&brokers, &group, policy.path(), &keys);
    service.wait_ready();
    let mut rest: Vec<&TestPost> = hoax[30..].iter().collect();
    rest.extend(&hoax[20..40]);
    send_scored(&producer, &rest).await;
    let out = collector.wait_until("50 copies grouped", |o| {
        o.items().values().any(|i| i.post_count == 50)
    });

    let items = out.items();
    let counts: BTreeSet<u64> = items.values().map(|i| i.post_count).collect();
    assert_eq!(
        items.len(),
        5,
        "hoax, date, protected quote, 2 unrelated above review: {items:#?}"
    );
    assert_eq!(counts, BTreeSet::from([1, 3, 5, 50]));
    let narrative_of = |post_id: &str| {
        items
            .values()
            .find(|i| i.sample_posts.iter().any(|p| p.post.post_id == post_id))
            .map(|i| i.narrative_id.clone())
    };
    let by_count = |n: u64| items.values().find(|i| i.post_count == n).unwrap().clone();
    let hoax_item = by_count(50);
    assert_eq!(hoax_item.platforms, ["facebook", "tiktok", "x"]);
    assert_eq!(hoax_item.status, NarrativeStatus::PendingReview);
    assert_eq!(hoax_item.policy_version, "test-2024.02");
    assert!(
        hoax_item.coordinated.is_some(),
        "50 accounts within hours is a burst"
    );
    assert_eq!(
        by_count(3)
            .sample_posts
            .iter()
            .filter(|p| p.protected)
            .count(),
        3
    );
    // Nothing goes out before a reviewer confirms, however high the score (u0 is 0.99).
    assert!(out.unique_requests().is_empty());
    assert!(narrative_of("u0").is_some());

    // Confirm the hoax (delivered twice), reject the second narrative: signed, as the desk does.
    let date_item = by_count(5);
    let date_narrative = date_item.narrative_id.clone();
    let quote_item = by_count(3);
    let quote_narrative = quote_item.narrative_id.clone();
    let confirm = keys.decision("d-1", &hoax_item, DecisionAction::Confirm, None);
    let reject = keys.decision(
        "d-2",
        &date_item,
        DecisionAction::Reject,
        Some("satire account, not a hoax"),
    );
    send(
        &producer,
        topics::REVIEW_DECISIONS,
        vec![message(&confirm), message(&reject), message(&confirm)],
    )
    .await;
    let out = collector.wait_until("requests and labels", |o| {
        o.unique_requests().len() == 3 && o.unique_labels().len() == 55
    });
    let confirmed: Vec<_> = out
        .unique_requests()
        .into_values()
        .filter(|r| r.narrative_id == hoax_item.narrative_id)
        .collect();
    assert_eq!(confirmed.len(), 3, "one request per platform");
    let expected: BTreeMap<String, BTreeSet<String>> = PLATFORMS
        .iter()
        .map(|p| {
            (
                p.to_string(),
                hoax.iter()
                    .filter(|h| h.platform == *p)
                    .map(|h| h.post_id.clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(listed_by_platform(&confirmed), expected);
    assert!(confirmed.iter().all(|r| r.basis == RequestBasis::Confirmed
        && r.decision_id == "d-1"
        && r.policy_version == "test-2024.02"
        && r.evidence_excerpt
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("surat suara"))));
    let labels = out.unique_labels();
    let not_hoax: Vec<_> = labels
        .values()
        .filter(|l| l.label == ReviewLabel::NotHoax)
        .collect();
    assert_eq!(not_hoax.len(), 5);
    assert!(not_hoax
        .iter()
        .all(|l| l.narrative_id == date_narrative && l.text.starts_with("Info dari grup")));
    assert!(out
        .unique_requests()
        .values()
        .all(|r| r.narrative_id != date_narrative));

    // A new copy after confirmation is requested without another review.
    let late = post(
        "tiktok",
        "a-late".into(),
        "late".into(),
        hoax_variant(7).to_uppercase(),
        400,
        0.6,
    );
    send(
        &producer,
        topics::POSTS_RAW,
        vec![(late.key(), late.raw_json())],
    )
    .await;
    send_scored(&producer, &[&late]).await;
    let out = collector.wait_until("the late copy's request", |o| {
        o.unique_requests().len() == 4
    });
    let copy = out
        .unique_requests()
        .into_values()
        .find(|r| r.basis == RequestBasis::ConfirmedNarrativeCopy)
        .unwrap();
    assert_eq!(
        (
            copy.platform.as_str(),
            copy.posts.len(),
            copy.posts[0].post_id.as_str()
        ),
        ("tiktok", 1, "a-late")
    );

    // Partner statuses, one of them late and out of order, one for a request that does not exist.
    let id = |platform: &str| {
        confirmed
            .iter()
            .find(|r| r.platform == platform)
            .unwrap()
            .request_id
            .clone()
    };
    let statuses = vec![
        status(&id("x"), "x", "acknowledged", None),
        status(&id("x"), "x", "removed", None),
        status(
            &id("facebook"),
            "facebook",
            "rejected",
            Some("does not violate our rules"),
        ),
        status(&id("tiktok"), "tiktok", "acknowledged", None),
        status(&id("x"), "x", "acknowledged", None),
        status("no-such-request", "x", "removed", None),
    ];
    send(&producer, topics::TAKEDOWN_STATUS, statuses).await;
    let moves = |o: &harness::TakedownOutputs| -> BTreeSet<(String, String, String)> {
        o.unique_audit()
            .into_values()
            .filter(|a| a.subject == AuditSubject::Request && a.from.is_some())
            .map(|a| (a.subject_id, a.from.unwrap(), a.to))
            .collect()
    };
    let out = collector.wait_until("request transitions", |o| moves(o).len() == 4);
    let expected_moves = BTreeSet::from([
        (id("x"), "sent".into(), "acknowledged".into()),
        (id("x"), "acknowledged".into(), "removed".into()),
        (id("facebook"), "sent".into(), "rejected".into()),
        (id("tiktok"), "sent".into(), "acknowledged".into()),
    ]);
    assert_eq!(moves(&out), expected_moves);
    let rejection = out
        .unique_audit()
        .into_values()
        .find(|a| a.to == "rejected" && a.subject == AuditSubject::Request)
        .unwrap();
    assert_eq!(
        (rejection.who.as_str(), rejection.why.as_str()),
        ("facebook-trust-safety", "does not violate our rules")
    );
    collector.wait_until("the unknown request's audit", |o| {
        o.unique_audit().values().any(|a| {
            a.subject == AuditSubject::Input
                && a.why == "status for unknown request no-such-request"
        })
    });

    collector.wait_until("the late copy's label", |o| o.unique_labels().len() == 56);

    // A clean restart, then every input again: nothing new comes out.
    assert!(service.terminate().success());
    let mut service = TakedownProcess::spawn(&brokers, &group, policy.path(), &keys);
    service.wait_ready();
    let removed =
        "patroli_takedown_requests{category=\"ballot_fraud\",platform=\"x\",state=\"removed\"}";
    assert_eq!(service.metric(removed), Some(1.0), "request states rebuilt");
    assert_eq!(service.metric("patroli_review_queue_depth"), Some(3.0));
    let before = collector.snapshot();
    let mut again: Vec<&TestPost> = everything.clone();
    again.push(&late);
    send_scored(&producer, &again).await;
    let redelivered = vec![message(&confirm), message(&reject)];
    send(&producer, topics::REVIEW_DECISIONS, redelivered).await;
    let started = std::time::Instant::now();
    while service.metric("patroli_takedown_ignored_total{reason=\"duplicate_decision\"}")
        != Some(2.0)
        || service.metric("patroli_takedown_ignored_total{reason=\"duplicate_post\"}")
            != Some(again.len() as f64 - 3.0)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "re-deliveries not all seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let after = collector.snapshot();
    assert_eq!(
        after.unique_requests().len(),
        before.unique_requests().len()
    );
    assert_eq!(after.unique_labels().len(), before.unique_labels().len());
    assert_eq!(after.items(), before.items());
    // The protected narrative was never requested: nobody confirmed it.
    assert!(after
        .unique_requests()
        .values()
        .all(|r| r.narrative_id != quote_narrative));

    let quote = Forgery {
        brokers: &brokers,
        producer: &producer,
        collector: &collector,
        keys: &keys,
        item: &quote_item,
        other: &date_item,
    };
    quote.forged_decisions_change_nothing().await;
    drop(service);
    quote
        .forged_state_changes_nothing(&group, policy.path())
        .await;
    quote.audit_chain_is_verified().await;
}

/// Forgeries against the protected narrative, still pending review after the honest flow.
struct Forgery<'a> {
    brokers: &'a str,
    producer: &'a FutureProducer,
    collector: &'a TakedownCollector,
    keys: &'a DecisionKeys,
    item: &'a ReviewItem,
    /// Another narrative, whose real decision is replayed against this one.
    other: &'a ReviewItem,
}

impl Forgery<'_> {
    fn requested(&self) -> usize {
        self.collector
            .snapshot()
            .unique_requests()
            .values()
            .filter(|r| r.narrative_id == self.item.narrative_id)
            .count()
    }

    /// Waits for the input audit entries of `subjects`' rejections and returns their reasons.
    fn rejections(&self, what: &str, count: usize, prefix: &str) -> BTreeSet<String> {
        let reasons = |o: &harness::TakedownOutputs| -> BTreeSet<String> {
            o.unique_audit()
                .into_values()
                .filter(|a| a.subject == AuditSubject::Input && a.why.starts_with(prefix))
                .map(|a| a.why)
                .collect()
        };
        let out = self
            .collector
            .wait_until(what, |o| reasons(o).len() >= count);
        reasons(&out)
    }

    async fn forged_decisions_change_nothing(&self) {
        let confirm = |id: &str| {
            self.keys
                .decision(id, self.item, DecisionAction::Confirm, None)
        };
        let mut unsigned = confirm("f-1");
        unsigned.signature = None;
        let mut unknown = confirm("f-2");
        DecisionSigner::generate("stolen-laptop")
            .unwrap()
            .sign(&mut unknown);
        let mut altered_action =
            self.keys
                .decision("f-3", self.item, DecisionAction::Reject, Some("looks fine"));
        altered_action.action = DecisionAction::Confirm;
        let mut altered_narrative =
            self.keys
                .decision("f-4", self.other, DecisionAction::Confirm, None);
        altered_narrative.narrative_id = self.item.narrative_id.clone();
        let forged = [unsigned, unknown, altered_action, altered_narrative];
        send(
            self.producer,
            topics::REVIEW_DECISIONS,
            forged.iter().map(message).collect(),
        )
        .await;
        let mismatch = "decision signature does not match its content (key \"dashboard-test\")";
        assert_eq!(
            self.rejections("the forged decisions' audit", 4, "decision f-"),
            BTreeSet::from([
                "decision f-1 ignored: decision is not signed".to_owned(),
                "decision f-2 ignored: decision signed by unknown key \"stolen-laptop\"".to_owned(),
                format!("decision f-3 ignored: {mismatch}"),
                format!("decision f-4 ignored: {mismatch}"),
            ])
        );
        let items = self.collector.snapshot().items();
        assert_eq!(
            items[&self.item.narrative_id].status,
            NarrativeStatus::PendingReview
        );
        assert_eq!(self.requested(), 0);
    }

    /// A `confirmed` state record without a decision, then a restart and a new unprotected copy
    /// of the narrative: no request, and the rebuild says why it ignored the record.
    async fn forged_state_changes_nothing(&self, group: &str, policy: &std::path::Path) {
        let narrative = &self.item.narrative_id;
        let forged = serde_json::json!({
            "narrative_id": narrative, "status": "confirmed", "revision": 1,
            "queued_at": "2024-02-13T08:00:00Z", "decision": null, "decisions_seen": [],
            "requests": {},
        });
        send(
            self.producer,
            topics::TAKEDOWN_STATE,
            vec![
                (format!("narrative:{narrative}"), json(forged)),
                ("post:x:garbage".into(), b"{not json".to_vec()),
            ],
        )
        .await;
        let mut service = TakedownProcess::spawn(self.brokers, group, policy, self.keys);
        service.wait_ready();
        assert_eq!(
            self.rejections("the forged narrative's audit", 1, "state record for "),
            BTreeSet::from([format!(
                "state record for {narrative} ignored: status confirmed without a decision"
            )])
        );
        self.rejections(
            "the malformed record's audit",
            1,
            "post record post:x:garbage: ",
        );
        let copy = post(
            "facebook",
            "c-late".into(),
            "anon".into(),
            QUOTE.to_owned(),
            30,
            0.99,
        );
        send(
            self.producer,
            topics::POSTS_RAW,
            vec![(copy.key(), copy.raw_json())],
        )
        .await;
        send_scored(self.producer, &[&copy]).await;
        let out = self
            .collector
            .wait_until("the copy joins the narrative", |o| {
                o.items()[narrative].post_count == 4
            });
        assert_eq!(
            out.items()[narrative].status,
            NarrativeStatus::PendingReview
        );
        assert_eq!(self.requested(), 0);
        assert!(service.terminate().success());
    }

    /// `patroli audit verify` passes on what the service wrote, and names a forged record
    /// appended to the chain.
    async fn audit_chain_is_verified(&self) {
        let verify = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_patroli"))
                .args(["audit", "verify", "--brokers", self.brokers])
                .output()
                .expect("run patroli audit verify")
        };
        let honest = verify();
        let stdout = String::from_utf8_lossy(&honest.stdout).into_owned();
        assert!(
            honest.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&honest.stderr)
        );
        let records: i64 = stdout
            .strip_suffix(" record(s), every chain intact\n")
            .and_then(|s| s.rsplit("takedown.audit.v1: ").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in {stdout}"));
        // Every record the service wrote (duplicates after restarts included) was checked.
        self.collector
            .wait_until("every audit record verified", |o| {
                o.audit.len() as i64 == records
            });
        // One partition, one chain from the genesis.
        assert!(
            stdout.starts_with(&format!(
                "takedown.audit.v1: partition 0: {records} record(s) from genesis, last link "
            )),
            "{stdout}"
        );
        // A record someone else appends, pretending to be the service.
        let forged = serde_json::json!({
            "schema_version": 1, "event_id": "x", "narrative_id": self.item.narrative_id,
            "subject": "narrative", "subject_id": self.item.narrative_id, "from": "pending_review",
            "to": "confirmed", "who": "reviewer_07", "when": "2024-02-13T09:00:00Z",
            "why": "confirmed by reviewer", "policy_version": "test-2024.02",
            "prev_hash": "0".repeat(64),
        })
        .to_string();
        let appended = self
            .producer
            .send(
                FutureRecord::to(topics::TAKEDOWN_AUDIT)
                    .partition(0)
                    .key(&self.item.narrative_id)
                    .payload(&forged),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("append a forged record");
        let (partition, offset) = (appended.partition, appended.offset);
        // Every audit record is in partition 0 (the summary above), among transaction
        // markers, which take offsets too: the forged record lands after all of them.
        assert_eq!(partition, 0);
        assert!(
            offset > records,
            "offset {offset} after {records} records and markers"
        );
        let broken = verify();
        assert!(!broken.status.success());
        let stderr = String::from_utf8_lossy(&broken.stderr);
        assert!(
            stderr.contains(&format!(
                "takedown.audit.v1: broken link at partition {partition} offset {offset}: prev_hash is {}, but the record before it hashes to ",
                "0".repeat(64)
            )),
            "{stderr}"
        );
    }
}

/// No policy can send a narrative's first request without a person: `auto` is refused at
/// start-up, with the line and the reason.
#[test]
fn a_policy_with_auto_is_refused() {
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        POLICY.replace("review = 0.7", "review = 0.7\nauto = 0.97"),
    )
    .unwrap();
    let keys = DecisionKeys::generate();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patroli"))
        .args(["serve", "takedown"])
        .env("PATROLI_POLICY_FILE", policy.path())
        .env("PATROLI_DECISION_KEYS_FILE", &keys.verifying)
        .env("PATROLI_KAFKA__BROKERS", "127.0.0.1:1")
        .output()
        .expect("run patroli serve takedown");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:4: defaults.auto is not supported: a narrative's first takedown request always needs a reviewer's signed decision (copies of a confirmed narrative are already requested without one); remove this line",
        policy.path().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
