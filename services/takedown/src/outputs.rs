//! Building the outgoing contract values from the engine's state.

use std::collections::{BTreeMap, BTreeSet};

use patroli_contracts::{
    label_id, review_item_id, takedown_request_id, ClaimRecord, ClaimVerdict, DecisionAction,
    LabelRecord, MatchedClaim, Priority, RequestBasis, RequestedPost, ReviewDecision, ReviewItem,
    ReviewLabel, SamplePost, TakedownRequest, SCHEMA_VERSION,
};

use crate::engine::Engine;
use crate::state::PostRecord;
use crate::{burst, time_of};

/// Posts shown on a review item.
const SAMPLE_POSTS: usize = 5;
/// Reason words shown on a review item.
const REASON_WORDS: usize = 10;
/// Characters of post text quoted as evidence in a request.
const EXCERPT_CHARS: usize = 280;
/// Known claims shown on a review item or request.
const MATCHED_CLAIMS: usize = 3;

/// Highest score first; ties in post order, so the pick never depends on arrival.
fn best_first<'a>(posts: &[&'a PostRecord]) -> Vec<&'a PostRecord> {
    let mut sorted = posts.to_vec();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.post.cmp(&b.post)));
    sorted
}

fn posts<'a>(engine: &'a Engine, narrative_id: &str) -> Vec<&'a PostRecord> {
    engine
        .members
        .get(narrative_id)
        .map(|keys| keys.iter().map(|key| &engine.posts[key]).collect())
        .unwrap_or_default()
}

pub(crate) fn review_item(engine: &Engine, narrative_id: &str, now: &str) -> ReviewItem {
    let narrative = &engine.narratives[narrative_id];
    let posts = posts(engine, narrative_id);
    let mut categories: BTreeMap<String, f32> = BTreeMap::new();
    let mut words: BTreeMap<&str, usize> = BTreeMap::new();
    for post in &posts {
        for (category, p) in &post.categories {
            let best = categories.entry(category.clone()).or_insert(*p);
            *best = best.max(*p);
        }
        for word in &post.reason_words {
            *words.entry(word.as_str()).or_default() += 1;
        }
    }
    let mut reason_words: Vec<(&str, usize)> = words.into_iter().collect();
    reason_words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let category = categories
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(c, _)| c.clone())
        .or_else(|| posts.first().map(|p| p.category.clone()))
        .unwrap_or_default();
    let by_score = best_first(&posts);
    let (first_seen, last_seen) = seen_range(&posts);
    let coordinated = burst::detect(
        posts
            .iter()
            .map(|p| (p.created_at.as_str(), p.author.as_str())),
        &engine.policy.burst,
    );
    ReviewItem {
        schema_version: SCHEMA_VERSION,
        event_id: review_item_id(narrative_id, narrative.revision),
        narrative_id: narrative_id.to_owned(),
        revision: narrative.revision,
        status: narrative.status,
        priority: if coordinated.is_some() {
            Priority::High
        } else {
            Priority::Normal
        },
        coordinated,
        category,
        score: posts.iter().map(|p| p.score).fold(0.0, f32::max),
        categories,
        reason_words: reason_words
            .into_iter()
            .take(REASON_WORDS)
            .map(|(w, _)| w.to_owned())
            .collect(),
        post_count: posts.len() as u64,
        platforms: posts
            .iter()
            .map(|p| p.post.platform.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        first_seen,
        last_seen,
        sample_posts: by_score
            .into_iter()
            .take(SAMPLE_POSTS)
            .map(|p| SamplePost {
                post: p.post.clone(),
                url: p.url.clone(),
                author: p.author.clone(),
                created_at: p.created_at.clone(),
                score: p.score,
                text: p.text.clone(),
                protected: p.protected,
            })
            .collect(),
        matched_claims: matched_claims(&posts),
        complaint_count: engine
            .complaints_of
            .get(narrative_id)
            .map_or(0, |c| c.len() as u64),
        complaint_references: engine.complaint_references(narrative_id),
        policy_version: engine.policy.version.clone(),
        updated_at: now.to_owned(),
    }
}

/// The claims `posts` were matched to, each once at its highest similarity, most similar first.
fn matched_claims(posts: &[&PostRecord]) -> Vec<MatchedClaim> {
    let mut best: BTreeMap<&str, &MatchedClaim> = BTreeMap::new();
    for m in posts.iter().flat_map(|p| &p.matches) {
        let kept = best.entry(m.claim_id.as_str()).or_insert(m);
        if m.similarity > kept.similarity {
            *kept = m;
        }
    }
    let mut all: Vec<MatchedClaim> = best.into_values().cloned().collect();
    all.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.claim_id.cmp(&b.claim_id))
    });
    all.truncate(MATCHED_CLAIMS);
    all
}

/// The narrative as a checked claim for `claims.v1`, worded as its highest-scoring post with
/// text; `None` when no post's text is known.
pub(crate) fn claim(
    engine: &Engine,
    narrative_id: &str,
    decision: &ReviewDecision,
) -> Option<ClaimRecord> {
    let text = best_first(&posts(engine, narrative_id))
        .iter()
        .find_map(|p| p.text.clone())?;
    Some(ClaimRecord {
        schema_version: SCHEMA_VERSION,
        claim_id: format!("review:{narrative_id}"),
        verdict: match decision.action {
            DecisionAction::Confirm => ClaimVerdict::Hoax,
            DecisionAction::Reject => ClaimVerdict::Genuine,
        },
        text,
        source: "review".into(),
        date: Some(decision.decided_at.clone()),
        url: None,
    })
}

/// Earliest and latest `created_at`, compared as instants (offsets differ between partners).
fn seen_range(posts: &[&PostRecord]) -> (String, String) {
    let mut timed: Vec<(time::OffsetDateTime, &str)> = posts
        .iter()
        .filter_map(|p| Some((time_of(&p.created_at)?, p.created_at.as_str())))
        .collect();
    timed.sort();
    let fallback = posts
        .first()
        .map(|p| p.created_at.clone())
        .unwrap_or_default();
    (
        timed.first().map_or(fallback.clone(), |t| t.1.to_owned()),
        timed.last().map_or(fallback, |t| t.1.to_owned()),
    )
}

pub(crate) fn takedown_request(
    engine: &Engine,
    narrative_id: &str,
    platform: &str,
    keys: &[String],
    basis: RequestBasis,
    decision_id: String,
    now: &str,
) -> TakedownRequest {
    let posts: Vec<&PostRecord> = keys.iter().map(|key| &engine.posts[key]).collect();
    let listed = posts
        .iter()
        .map(|p| RequestedPost {
            post_id: p.post.post_id.clone(),
            url: p.url.clone(),
        })
        .collect();
    let best = posts
        .iter()
        .max_by(|a, b| a.score.total_cmp(&b.score).then(b.post.cmp(&a.post)))
        .expect("a request lists at least one post");
    let evidence = Evidence {
        best,
        texts: &posts,
    };
    request(
        engine,
        narrative_id,
        platform,
        listed,
        evidence,
        basis,
        decision_id,
        now,
    )
}

/// The request for complaint-referenced posts a reviewer confirmed as copies of the narrative:
/// what the partner is shown (category, score, excerpt) is the confirmed narrative's, since the
/// service has not scored those posts itself. `None` for a narrative without posts.
pub(crate) fn reference_request(
    engine: &Engine,
    narrative_id: &str,
    platform: &str,
    listed: Vec<RequestedPost>,
    decision_id: &str,
    now: &str,
) -> Option<TakedownRequest> {
    let narrative_posts = posts(engine, narrative_id);
    let best = best_first(&narrative_posts).into_iter().next()?;
    let evidence = Evidence { best, texts: &[] };
    Some(request(
        engine,
        narrative_id,
        platform,
        listed,
        evidence,
        RequestBasis::Confirmed,
        decision_id.to_owned(),
        now,
    ))
}

/// What a request quotes: the category and score of `best`, and an excerpt from the first of
/// `texts` (then of the narrative's posts) whose text is known.
struct Evidence<'a> {
    best: &'a PostRecord,
    texts: &'a [&'a PostRecord],
}

#[allow(clippy::too_many_arguments)] // each argument is one field of the request
fn request(
    engine: &Engine,
    narrative_id: &str,
    platform: &str,
    mut listed: Vec<RequestedPost>,
    evidence: Evidence<'_>,
    basis: RequestBasis,
    decision_id: String,
    now: &str,
) -> TakedownRequest {
    listed.sort_by(|a, b| a.post_id.cmp(&b.post_id));
    let post_ids: Vec<&str> = listed.iter().map(|p| p.post_id.as_str()).collect();
    // Every post of the narrative: the excerpt's fallback, the burst and the known claims.
    let narrative_posts = self::posts(engine, narrative_id);
    let excerpt = evidence
        .texts
        .iter()
        .chain(narrative_posts.iter())
        .find_map(|p| p.text.as_deref())
        .map(|text| match text.char_indices().nth(EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        });
    let coordinated = burst::detect(
        narrative_posts
            .iter()
            .map(|p| (p.created_at.as_str(), p.author.as_str())),
        &engine.policy.burst,
    );
    TakedownRequest {
        schema_version: SCHEMA_VERSION,
        request_id: takedown_request_id(narrative_id, platform, &post_ids),
        platform: platform.to_owned(),
        narrative_id: narrative_id.to_owned(),
        category: evidence.best.category.clone(),
        score: evidence.best.score,
        posts: listed,
        evidence_excerpt: excerpt,
        matched_claims: matched_claims(&narrative_posts),
        basis,
        decision_id,
        coordinated,
        policy_version: engine.policy.version.clone(),
        created_at: now.to_owned(),
    }
}

pub(crate) fn label(engine: &Engine, post: &PostRecord, decision: &ReviewDecision) -> LabelRecord {
    LabelRecord {
        schema_version: SCHEMA_VERSION,
        label_id: label_id(&decision.decision_id, &post.post),
        narrative_id: post.narrative_id.clone(),
        post: post.post.clone(),
        text: post.text.clone().unwrap_or_default(),
        label: match decision.action {
            DecisionAction::Confirm => ReviewLabel::Hoax,
            DecisionAction::Reject => ReviewLabel::NotHoax,
        },
        category: post.category.clone(),
        decision_id: decision.decision_id.clone(),
        reviewer: decision.reviewer.clone(),
        decided_at: decision.decided_at.clone(),
        policy_version: engine.policy.version.clone(),
    }
}
