//! Complaints are evidence, never posts: a complaint naming a platform post with a confirmed
//! hoax's text attaches to the narrative as a reference and requests nothing; the post it names
//! keeps its own slot and text; only a reviewer's decision confirming that very post requests it.

mod support;

use patroli_contracts::{
    fingerprint, topics, AuditEvent, AuditSubject, ComplaintReference, DecisionAction, LabelRecord,
    NarrativeStatus, PostRef, RequestBasis, RequestedPost, ReviewDecision, ReviewItem, ScoredEvent,
    SourceKind, TakedownRequest,
};
use patroli_takedown::state::StateRecord;
use patroli_takedown::{Engine, Outgoing};
use support::{of, signer, AT, HOAX, NOW};

const GENUINE: &str = "Jadwal pemungutan suara 14 Februari 2024 pukul 07.00 sampai 13.00 WIB, jangan lupa bawa KTP elektronik dan surat pemberitahuan memilih ke TPS masing-masing";
const NAMED: &str = "1999999999999999999";

fn engine() -> Engine {
    support::engine("")
}

fn x(post_id: &str) -> PostRef {
    PostRef {
        platform: "x".into(),
        post_id: post_id.into(),
    }
}

/// A scored post on x, as its platform links it.
fn post(post_id: &str, text: &str, score: f32) -> ScoredEvent {
    ScoredEvent {
        event_id: format!("ev-{post_id}"),
        post: x(post_id),
        author: format!("u-{post_id}"),
        created_at: "2024-02-13T08:00:00Z".into(),
        url: Some(format!("https://x.com/i/status/{post_id}")),
        ..support::scored("x", 1, text, "unused", 0, score)
    }
}

/// A scored complaint as the classifier writes it: its own key, the named post a reference.
fn complaint(id: &str, text: &str, named: Option<PostRef>, url: Option<&str>) -> ScoredEvent {
    ScoredEvent {
        event_id: format!("ev-{id}"),
        source_kind: SourceKind::Complaint,
        post: PostRef {
            platform: "complaint".into(),
            post_id: id.into(),
        },
        complaint_id: Some(id.into()),
        referenced_post: named,
        author: "anonymous".into(),
        created_at: "2024-02-14T09:00:00Z".into(),
        url: url.map(str::to_owned),
        ..post("unused", text, 0.95)
    }
}

fn decide(id: &str, narrative: &str, action: DecisionAction, refs: Vec<PostRef>) -> ReviewDecision {
    let mut decision = ReviewDecision {
        schema_version: 1,
        decision_id: id.into(),
        narrative_id: narrative.into(),
        action,
        reason: None,
        reviewer: "reviewer_07".into(),
        decided_at: NOW.into(),
        confirmed_references: refs,
        // Every narrative here is founded by x:h1, the post reviewers are shown.
        revision: 1,
        shown_posts: vec![x("h1")],
        signature: None,
    };
    signer().sign(&mut decision);
    decision
}

fn last_item(out: &[Outgoing]) -> ReviewItem {
    of::<ReviewItem>(out, topics::REVIEW_QUEUE)
        .pop()
        .expect("a review item")
}

/// Two copies of the hoax with texts, confirmed by decision `d1`; returns the narrative id.
fn confirmed_hoax(engine: &mut Engine) -> String {
    for id in ["h1", "h2"] {
        engine.on_text(format!("x:{id}"), HOAX.to_owned());
        engine.on_scored(post(id, HOAX, 0.9), NOW);
    }
    let narrative = format!("n-{}", fingerprint(HOAX));
    let out = engine.on_decision(
        decide("d1", &narrative, DecisionAction::Confirm, vec![]),
        AT,
        NOW,
    );
    assert_eq!(
        of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).len(),
        1
    );
    narrative
}

#[test]
fn a_complaint_naming_a_post_with_a_confirmed_hoax_text_requests_nothing_and_is_listed() {
    let mut engine = engine();
    let narrative = confirmed_hoax(&mut engine);
    let out = engine.on_scored(
        complaint(
            "c-1",
            HOAX,
            Some(x(NAMED)),
            Some("https://x.com/i/status/1"),
        ),
        NOW,
    );
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    assert!(of::<LabelRecord>(&out, topics::LABELS).is_empty());
    assert!(out.iter().all(|o| o.topic != topics::CLAIMS));
    let item = last_item(&out);
    assert_eq!(
        (item.narrative_id.as_str(), item.status, item.post_count),
        (narrative.as_str(), NarrativeStatus::Confirmed, 2)
    );
    assert_eq!(item.platforms, ["x"]);
    assert_eq!(item.complaint_count, 1);
    assert_eq!(
        item.complaint_references,
        [ComplaintReference {
            complaint_id: "c-1".into(),
            post: x(NAMED),
            url: Some("https://x.com/i/status/1".into()),
            score: 0.95,
            received: "2024-02-14T09:00:00Z".into(),
            protected: false,
            request_id: None,
        }]
    );
    // Its state lives under its own key; no post record was made.
    let state: Vec<&str> = out
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_STATE)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(
        state,
        ["complaint:c-1".to_owned(), format!("narrative:{narrative}")]
    );
    // Re-delivered: nothing.
    assert!(engine
        .on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW)
        .is_empty());
}

#[test]
fn the_named_post_arriving_later_keeps_its_own_slot_and_text() {
    let mut engine = engine();
    confirmed_hoax(&mut engine);
    engine.on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW);
    engine.on_text(format!("x:{NAMED}"), GENUINE.to_owned());
    let out = engine.on_scored(post(NAMED, GENUINE, 0.8), NOW);
    let item = last_item(&out);
    assert_eq!(item.narrative_id, format!("n-{}", fingerprint(GENUINE)));
    assert_eq!(item.post_count, 1);
    assert_eq!(item.sample_posts[0].post, x(NAMED));
    assert_eq!(item.sample_posts[0].text.as_deref(), Some(GENUINE));
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
}

#[test]
fn a_complaint_founds_no_narrative() {
    let mut engine = engine();
    assert!(engine
        .on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW)
        .is_empty());
    // A post of the same text later founds the narrative; the earlier complaint is not in it.
    let out = engine.on_scored(post("h1", HOAX, 0.9), NOW);
    assert_eq!(last_item(&out).complaint_count, 0);
}

#[test]
fn confirming_the_reference_requests_exactly_that_post_once() {
    let mut engine = engine();
    let narrative = confirmed_hoax(&mut engine);
    engine.on_scored(
        complaint("c-1", HOAX, Some(x(NAMED)), Some("https://evil.example/")),
        NOW,
    );
    engine.on_scored(complaint("c-2", HOAX, Some(x(NAMED)), None), NOW);
    let decision = decide("d2", &narrative, DecisionAction::Confirm, vec![x(NAMED)]);
    let out = engine.on_decision(decision.clone(), AT, NOW);
    let requests: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = &requests[0];
    assert_eq!(
        (
            request.platform.as_str(),
            request.basis,
            Some(request.decision_id.as_str())
        ),
        ("x", RequestBasis::Confirmed, Some("d2"))
    );
    // The complainant's link is never passed on: the service has not seen the post.
    assert_eq!(
        request.posts,
        [RequestedPost {
            post_id: NAMED.into(),
            url: None
        }]
    );
    assert_eq!(request.evidence_excerpt.as_deref(), Some(HOAX));
    let item = last_item(&out);
    assert_eq!(item.complaint_count, 2);
    assert_eq!(
        item.complaint_references.len(),
        1,
        "one entry per named post"
    );
    assert_eq!(
        item.complaint_references[0].request_id.as_deref(),
        Some(request.request_id.as_str())
    );
    // The same decision again, another decision naming it, and the post itself arriving as a
    // copy of the confirmed narrative: no second request.
    assert!(engine.on_decision(decision, AT, NOW).is_empty());
    let again = engine.on_decision(
        decide("d3", &narrative, DecisionAction::Confirm, vec![x(NAMED)]),
        AT,
        NOW,
    );
    assert!(of::<TakedownRequest>(&again, topics::TAKEDOWN_REQUESTS).is_empty());
    let copy = engine.on_scored(post(NAMED, HOAX, 0.9), NOW);
    assert!(of::<TakedownRequest>(&copy, topics::TAKEDOWN_REQUESTS).is_empty());
    assert_eq!(last_item(&copy).post_count, 3);
}

#[test]
fn references_confirmed_at_the_first_decision_go_out_with_it() {
    let mut engine = engine();
    engine.on_scored(post("h1", HOAX, 0.9), NOW);
    let narrative = format!("n-{}", fingerprint(HOAX));
    engine.on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW);
    let out = engine.on_decision(
        decide("d1", &narrative, DecisionAction::Confirm, vec![x(NAMED)]),
        AT,
        NOW,
    );
    let mut listed: Vec<String> = of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS)
        .into_iter()
        .flat_map(|r| r.posts.into_iter().map(|p| p.post_id))
        .collect();
    listed.sort();
    assert_eq!(listed, [NAMED, "h1"]);
}

fn audited(out: &[Outgoing]) -> Vec<String> {
    of::<AuditEvent>(out, topics::TAKEDOWN_AUDIT)
        .into_iter()
        .filter(|a| a.subject == AuditSubject::Narrative)
        .map(|a| a.why)
        .collect()
}

#[test]
fn only_recorded_unprotected_references_of_a_confirmed_narrative_are_requested() {
    let mut engine = engine();
    let narrative = confirmed_hoax(&mut engine);
    engine.on_scored(
        complaint(
            "c-1",
            HOAX,
            Some(x("kpu")),
            Some("https://www.kpu.go.id/berita/1"),
        ),
        NOW,
    );
    let out = engine.on_decision(
        decide(
            "d2",
            &narrative,
            DecisionAction::Confirm,
            vec![x("kpu"), x("other")],
        ),
        AT,
        NOW,
    );
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    assert_eq!(
        audited(&out),
        [
            "confirmed references not requested: x:kpu (a protected source), x:other (not among \
          the narrative's complaint references)"
        ]
    );
    // A rejected narrative's references are never requested either.
    let mut engine = self::engine();
    engine.on_scored(post("h1", HOAX, 0.9), NOW);
    let narrative = format!("n-{}", fingerprint(HOAX));
    engine.on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW);
    let out = engine.on_decision(
        decide("d1", &narrative, DecisionAction::Reject, vec![x(NAMED)]),
        AT,
        NOW,
    );
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    assert_eq!(
        audited(&out).last().map(String::as_str),
        Some(
            "confirmed references not requested: x:1999999999999999999 (the decision does not \
             leave the narrative confirmed)"
        )
    );
}

#[test]
fn a_known_protected_post_is_a_protected_reference() {
    let mut engine = engine();
    let narrative = confirmed_hoax(&mut engine);
    let mut official = post("p-kpu", GENUINE, 0.8);
    official.author = "kpu_ri".into();
    engine.on_scored(official, NOW);
    let out = engine.on_scored(complaint("c-1", HOAX, Some(x("p-kpu")), None), NOW);
    assert!(last_item(&out).complaint_references[0].protected);
    let out = engine.on_decision(
        decide("d2", &narrative, DecisionAction::Confirm, vec![x("p-kpu")]),
        AT,
        NOW,
    );
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
}

#[test]
fn complaint_events_written_before_references_read_as_references() {
    let mut engine = engine();
    confirmed_hoax(&mut engine);
    // The old mapping scored a complaint naming a post *as* that post.
    let mut old = complaint("c-1", HOAX, None, None);
    old.post = x(NAMED);
    let out = engine.on_scored(old, NOW);
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    assert_eq!(last_item(&out).complaint_references[0].post, x(NAMED));
    let later = engine.on_scored(post(NAMED, GENUINE, 0.8), NOW);
    assert_eq!(last_item(&later).sample_posts[0].post, x(NAMED));
}

#[test]
fn a_post_on_the_complaint_platform_is_refused() {
    let mut engine = engine();
    let mut forged = post("c-1", HOAX, 0.9);
    forged.post.platform = "complaint".into();
    let out = engine.on_scored(forged, NOW);
    let audit: Vec<AuditEvent> = of(&out, topics::TAKEDOWN_AUDIT);
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].why,
        "a post on the platform reserved for complaints"
    );
    assert!(of::<ReviewItem>(&out, topics::REVIEW_QUEUE).is_empty());
}

#[test]
fn references_and_their_requests_survive_a_rebuild() {
    let mut original = engine();
    let narrative = format!("n-{}", fingerprint(HOAX));
    let mut out = original.on_scored(post("h1", HOAX, 0.9), NOW);
    let first = decide("d1", &narrative, DecisionAction::Confirm, vec![]);
    out.extend(original.on_decision(first, AT, NOW));
    out.extend(original.on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW));
    out.extend(original.on_scored(complaint("c-2", HOAX, Some(x("later")), None), NOW));
    let second = decide("d2", &narrative, DecisionAction::Confirm, vec![x(NAMED)]);
    out.extend(original.on_decision(second, AT, NOW));
    let mut rebuilt = engine();
    for o in out.iter().filter(|o| o.topic == topics::TAKEDOWN_STATE) {
        let record = StateRecord::from_message(&o.key, &o.payload).expect("valid record");
        assert!(
            rebuilt
                .restore(record, "takedown.state.v1:0:0", NOW)
                .is_empty(),
            "an honest record restores without repair"
        );
    }
    assert!(rebuilt
        .on_scored(complaint("c-1", HOAX, Some(x(NAMED)), None), NOW)
        .is_empty());
    let copy = rebuilt.on_scored(post(NAMED, HOAX, 0.9), NOW);
    assert!(of::<TakedownRequest>(&copy, topics::TAKEDOWN_REQUESTS).is_empty());
    let third = decide("d3", &narrative, DecisionAction::Confirm, vec![x("later")]);
    let out = rebuilt.on_decision(third, AT, NOW);
    let requests: Vec<TakedownRequest> = of(&out, topics::TAKEDOWN_REQUESTS);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].posts[0].post_id, "later");
}
