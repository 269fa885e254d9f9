//! size: one test per engine rule, over the shared builders in tests/support.
//!
//! The workflow rules, without a broker: grouping, review, requests, labels, statuses, audit,
//! idempotence and rebuilding from the state records.

use std::collections::BTreeMap;

use patroli_contracts::{audit_link, DecisionSigner};
use patroli_contracts::{
    topics, AuditEvent, ClaimRecord, ClaimVerdict, DecisionAction, LabelRecord, MatchedClaim,
    NarrativeStatus, PartnerStatus, Priority, RequestBasis, ReviewDecision, ReviewItem,
    ReviewLabel, TakedownRequest, TakedownStatus, AUDIT_GENESIS,
};
use patroli_takedown::state::StateRecord;
use patroli_takedown::{Engine, Outgoing};

mod support;
use support::*;

fn known_claim(id: &str, similarity: f32) -> MatchedClaim {
    MatchedClaim {
        claim_id: id.into(),
        similarity,
        verdict: ClaimVerdict::Hoax,
        source: id.split('-').next().unwrap().into(),
        date: None,
        url: Some(format!("https://cekfakta.example/{id}")),
    }
}

/// The matched claims every output about the narrative of `twelve_variants` shows.
fn expected_claims() -> Vec<MatchedClaim> {
    vec![
        known_claim("tbh-1", 0.97),
        known_claim("komdigi-7", 0.955),
        known_claim("mafindo-3", 0.951),
    ]
}

/// Feeds 12 variants over 3 platforms with texts; returns the outputs and the narrative id.
fn twelve_variants(engine: &mut Engine) -> (Vec<Outgoing>, String) {
    let mut out = Vec::new();
    for i in 0..12 {
        let platform = ["x", "facebook", "tiktok"][i % 3];
        out.extend(engine.on_text(format!("{platform}:p{i}"), variant(i)));
        let mut event = scored(platform, i, &variant(i), &format!("a{i}"), i * 30, 0.9);
        // The first three copies repeat known claims; one claim twice, at two similarities.
        event.matches = match i {
            0 => vec![known_claim("tbh-1", 0.95)],
            1 => vec![known_claim("tbh-1", 0.97), known_claim("komdigi-7", 0.955)],
            2 => vec![known_claim("mafindo-3", 0.951)],
            _ => Vec::new(),
        };
        out.extend(engine.on_scored(event, NOW));
    }
    let items: Vec<ReviewItem> = of(&out, topics::REVIEW_QUEUE);
    let id = items[0].narrative_id.clone();
    (out, id)
}

#[test]
fn near_duplicates_across_platforms_are_one_review_item() {
    let mut engine = engine("");
    let (out, narrative) = twelve_variants(&mut engine);
    let items: Vec<ReviewItem> = of(&out, topics::REVIEW_QUEUE);
    assert_eq!(items.len(), 12, "one revision per post");
    assert!(items.iter().all(|i| i.narrative_id == narrative));
    let last = items.last().unwrap();
    assert_eq!(last.revision, 12);
    assert_eq!(last.post_count, 12);
    assert_eq!(last.platforms, ["facebook", "tiktok", "x"]);
    assert_eq!(last.status, NarrativeStatus::PendingReview);
    assert_eq!(last.first_seen, "2024-02-13T08:00:00Z");
    assert_eq!(last.last_seen, "2024-02-13T13:30:00Z");
    assert_eq!(last.sample_posts.len(), 5);
    assert_eq!(last.policy_version, "test-1");
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    // Re-delivery of every scored event and text changes nothing.
    for i in 0..12 {
        let platform = ["x", "facebook", "tiktok"][i % 3];
        assert!(engine
            .on_text(format!("{platform}:p{i}"), variant(i))
            .is_empty());
        assert!(engine
            .on_scored(scored(platform, i, &variant(i), "a", 0, 0.9), NOW)
            .is_empty());
    }
}

#[test]
fn below_review_founds_nothing_but_joins_a_known_narrative() {
    let mut engine = engine("");
    assert!(engine
        .on_scored(scored("x", 1, HOAX, "a", 0, 0.5), NOW)
        .is_empty());
    let out = engine.on_scored(scored("x", 2, HOAX, "a", 0, 0.9), NOW);
    assert_eq!(of::<ReviewItem>(&out, topics::REVIEW_QUEUE).len(), 1);
    let out = engine.on_scored(scored("x", 3, &HOAX.to_lowercase(), "a", 0, 0.1), NOW);
    let items: Vec<ReviewItem> = of(&out, topics::REVIEW_QUEUE);
    assert_eq!(items[0].post_count, 2);
    let out = engine.on_scored(scored("x", 4, OTHER, "a", 0, 0.9), NOW);
    let other: Vec<ReviewItem> = of(&out, topics::REVIEW_QUEUE);
    assert_ne!(other[0].narrative_id, items[0].narrative_id);
}

#[test]
fn confirm_requests_every_post_once_per_platform_then_copies_automatically() {
    let mut engine = engine("");
    let (_, narrative) = twelve_variants(&mut engine);
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    let requests: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(requests.len(), 3);
    let listed: BTreeMap<String, Vec<String>> = requests
        .iter()
        .map(|r| {
            (
                r.platform.clone(),
                r.posts.iter().map(|p| p.post_id.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(listed["x"], ["p0", "p3", "p6", "p9"]);
    assert_eq!(listed["facebook"], ["p1", "p10", "p4", "p7"]);
    assert_eq!(listed["tiktok"], ["p11", "p2", "p5", "p8"]);
    for r in &requests {
        assert_eq!(r.matched_claims, expected_claims());
        assert_eq!(r.basis, RequestBasis::Confirmed);
        assert_eq!(r.decision_id, "d1");
        assert_eq!(r.policy_version, "test-1");
        assert!(r.evidence_excerpt.as_deref().unwrap().contains("TPS 05"));
    }
    let request_keys: Vec<&str> = out
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_REQUESTS)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(request_keys, ["facebook", "tiktok", "x"]);
    let labels: Vec<LabelRecord> = of(&out, topics::LABELS);
    assert_eq!(labels.len(), 12);
    assert!(labels
        .iter()
        .all(|l| l.label == ReviewLabel::Hoax && !l.text.is_empty()));
    let items: Vec<ReviewItem> = of(&out, topics::REVIEW_QUEUE);
    assert_eq!(items.last().unwrap().matched_claims, expected_claims());
    // The confirmed narrative becomes a known hoax, worded as its best-scoring post
    // (all score 0.9: the first by post key, facebook:p1).
    let claims: Vec<ClaimRecord> = of(&out, topics::CLAIMS);
    assert_eq!(
        claims,
        [ClaimRecord {
            schema_version: 1,
            claim_id: format!("review:{narrative}"),
            verdict: ClaimVerdict::Hoax,
            text: variant(1),
            source: "review".into(),
            date: Some(NOW.into()),
            url: None,
        }]
    );
    let claim_keys: Vec<&str> = out
        .iter()
        .filter(|o| o.topic == topics::CLAIMS)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(claim_keys, [claims[0].claim_id.as_str()]);
    let audit: Vec<AuditEvent> = of(&out, topics::TAKEDOWN_AUDIT);
    assert_eq!(audit.len(), 4, "narrative confirmed + 3 requests sent");
    assert_eq!(audit[0].to, "confirmed");
    assert_eq!(audit[0].who, "reviewer_07");
    assert_eq!(audit[0].why, "checked with Bawaslu");

    assert!(engine
        .on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW)
        .is_empty());
    let out = engine.on_scored(scored("x", 99, &variant(5), "late", 600, 0.4), NOW);
    let copies: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].basis, RequestBasis::ConfirmedNarrativeCopy);
    assert_eq!(copies[0].posts[0].post_id, "p99");
    assert_eq!(copies[0].decision_id, "d1");
}

#[test]
fn reject_labels_not_hoax_and_requests_nothing() {
    let mut engine = engine("");
    let (_, narrative) = twelve_variants(&mut engine);
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Reject), AT, NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let labels: Vec<LabelRecord> = of(&out, topics::LABELS);
    assert_eq!(labels.len(), 12);
    assert!(labels.iter().all(|l| l.label == ReviewLabel::NotHoax));
    // A rejected narrative is a known genuine item: copies of it weigh towards "not a hoax".
    let claims: Vec<ClaimRecord> = of(&out, topics::CLAIMS);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].verdict, ClaimVerdict::Genuine);
    let out = engine.on_scored(scored("x", 99, HOAX, "late", 0, 0.99), NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    // A later confirm cannot undo the rejection; it is audited as ignored.
    let out = engine.on_decision(decision("d2", &narrative, DecisionAction::Confirm), AT, NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let audit: Vec<AuditEvent> = of(&out, topics::TAKEDOWN_AUDIT);
    assert_eq!(
        audit[0].why,
        "decision to confirmed ignored: narrative already rejected"
    );
}

#[test]
fn protected_sources_are_never_requested_without_confirmation() {
    let mut engine = engine("");
    let mut official = scored("x", 1, HOAX, "kpu_ri", 0, 0.99);
    official.url = None;
    let mut news = scored("x", 2, HOAX, "anon", 1, 0.99);
    news.url = Some("https://www.kpu.go.id/berita/2".into());
    let out = engine.on_scored(official, NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let narrative = of::<ReviewItem>(&out, topics::REVIEW_QUEUE)[0]
        .narrative_id
        .clone();
    let out = engine.on_scored(news, NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let item = &of::<ReviewItem>(&out, topics::REVIEW_QUEUE)[0];
    assert!(item.sample_posts.iter().all(|p| p.protected));
    // Nor is anything else, however high its score, before a person confirms.
    let out = engine.on_scored(scored("x", 3, HOAX, "anon", 2, 0.99), NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    // Confirming requests the protected posts a person has now seen.
    let confirm = |id| decision_showing(id, &narrative, DecisionAction::Confirm, 1);
    let out = engine.on_decision(confirm("d1"), AT, NOW);
    let confirmed: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].posts.len(), 3);
    // A protected copy after confirmation waits for another confirmation.
    let out = engine.on_scored(scored("x", 4, HOAX, "kpu_ri", 3, 0.99), NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let out = engine.on_decision(confirm("d2"), AT, NOW);
    let released: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].posts[0].post_id, "p4");
}

#[test]
fn partner_statuses_drive_the_request_state() {
    let mut engine = engine("");
    let (_, narrative) = twelve_variants(&mut engine);
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    let x = of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS)
        .into_iter()
        .find(|r| r.platform == "x")
        .unwrap();
    let status = |s: PartnerStatus, platform: &str| TakedownStatus {
        schema_version: 1,
        request_id: x.request_id.clone(),
        platform: platform.into(),
        status: s,
        reason: None,
        reported_by: "x-trust".into(),
        reported_at: NOW.into(),
    };
    let moves = |out: Vec<Outgoing>| -> Vec<(Option<String>, String)> {
        of::<AuditEvent>(&out, topics::TAKEDOWN_AUDIT)
            .into_iter()
            .map(|a| (a.from, a.to))
            .collect()
    };
    let ack = engine.on_status(status(PartnerStatus::Acknowledged, "x"), NOW);
    assert_eq!(moves(ack), [(Some("sent".into()), "acknowledged".into())]);
    let removed = engine.on_status(status(PartnerStatus::Removed, "x"), NOW);
    assert_eq!(
        moves(removed),
        [(Some("acknowledged".into()), "removed".into())]
    );
    assert!(engine
        .on_status(status(PartnerStatus::Acknowledged, "x"), NOW)
        .is_empty());
    assert!(engine
        .on_status(status(PartnerStatus::Rejected, "x"), NOW)
        .is_empty());
    let wrong = engine.on_status(status(PartnerStatus::Rejected, "tiktok"), NOW);
    let audit: Vec<AuditEvent> = of(&wrong, topics::TAKEDOWN_AUDIT);
    assert_eq!(audit[0].to, "rejected");
    assert_eq!(
        audit[0].why,
        "status from platform tiktok for a request to x"
    );
}

#[test]
fn a_burst_of_distinct_authors_raises_priority() {
    let mut engine = engine("");
    let mut last = None;
    for i in 0..5 {
        let out = engine.on_scored(
            scored("x", i, &variant(i), &format!("a{i}"), i * 10, 0.9),
            NOW,
        );
        last = of::<ReviewItem>(&out, topics::REVIEW_QUEUE).pop();
    }
    let item = last.unwrap();
    assert_eq!(item.priority, Priority::High);
    let burst = item.coordinated.unwrap();
    assert_eq!((burst.distinct_authors, burst.window_minutes), (5, 60));
    let out = engine.on_decision(
        decision("d1", &item.narrative_id, DecisionAction::Confirm),
        AT,
        NOW,
    );
    let request = &of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS)[0];
    assert_eq!(request.coordinated.as_ref().unwrap().distinct_authors, 5);
}

#[test]
fn state_records_rebuild_an_engine_that_continues_identically() {
    let mut original = engine("");
    let (mut out, narrative) = twelve_variants(&mut original);
    out.extend(original.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW));
    let mut rebuilt = engine("");
    for o in out.iter().filter(|o| o.topic == topics::TAKEDOWN_STATE) {
        let record = StateRecord::from_message(&o.key, &o.payload).expect("valid record");
        assert!(rebuilt
            .restore(record, "takedown.state.v1:0:0", NOW)
            .is_empty());
    }
    // Replays after the rebuild change nothing ...
    for i in 0..12 {
        let platform = ["x", "facebook", "tiktok"][i % 3];
        assert!(rebuilt
            .on_scored(scored(platform, i, &variant(i), "a", 0, 0.9), NOW)
            .is_empty());
    }
    assert!(rebuilt
        .on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW)
        .is_empty());
    // ... and new input gives what the original gives.
    let late = scored("tiktok", 50, &variant(2), "late", 700, 0.8);
    let a = original.on_scored(late.clone(), NOW);
    let b = rebuilt.on_scored(late, NOW);
    let strip = |out: Vec<Outgoing>| -> Vec<(String, String)> {
        out.into_iter()
            .map(|o| (o.topic.to_owned(), o.key))
            .collect()
    };
    assert_eq!(strip(a.clone()), strip(b.clone()));
    assert_eq!(
        of::<TakedownRequest>(&a, topics::TAKEDOWN_REQUESTS)[0].request_id,
        of::<TakedownRequest>(&b, topics::TAKEDOWN_REQUESTS)[0].request_id
    );
}

#[test]
fn unusable_inputs_are_audited_not_dropped() {
    let mut engine = engine("");
    let out = engine.on_decision(
        decision("d9", "n-0000000000000000", DecisionAction::Confirm),
        AT,
        NOW,
    );
    let audit: Vec<AuditEvent> = of(&out, topics::TAKEDOWN_AUDIT);
    assert_eq!(
        audit[0].why,
        "decision for unknown narrative n-0000000000000000"
    );
    assert_eq!(audit[0].subject_id, AT);
    let mut bad = scored("x", 1, HOAX, "a", 0, 0.9);
    bad.fingerprint = "xyz".into();
    let audit: Vec<AuditEvent> = of(&engine.on_scored(bad, NOW), topics::TAKEDOWN_AUDIT);
    assert_eq!(audit[0].why, "fingerprint \"xyz\" is not 16 hex chars");
    assert_eq!(audit[0].subject_id, "posts.scored.v1:0:1");
}

#[test]
fn posts_without_words_stand_alone() {
    let mut engine = engine("");
    let a = engine.on_scored(scored("x", 1, "🔥🔥 https://t.co/a", "a", 0, 0.9), NOW);
    let b = engine.on_scored(scored("x", 2, "🙏 #viral", "b", 0, 0.9), NOW);
    let ids: Vec<String> = [a, b]
        .iter()
        .map(|out| {
            of::<ReviewItem>(out, topics::REVIEW_QUEUE)[0]
                .narrative_id
                .clone()
        })
        .collect();
    assert_eq!(ids, ["n-post-x:p1", "n-post-x:p2"]);
}

#[test]
fn forged_and_misplaced_decisions_change_nothing_and_are_audited() {
    let mut engine = engine("");
    let (_, narrative) = twelve_variants(&mut engine);
    let mut unsigned = decision("d1", &narrative, DecisionAction::Confirm);
    unsigned.signature = None;
    let mut foreign = decision("d2", &narrative, DecisionAction::Confirm);
    DecisionSigner::generate("dashboard-1")
        .unwrap()
        .sign(&mut foreign);
    let mut unknown = decision("d3", &narrative, DecisionAction::Confirm);
    DecisionSigner::generate("stolen")
        .unwrap()
        .sign(&mut unknown);
    // A reviewer's real rejection, turned into a confirmation.
    let mut altered = decision("d4", &narrative, DecisionAction::Reject);
    altered.action = DecisionAction::Confirm;
    // A real confirmation of another narrative, pointed at this one.
    let mut retargeted = decision("d5", "n-elsewhere", DecisionAction::Confirm);
    retargeted.narrative_id = narrative.clone();
    let mut future = ReviewDecision {
        revision: 99,
        ..decision("d6", &narrative, DecisionAction::Confirm)
    };
    signer().sign(&mut future);
    let elsewhere = decision_showing("d7", &narrative, DecisionAction::Confirm, 77);
    let mut silent = decision("d8", &narrative, DecisionAction::Confirm);
    silent.shown_posts.clear();
    signer().sign(&mut silent);
    let cases = [
        (unsigned, "decision d1 ignored: decision is not signed".to_owned()),
        (
            foreign,
            "decision d2 ignored: decision signature does not match its content (key \"dashboard-1\")".to_owned(),
        ),
        (unknown, "decision d3 ignored: decision signed by unknown key \"stolen\"".to_owned()),
        (
            altered,
            "decision d4 ignored: decision signature does not match its content (key \"dashboard-1\")".to_owned(),
        ),
        (
            retargeted,
            "decision d5 ignored: decision signature does not match its content (key \"dashboard-1\")".to_owned(),
        ),
        (
            future,
            format!("decision d6 ignored: it was made on revision 99 of {narrative}, which is at revision 12"),
        ),
        (
            elsewhere,
            format!("decision d7 ignored: it names post x:p77, not a post of {narrative}"),
        ),
        (
            silent,
            "decision d8 ignored: it names no post the reviewer was shown".to_owned(),
        ),
    ];
    for (forged, why) in cases {
        let out = engine.on_decision(forged, AT, NOW);
        assert_eq!(audited(&out), [(why, AT.to_owned())]);
        assert_eq!(out.len(), 1, "only the audit entry: {out:?}");
    }
    // The real decision still applies: none of the forgeries used up its id or the narrative.
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    assert_eq!(
        of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).len(),
        3
    );
}

#[test]
fn a_state_record_cannot_confirm_on_its_own() {
    let mut original = engine("");
    let (out, narrative) = twelve_variants(&mut original);
    let state: Vec<&Outgoing> = out
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_STATE)
        .collect();
    let narrative_key = format!("narrative:{narrative}");
    let latest = state.iter().rev().find(|o| o.key == narrative_key).unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(&latest.payload).unwrap();
    let mut forge = |status: &str, decision: Option<ReviewDecision>| {
        record["status"] = status.into();
        record["decision"] = serde_json::to_value(decision).unwrap();
        serde_json::to_vec(&record).unwrap()
    };
    let mut unsigned = decision("d1", &narrative, DecisionAction::Confirm);
    unsigned.signature = None;
    let forgeries = [
        (
            forge("confirmed", None),
            "status confirmed without a decision".to_owned(),
        ),
        (
            forge("confirmed", Some(unsigned)),
            "decision is not signed".to_owned(),
        ),
        (
            forge(
                "confirmed",
                Some(decision("d1", "n-other", DecisionAction::Confirm)),
            ),
            "its decision d1 is for narrative n-other".to_owned(),
        ),
        (
            forge(
                "confirmed",
                Some(decision("d1", &narrative, DecisionAction::Reject)),
            ),
            "status confirmed but its decision d1 says rejected".to_owned(),
        ),
        (b"{not json".to_vec(), String::new()),
    ];
    for (i, (payload, why)) in forgeries.into_iter().enumerate() {
        let mut rebuilt = engine("");
        for o in &state {
            let record = StateRecord::from_message(&o.key, &o.payload).unwrap();
            assert!(rebuilt
                .restore(record, "takedown.state.v1:0:1", NOW)
                .is_empty());
        }
        let at = format!("takedown.state.v1:0:{}", 100 + i);
        match StateRecord::from_message(&narrative_key, &payload) {
            Ok(record) => assert_eq!(
                audited(&rebuilt.restore(record, &at, NOW)),
                [(
                    format!("state record for {narrative} ignored: {why}"),
                    at.clone()
                )]
            ),
            // The service audits what does not decode at all (see service::rebuild).
            Err(e) => assert!(e.starts_with(&format!("narrative record {narrative_key}: "))),
        }
        assert!(rebuilt.reopen_orphans(NOW).is_empty());
        // Still pending: a new copy is not requested, a real decision still applies.
        let copy = rebuilt.on_scored(scored("x", 99, &variant(5), "late", 600, 0.9), NOW);
        assert!(of::<TakedownRequest>(&copy, topics::TAKEDOWN_REQUESTS).is_empty());
        let out = rebuilt.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
        assert_eq!(
            of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).len(),
            3
        );
    }
}

#[test]
fn posts_of_an_ignored_narrative_are_queued_again() {
    let mut original = engine("");
    let (out, narrative) = twelve_variants(&mut original);
    let mut rebuilt = engine("");
    for o in out.iter().filter(|o| o.key.starts_with("post:")) {
        let record = StateRecord::from_message(&o.key, &o.payload).unwrap();
        assert!(rebuilt
            .restore(record, "takedown.state.v1:0:1", NOW)
            .is_empty());
    }
    let out = rebuilt.reopen_orphans(NOW);
    assert_eq!(
        audited(&out),
        [(
            "narrative record missing or ignored: queued for review again".to_owned(),
            narrative.clone()
        )]
    );
    let item = &of::<ReviewItem>(&out, topics::REVIEW_QUEUE)[0];
    assert_eq!(
        (item.status, item.post_count),
        (NarrativeStatus::PendingReview, 12)
    );
}

#[test]
fn every_audit_record_links_to_the_one_before() {
    let mut restarted = engine("");
    let tip = audit_link(b"the last record already on the topic");
    restarted.set_audit_tip(tip.clone());
    let (mut out, narrative) = twelve_variants(&mut restarted);
    out.extend(restarted.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW));
    let audit: Vec<&Outgoing> = out
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_AUDIT)
        .collect();
    assert_eq!(audit.len(), 5, "opened, confirmed, three requests");
    let mut expected = tip;
    for record in audit {
        assert_eq!(record.partition, Some(0));
        let event: AuditEvent = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(event.prev_hash, expected);
        expected = audit_link(&record.payload);
    }
    let first = engine("").on_scored(scored("x", 1, HOAX, "a", 0, 0.9), NOW);
    let opened: Vec<AuditEvent> = of(&first, topics::TAKEDOWN_AUDIT);
    assert_eq!(opened[0].prev_hash, AUDIT_GENESIS);
}
