//! What the engine tests share: a policy, the dashboard's signing key, builders for scored
//! events and signed decisions, and readers of the engine's outputs.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;

use patroli_contracts::{
    fingerprint, topics, AuditEvent, DecisionAction, DecisionSigner, DecisionVerifier, Latency,
    ModelRef, PostRef, Reasons, ReviewDecision, ScoredEvent, SourceKind, SourceOffset,
};
use patroli_takedown::{Bounds, Engine, Metrics, Outgoing, Policy};

pub const HOAX: &str = "Surat suara di TPS 05 Kelurahan Cempaka sudah dicoblos duluan untuk paslon nomor 2 sebelum pemilih datang. Petugas KPPS diam saja, Bawaslu tdk bertindak. Sebarkan sebelum dihapus!";
pub const OTHER: &str = "Info dari grup sebelah: pemungutan suara diundur ke tanggal 21 Februari karena logistik KPU belum siap, jadi besok gk usah ke TPS ya. Tolong teruskan ke keluarga dan tetangga kalian";
pub const NOW: &str = "2024-02-14T10:00:00Z";
/// Where the decisions of these tests were "read".
pub const AT: &str = "review.decisions.v1:0:7";

/// The dashboard's key in these tests; the engines hold its public key only.
pub fn signer() -> &'static DecisionSigner {
    static SIGNER: std::sync::OnceLock<DecisionSigner> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| DecisionSigner::generate("dashboard-1").unwrap())
}

pub fn verifier() -> DecisionVerifier {
    let keys = DecisionVerifier::add_to("", signer(), "test").unwrap();
    DecisionVerifier::parse(&keys, "test").unwrap()
}

pub fn policy(extra: &str) -> Policy {
    let text = format!(
        "version = \"test-1\"\n[defaults]\nreview = 0.7\n{extra}\n[protected]\naccounts = [\"x:kpu_ri\"]\ndomains = [\"kpu.go.id\"]\n[burst]\ndistinct_authors = 5\nwindow_minutes = 60\n"
    );
    Policy::parse(&text, "test").expect("valid policy")
}

pub fn engine(extra: &str) -> Engine {
    engine_with(extra, Bounds::default())
}

pub fn engine_with(extra: &str, bounds: Bounds) -> Engine {
    Engine::new(policy(extra), verifier(), bounds, Metrics::new())
}

pub fn scored(
    platform: &str,
    id: usize,
    text: &str,
    author: &str,
    minute: usize,
    score: f32,
) -> ScoredEvent {
    ScoredEvent {
        schema_version: 1,
        event_id: format!("ev-{platform}-{id}"),
        source_kind: SourceKind::Post,
        post: PostRef {
            platform: platform.into(),
            post_id: format!("p{id}"),
        },
        complaint_id: None,
        referenced_post: None,
        author: author.into(),
        created_at: format!("2024-02-13T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60),
        url: Some(format!("https://{platform}.example/p{id}")),
        region: None,
        lang: Some("id".into()),
        score,
        label: patroli_contracts::Label::Disinformation,
        category: "ballot_fraud".into(),
        categories: BTreeMap::from([("ballot_fraud".to_owned(), score)]),
        model: ModelRef {
            name: "m".into(),
            version: "1".into(),
        },
        scored_at: NOW.into(),
        latency: Latency {
            processing_ms: 1.0,
            end_to_end_ms: None,
        },
        fingerprint: fingerprint(text),
        reasons: Reasons {
            top_tokens: vec!["dicoblos".into()],
        },
        matches: Vec::new(),
        source: SourceOffset {
            topic: topics::POSTS_SCORED.into(),
            partition: 0,
            offset: id as i64,
        },
    }
}

/// A decision signed by the dashboard's key, made on revision 1 showing post `x:p<shown>`.
pub fn decision_showing(
    id: &str,
    narrative: &str,
    action: DecisionAction,
    shown: usize,
) -> ReviewDecision {
    let mut decision = ReviewDecision {
        schema_version: 1,
        decision_id: id.into(),
        narrative_id: narrative.into(),
        action,
        reason: Some("checked with Bawaslu".into()),
        reviewer: "reviewer_07".into(),
        decided_at: NOW.into(),
        confirmed_references: Vec::new(),
        revision: 1,
        shown_posts: vec![PostRef {
            platform: "x".into(),
            post_id: format!("p{shown}"),
        }],
        signature: None,
    };
    signer().sign(&mut decision);
    decision
}

/// A signed decision showing `x:p0`, the founding post of most narratives here.
pub fn decision(id: &str, narrative: &str, action: DecisionAction) -> ReviewDecision {
    decision_showing(id, narrative, action, 0)
}

pub fn of<T: serde::de::DeserializeOwned>(out: &[Outgoing], topic: &str) -> Vec<T> {
    out.iter()
        .filter(|o| o.topic == topic)
        .map(|o| serde_json::from_slice(&o.payload).expect("valid JSON"))
        .collect()
}

pub fn variant(i: usize) -> String {
    let text = match i % 4 {
        0 => HOAX.to_owned(),
        1 => HOAX.to_uppercase(),
        2 => format!("{HOAX} 😡😡 #Pemilu2024 https://t.co/x{i}"),
        _ => HOAX.replace("sebelum", "sebeluuuum"),
    };
    text.replace("nomor 2", &format!("nomor {}", i % 3 + 1))
}

/// The audit entries of `out`, each as (`why`, its subject id).
pub fn audited(out: &[Outgoing]) -> Vec<(String, String)> {
    of::<AuditEvent>(out, topics::TAKEDOWN_AUDIT)
        .into_iter()
        .map(|a| (a.why, a.subject_id))
        .collect()
}
