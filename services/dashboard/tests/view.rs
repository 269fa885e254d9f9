//! The view's folding rules: minute buckets and their eviction, bucket widths, histogram bins,
//! the per-dimension cap, the narrative cap, held copies and decisions awaiting the takedown service.

use patroli_contracts::{Label, PostRef, ReviewDecision, ReviewItem, ScoredEvent};
use patroli_dashboard::state::{
    histogram_bin, Count, Dimension, Limits, View, MAX_VALUES_PER_DIMENSION, OTHER,
};
use serde_json::json;

fn view(lookback_minutes: i64, max_narratives: usize) -> View {
    View::new(Limits {
        lookback_minutes,
        max_narratives,
        max_requests: 10,
    })
}

fn scored(platform: &str, region: &str, score: f32) -> ScoredEvent {
    let mut event: ScoredEvent =
        serde_json::from_str(include_str!("../../contracts/samples/posts.scored.v1.json")).unwrap();
    event.post.platform = platform.into();
    event.region = Some(region.into());
    event.score = score;
    event.label = if score >= 0.5 {
        Label::Disinformation
    } else {
        Label::NotDisinformation
    };
    event
}

fn item(narrative: &str, status: &str) -> ReviewItem {
    serde_json::from_value(json!({
        "schema_version": 1, "event_id": narrative, "narrative_id": narrative, "revision": 1,
        "status": status, "priority": "normal", "coordinated": null, "category": "c",
        "score": 0.9, "categories": {}, "reason_words": [], "post_count": 1, "platforms": [],
        "first_seen": "", "last_seen": "", "sample_posts": [], "policy_version": "p",
        "updated_at": "",
    }))
    .unwrap()
}

#[test]
fn minutes_past_the_lookback_are_dropped_and_never_counted() {
    let mut view = view(10, 10);
    view.scored(&scored("x", "a", 0.9), 100, 105);
    view.scored(&scored("x", "a", 0.9), 109, 109);
    // Minute 95 is already outside the ten minutes ending at 104.
    view.scored(&scored("x", "a", 0.9), 94, 104);
    assert_eq!(
        view.scored_total(),
        Count {
            posts: 2,
            flagged: 2
        }
    );
    view.evict(109);
    assert_eq!(
        view.scored_total().posts,
        2,
        "minute 100 is the oldest of 100..=109"
    );
    view.evict(110);
    assert_eq!(view.scored_total().posts, 1);
    assert_eq!(view.minutes(), 1);
}

#[test]
fn wider_buckets_sum_their_minutes_from_the_epoch() {
    let mut view = view(60, 10);
    for minute in [100, 104, 105, 106] {
        view.scored(&scored("x", "a", 0.1), minute, 106);
    }
    view.scored(&scored("tiktok", "a", 0.9), 106, 106);
    let series = view.series(5, Dimension::Platform);
    let starts: Vec<i64> = series.iter().map(|(start, _)| *start).collect();
    assert_eq!(starts, [100, 105]);
    assert_eq!(
        series[0].1["x"],
        Count {
            posts: 2,
            flagged: 0
        }
    );
    assert_eq!(
        series[1].1["x"],
        Count {
            posts: 2,
            flagged: 0
        }
    );
    assert_eq!(
        series[1].1["tiktok"],
        Count {
            posts: 1,
            flagged: 1
        }
    );
}

#[test]
fn scores_fall_in_ten_bins_and_strays_in_the_end_ones() {
    let bins: Vec<usize> = [0.0, 0.05, 0.1, 0.45, 0.5, 0.999, 1.0, -0.5, 2.0, f32::NAN]
        .iter()
        .map(|s| histogram_bin(*s))
        .collect();
    assert_eq!(bins, [0, 0, 1, 4, 5, 9, 9, 0, 9, 0]);
}

#[test]
fn a_flood_of_new_values_folds_into_other() {
    let mut view = view(60, 10);
    for i in 0..MAX_VALUES_PER_DIMENSION + 6 {
        view.scored(&scored("x", &format!("region-{i}"), 0.1), 100, 100);
    }
    view.scored(&scored("x", "region-0", 0.1), 100, 100);
    let (_, values) = &view.series(1, Dimension::Region)[0];
    assert_eq!(values.len(), MAX_VALUES_PER_DIMENSION + 1);
    assert_eq!(values[OTHER].posts, 6);
    assert_eq!(values["region-0"].posts, 2);
}

#[test]
fn past_the_cap_settled_narratives_go_before_those_awaiting_review() {
    let mut view = view(60, 2);
    view.review_item(item("waiting-1", "pending_review"));
    view.review_item(item("settled", "confirmed"));
    view.review_item(item("waiting-2", "pending_review"));
    let mut kept: Vec<&str> = view.narratives().map(|(id, _)| id.as_str()).collect();
    kept.sort();
    assert_eq!(kept, ["waiting-1", "waiting-2"]);

    // A decision counts as settling it, and the newest decision wins.
    let decision = |id: &str, at: &str| -> ReviewDecision {
        serde_json::from_value(json!({
            "schema_version": 1, "decision_id": id, "narrative_id": "waiting-1",
            "action": "reject", "reason": "no", "reviewer": "r", "decided_at": at,
        }))
        .unwrap()
    };
    view.decision(decision("d2", "2024-02-13T10:00:00Z"));
    view.decision(decision("d1", "2024-02-13T09:00:00Z"));
    let narrative = view.narrative_by_id("waiting-1").unwrap();
    assert!(!narrative.awaiting_review());
    assert_eq!(narrative.decision.as_ref().unwrap().decision_id, "d2");
}

#[test]
fn held_copies_are_the_protected_samples_the_latest_confirmation_did_not_show() {
    let post = |id: &str| PostRef {
        platform: "x".into(),
        post_id: id.into(),
    };
    let sample = |id: &str, protected: bool| {
        json!({"post": {"platform": "x", "post_id": id}, "url": null, "author": "a",
               "created_at": "", "score": 0.9, "text": null, "protected": protected})
    };
    let revision = |revision: u64, status: &str| {
        let mut value = serde_json::to_value(item("n", status)).unwrap();
        value["revision"] = json!(revision);
        value["sample_posts"] = json!([sample("p1", false), sample("p2", true)]);
        serde_json::from_value::<ReviewItem>(value).unwrap()
    };
    let confirmed = |id: &str, revision: u64, shown: &[&str]| -> ReviewDecision {
        serde_json::from_value(json!({
            "schema_version": 1, "decision_id": id, "narrative_id": "n", "action": "confirm",
            "reason": null, "reviewer": "r", "decided_at": format!("2024-02-13T0{revision}:00:00Z"),
            "revision": revision, "shown_posts": shown.iter().map(|p| post(p)).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let mut view = view(60, 10);
    view.review_item(revision(1, "pending_review"));
    let n = |view: &View| view.narrative_by_id("n").unwrap().clone();
    assert!(
        n(&view).held_copies().is_empty(),
        "pending: nothing is held"
    );
    assert!(!n(&view).awaiting_takedown());

    // Confirmed on revision 1 showing only p1; the service acts (revision 2): p2 is held.
    view.decision(confirmed("d1", 1, &["p1"]));
    assert!(n(&view).awaiting_takedown());
    view.review_item(revision(2, "confirmed"));
    assert!(!n(&view).awaiting_takedown());
    assert_eq!(n(&view).held_copies(), [&post("p2")]);

    // Released by a confirmation showing p2: nothing held, awaiting the service again.
    view.decision(confirmed("d2", 2, &["p1", "p2"]));
    assert!(n(&view).held_copies().is_empty());
    assert!(n(&view).awaiting_takedown());
    view.review_item(revision(3, "confirmed"));
    assert!(!n(&view).awaiting_takedown());
}
