//! What keeps records and memory bounded: requests in pages, requests as records of their own,
//! reasons capped, oversized decisions and outputs refused with an audit entry.

use patroli_contracts::{
    topics, AuditEvent, DecisionAction, NarrativeStatus, PartnerStatus, ReviewItem,
    TakedownRequest, TakedownStatus,
};
use patroli_takedown::bounds::{AUDIT_WHY_CHARS, MAX_DECISION_BYTES};
use patroli_takedown::state::StateRecord;
use patroli_takedown::{Bounds, Engine, Outgoing};

mod support;
use support::*;

/// `count` copies of the hoax on x (`x:p0` ..), in one narrative; returns the outputs and its id.
fn copies(engine: &mut Engine, count: usize) -> (Vec<Outgoing>, String) {
    let mut out = Vec::new();
    for i in 0..count {
        out.extend(engine.on_text(format!("x:p{i}"), HOAX.to_owned()));
        out.extend(engine.on_scored(scored("x", i, HOAX, &format!("a{i}"), i % 600, 0.9), NOW));
    }
    let id = of::<ReviewItem>(&out, topics::REVIEW_QUEUE)[0]
        .narrative_id
        .clone();
    (out, id)
}

fn restored(out: &[Outgoing]) -> Engine {
    let mut engine = engine("");
    for o in out.iter().filter(|o| o.topic == topics::TAKEDOWN_STATE) {
        let record = StateRecord::from_message(&o.key, &o.payload).expect("valid record");
        assert!(engine
            .restore(record, "takedown.state.v1:0:0", NOW)
            .is_empty());
    }
    engine
}

fn page_ids(out: &[Outgoing]) -> Vec<(String, usize)> {
    of::<TakedownRequest>(out, topics::TAKEDOWN_REQUESTS)
        .into_iter()
        .map(|r| (r.request_id, r.posts.len()))
        .collect()
}

#[test]
fn a_confirmed_narrative_of_1201_posts_goes_out_in_pages_of_500() {
    let mut engine = engine("");
    let (mut out, narrative) = copies(&mut engine, 1201);
    let confirmed =
        engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    let requests: Vec<TakedownRequest> = of(&confirmed, topics::TAKEDOWN_REQUESTS);
    let sizes: Vec<usize> = requests.iter().map(|r| r.posts.len()).collect();
    assert_eq!(sizes, [500, 500, 201]);
    // Pages in post order, each post on exactly one page.
    let mut expected: Vec<String> = (0..1201).map(|i| format!("p{i}")).collect();
    expected.sort();
    let listed: Vec<String> = requests
        .iter()
        .flat_map(|r| r.posts.iter().map(|p| p.post_id.clone()))
        .collect();
    assert_eq!(listed, expected);
    let ids: std::collections::BTreeSet<&str> =
        requests.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len(), 3);

    // The same inputs again, on a fresh engine, give the very same pages.
    let mut again = engine_with("", Bounds::default());
    copies(&mut again, 1201);
    let replayed = again.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    assert_eq!(page_ids(&replayed), page_ids(&confirmed));
    // Re-delivered to the engine that applied it, or one rebuilt from its state, it is a no-op.
    assert!(engine
        .on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW)
        .is_empty());
    out.extend(confirmed);
    assert!(restored(&out)
        .on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW)
        .is_empty());
}

#[test]
fn pages_follow_max_posts_per_request() {
    let bounds = Bounds {
        max_posts_per_request: 4,
        ..Bounds::default()
    };
    let mut engine = engine_with("", bounds);
    let (_, narrative) = copies(&mut engine, 9);
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    let sizes: Vec<usize> = page_ids(&out).into_iter().map(|(_, n)| n).collect();
    assert_eq!(sizes, [4, 4, 1]);
}

#[test]
fn requests_are_state_records_of_their_own_and_survive_a_rebuild() {
    let mut engine = engine_with(
        "",
        Bounds {
            max_posts_per_request: 2,
            ..Bounds::default()
        },
    );
    let (mut out, narrative) = copies(&mut engine, 5);
    let confirmed =
        engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    let pages = page_ids(&confirmed);
    let request_keys: Vec<String> = confirmed
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_STATE && o.key.starts_with("request:"))
        .map(|o| o.key.clone())
        .collect();
    let mut expected: Vec<String> = pages
        .iter()
        .map(|(id, _)| format!("request:{id}"))
        .collect();
    expected.sort();
    assert_eq!(request_keys, expected);
    let record = confirmed
        .iter()
        .find(|o| o.key == format!("narrative:{narrative}"))
        .expect("the narrative's record");
    let value: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(value.get("requests"), None, "{value}");
    out.extend(confirmed);

    // A rebuilt engine knows every page: the partner's status for the last one applies.
    let mut rebuilt = restored(&out);
    let (last, _) = pages.last().unwrap();
    let applied = rebuilt.on_status(status(last, PartnerStatus::Removed), NOW);
    let audit: Vec<AuditEvent> = of(&applied, topics::TAKEDOWN_AUDIT);
    assert_eq!(
        audit
            .iter()
            .map(|a| (
                a.subject_id.as_str(),
                a.narrative_id.as_deref(),
                a.to.as_str()
            ))
            .collect::<Vec<_>>(),
        [(last.as_str(), Some(narrative.as_str()), "removed")]
    );
    let keys: Vec<&str> = applied
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_STATE)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(keys, [format!("request:{last}")]);
}

fn status(request_id: &str, status: PartnerStatus) -> TakedownStatus {
    TakedownStatus {
        schema_version: 1,
        request_id: request_id.into(),
        platform: "x".into(),
        status,
        reason: None,
        reported_by: "trust-and-safety@x".into(),
        reported_at: NOW.into(),
    }
}

#[test]
fn a_narrative_record_with_its_requests_inside_still_reads() {
    let mut engine = engine("");
    let (mut out, narrative) = copies(&mut engine, 3);
    out.extend(engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW));
    // The narrative record as written before requests had records of their own.
    let key = format!("narrative:{narrative}");
    let last = out.iter().rfind(|o| o.key == key).unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&last.payload).unwrap();
    value["requests"] = serde_json::json!({
        "r-legacy": {"platform": "x", "category": "ballot_fraud", "state": "acknowledged", "created_at": NOW}
    });
    out.retain(|o| !o.key.starts_with("request:"));
    for o in out.iter_mut().filter(|o| o.key == key) {
        o.payload = serde_json::to_vec(&value).unwrap();
    }
    let mut rebuilt = restored(&out);
    let applied = rebuilt.on_status(status("r-legacy", PartnerStatus::Removed), NOW);
    let audit: Vec<AuditEvent> = of(&applied, topics::TAKEDOWN_AUDIT);
    assert_eq!(
        audit
            .iter()
            .map(|a| (a.from.as_deref(), a.to.as_str(), a.narrative_id.as_deref()))
            .collect::<Vec<_>>(),
        [(Some("acknowledged"), "removed", Some(narrative.as_str()))]
    );
    // Written back as a record of its own, never inside the narrative's.
    let written: Vec<StateRecord> = applied
        .iter()
        .filter(|o| o.topic == topics::TAKEDOWN_STATE)
        .map(|o| StateRecord::from_message(&o.key, &o.payload).unwrap())
        .collect();
    let [StateRecord::Request(request)] = written.as_slice() else {
        panic!("one request record: {written:?}");
    };
    assert_eq!(
        (request.request_id.as_str(), request.narrative_id.as_str()),
        ("r-legacy", narrative.as_str())
    );
}

#[test]
fn a_long_reason_is_cut_in_the_audit_trail() {
    let mut engine = engine("");
    let (_, narrative) = copies(&mut engine, 2);
    let mut long = decision("d1", &narrative, DecisionAction::Confirm);
    long.reason = Some("é".repeat(5_000));
    signer().sign(&mut long);
    let out = engine.on_decision(long, AT, NOW);
    let audit: Vec<AuditEvent> = of(&out, topics::TAKEDOWN_AUDIT);
    assert_eq!(audit[0].to, "confirmed");
    assert_eq!(
        audit[0].why,
        format!("{}… (truncated, 10000 bytes)", "é".repeat(AUDIT_WHY_CHARS))
    );
}

#[test]
fn a_decision_too_large_for_a_state_record_is_refused_and_the_next_applies() {
    let mut engine = engine("");
    let (_, narrative) = copies(&mut engine, 2);
    let mut huge = decision("d-huge", &narrative, DecisionAction::Confirm);
    huge.reason = Some("x".repeat(2 * 1024 * 1024));
    signer().sign(&mut huge);
    let bytes = serde_json::to_vec(&huge).unwrap().len();
    let out = engine.on_decision(huge, AT, NOW);
    assert_eq!(
        audited(&out),
        [(
            format!("decision d-huge refused: {bytes} bytes, over the {MAX_DECISION_BYTES} a narrative's state record can carry"),
            AT.to_owned()
        )]
    );
    assert!(of::<TakedownRequest>(&out, topics::TAKEDOWN_REQUESTS).is_empty());
    let out = engine.on_decision(decision("d1", &narrative, DecisionAction::Confirm), AT, NOW);
    assert_eq!(page_ids(&out).len(), 1);
}

#[test]
fn an_output_over_max_message_bytes_is_replaced_by_an_audit_entry() {
    let mut engine = engine("");
    let small = Outgoing {
        topic: topics::LABELS,
        key: "x:p1".into(),
        payload: vec![b'{'; 10],
        partition: None,
    };
    let large = Outgoing {
        topic: topics::TAKEDOWN_REQUESTS,
        key: "x".into(),
        payload: vec![b'{'; 2_000],
        partition: None,
    };
    let out = engine
        .fit(
            vec![small.clone(), large],
            1_000,
            "posts.scored.v1:0:9",
            NOW,
        )
        .expect("only a request is too large");
    assert_eq!(out[0], small);
    assert_eq!(
        audited(&out[1..]),
        [(
            "output to takedown.requests.v1 (key x) not sent: 2001 bytes, over max_message_bytes 1000"
                .to_owned(),
            "posts.scored.v1:0:9".to_owned()
        )]
    );
    let state = Outgoing {
        topic: topics::TAKEDOWN_STATE,
        key: "post:x:p1".into(),
        payload: vec![b'{'; 2_000],
        partition: None,
    };
    assert_eq!(
        engine
            .fit(vec![state], 1_000, "posts.scored.v1:0:9", NOW)
            .unwrap_err()
            .to_string(),
        "a takedown.state.v1 record (key post:x:p1) is 2009 bytes, over max_message_bytes 1000"
    );
}

#[test]
fn a_copy_of_a_narrative_whose_record_is_missing_reopens_it() {
    let mut original = engine("");
    let (out, narrative) = copies(&mut original, 3);
    let posts_only: Vec<Outgoing> = out
        .into_iter()
        .filter(|o| o.key.starts_with("post:"))
        .collect();
    let mut rebuilt = restored(&posts_only);
    let out = rebuilt.on_scored(scored("x", 3, HOAX, "late", 0, 0.9), NOW);
    assert_eq!(
        audited(&out),
        [(
            "narrative record missing or ignored: queued for review again".to_owned(),
            narrative.clone()
        )]
    );
    let item = of::<ReviewItem>(&out, topics::REVIEW_QUEUE).pop().unwrap();
    assert_eq!(
        (item.status, item.post_count),
        (NarrativeStatus::PendingReview, 4)
    );
}
