//! The takedown workflow's topics: the review queue reviewers work from, their decisions, the
//! per-platform takedown requests partners act on, the statuses partners report back, the labels
//! reviewers' decisions feed into retraining, and the audit trail of every state change.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::IdHasher;
use crate::signing::DecisionSignature;
use crate::{MatchedClaim, PostRef};

/// Where a narrative stands with its reviewers. Only ever moves forward: `pending_review` →
/// `confirmed` or `rejected`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NarrativeStatus {
    PendingReview,
    Confirmed,
    Rejected,
}

impl NarrativeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingReview => "pending_review",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    /// Posted by many distinct accounts within a short window (see [`CoordinatedBurst`]).
    High,
}

/// Evidence that a narrative is being pushed in a coordinated way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CoordinatedBurst {
    /// Distinct author pseudonyms that posted it within `window_minutes`.
    pub distinct_authors: u32,
    pub window_minutes: u32,
    /// RFC 3339 start of the densest window.
    pub window_start: String,
}

/// One post shown to reviewers as an example of the narrative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SamplePost {
    pub post: PostRef,
    pub url: Option<String>,
    pub author: String,
    pub created_at: String,
    pub score: f32,
    /// The post's text, when the raw post has been seen.
    pub text: Option<String>,
    /// From a protected account or domain: never requested without a person's confirmation.
    pub protected: bool,
}

/// A complaint attached to a narrative that names a platform post: what a member of the public
/// claims, shown to reviewers, never acted on until a reviewer confirms this very post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintReference {
    /// The first complaint naming the post (later ones add nothing to check).
    pub complaint_id: String,
    /// The post the complaint names.
    pub post: PostRef,
    /// The link the complainant gave: unverified, it may point elsewhere than `post`.
    pub url: Option<String>,
    /// The classifier's score of the complaint's text.
    pub score: f32,
    /// RFC 3339 time the complaint was reported.
    pub received: String,
    /// The post (as the service has seen it) or the complaint's link is a protected source: a
    /// confirmation of this reference requests nothing.
    pub protected: bool,
    /// The request that lists the post, once one does.
    pub request_id: Option<String>,
}

/// Value of `review.queue.v1`; the message key is `narrative_id` (a compacted topic: the latest
/// revision of each narrative's item is what reviewers see).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "review.queue.v1")]
pub struct ReviewItem {
    pub schema_version: u32,
    /// Deterministic from narrative and revision: a re-delivered input produces no new revision.
    pub event_id: String,
    pub narrative_id: String,
    /// Grows by one with every change reviewers should see (new post, decision, priority).
    pub revision: u64,
    pub status: NarrativeStatus,
    pub priority: Priority,
    pub coordinated: Option<CoordinatedBurst>,
    /// The category with the highest probability over the narrative's posts.
    pub category: String,
    /// Highest score among the narrative's posts.
    pub score: f32,
    /// Highest probability per category among the narrative's posts.
    pub categories: BTreeMap<String, f32>,
    /// The classifier's reason words, most frequent first.
    pub reason_words: Vec<String>,
    pub post_count: u64,
    pub platforms: Vec<String>,
    /// RFC 3339 `created_at` of the earliest and latest post.
    pub first_seen: String,
    pub last_seen: String,
    pub sample_posts: Vec<SamplePost>,
    /// Known claims the narrative's posts repeat, most similar first (at most three): the
    /// evidence a reviewer checks first. Absent in items written before matching.
    #[serde(default)]
    pub matched_claims: Vec<MatchedClaim>,
    /// Complaints from the public attached to the narrative (by text fingerprint, like a post
    /// would join); they are evidence, not posts, and count in nothing above.
    #[serde(default)]
    pub complaint_count: u64,
    /// The distinct posts those complaints name, earliest reported first, at most
    /// [`MAX_COMPLAINT_REFERENCES`]. Absent in items written before references.
    #[serde(default)]
    pub complaint_references: Vec<ComplaintReference>,
    pub policy_version: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Most complaint references a review item lists (and a decision may confirm at once).
pub const MAX_COMPLAINT_REFERENCES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    /// The narrative is a hoax: request takedown of every copy.
    Confirm,
    /// Not a hoax: no request; its posts become `not_hoax` training labels.
    Reject,
}

/// Value of `review.decisions.v1`, written by the dashboard; the message key is `narrative_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "review.decisions.v1")]
pub struct ReviewDecision {
    pub schema_version: u32,
    /// Unique per decision; a re-delivered decision with the same id changes nothing.
    pub decision_id: String,
    pub narrative_id: String,
    pub action: DecisionAction,
    /// Required when rejecting; shown in the audit trail either way.
    pub reason: Option<String>,
    /// The reviewer's pseudonym.
    pub reviewer: String,
    /// RFC 3339.
    pub decided_at: String,
    /// Posts named by the narrative's complaints that the reviewer checked and confirms as
    /// copies (`confirm` only): each is requested if it is among the narrative's recorded
    /// complaint references. Absent in decisions written before references.
    #[serde(default)]
    pub confirmed_references: Vec<PostRef>,
    /// The revision of the narrative's review item the reviewer saw.
    #[serde(default)]
    pub revision: u64,
    /// The posts that item showed the reviewer.
    #[serde(default)]
    pub shown_posts: Vec<PostRef>,
    /// The dashboard's Ed25519 signature over every other field (see `DecisionSigner`); the
    /// takedown service ignores a decision without a valid one.
    #[serde(default)]
    pub signature: Option<DecisionSignature>,
}

/// One unsigned confirmation for tests to start from (struct update syntax changes what a test
/// is about), so a new field is added in one place.
#[cfg(any(test, feature = "test-support"))]
impl ReviewDecision {
    #[doc(hidden)]
    pub fn example() -> Self {
        ReviewDecision {
            schema_version: 1,
            decision_id: "d1".into(),
            narrative_id: "n-1".into(),
            action: DecisionAction::Confirm,
            reason: None,
            reviewer: "rina".into(),
            decided_at: "2024-02-13T09:00:00Z".into(),
            confirmed_references: Vec::new(),
            revision: 3,
            shown_posts: vec![PostRef {
                platform: "x".into(),
                post_id: "a1".into(),
            }],
            signature: None,
        }
    }
}

/// Why a request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestBasis {
    /// A reviewer confirmed the narrative; the request lists every post known then.
    Confirmed,
    /// A new copy of a narrative a reviewer had already confirmed.
    ConfirmedNarrativeCopy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestedPost {
    pub post_id: String,
    pub url: Option<String>,
}

/// Value of `takedown.requests.v1`; the message key is `platform`, so each partner reads its own
/// requests from the partitions its key hashes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "takedown.requests.v1")]
pub struct TakedownRequest {
    pub schema_version: u32,
    /// Deterministic from narrative, platform and the posts listed: re-delivery never makes a
    /// second request, and partners de-duplicate by it.
    pub request_id: String,
    pub platform: String,
    pub narrative_id: String,
    pub posts: Vec<RequestedPost>,
    pub category: String,
    pub score: f32,
    /// Part of the text of one of the posts, for the partner's reviewer.
    pub evidence_excerpt: Option<String>,
    /// Known claims the narrative's posts repeat (who debunked them, when, where), most similar
    /// first, at most three. Absent in requests written before matching.
    #[serde(default)]
    pub matched_claims: Vec<MatchedClaim>,
    pub basis: RequestBasis,
    /// The verified reviewer decision that confirmed the narrative: every request has one.
    pub decision_id: String,
    pub coordinated: Option<CoordinatedBurst>,
    pub policy_version: String,
    /// RFC 3339.
    pub created_at: String,
}

/// What a partner reports about a request.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    Acknowledged,
    Removed,
    Rejected,
}

/// Value of `takedown.status.v1`, written by partners; the message key is `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "takedown.status.v1")]
pub struct TakedownStatus {
    pub schema_version: u32,
    pub request_id: String,
    pub platform: String,
    pub status: PartnerStatus,
    /// The partner's reason, expected with `rejected`.
    pub reason: Option<String>,
    /// Who at the partner reported it.
    pub reported_by: String,
    /// RFC 3339.
    pub reported_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewLabel {
    Hoax,
    NotHoax,
}

/// Value of `labels.v1`: one reviewed post for retraining; the message key is the post key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "labels.v1")]
pub struct LabelRecord {
    pub schema_version: u32,
    pub label_id: String,
    pub narrative_id: String,
    pub post: PostRef,
    pub text: String,
    pub label: ReviewLabel,
    pub category: String,
    pub decision_id: String,
    pub reviewer: String,
    /// RFC 3339.
    pub decided_at: String,
    pub policy_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditSubject {
    Narrative,
    Request,
    /// An input message the service could not use (not JSON, unknown narrative or request ...).
    Input,
}

/// Value of `takedown.audit.v1`: one state change, with who made it, when and why; the message
/// key is `narrative_id` (else `subject_id`), so a narrative's history reads in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "takedown.audit.v1")]
pub struct AuditEvent {
    pub schema_version: u32,
    /// Deterministic from subject and transition.
    pub event_id: String,
    pub narrative_id: Option<String>,
    pub subject: AuditSubject,
    /// The narrative id, the request id, or `topic:partition:offset` of a rejected input.
    pub subject_id: String,
    /// `None` when the subject is created.
    pub from: Option<String>,
    pub to: String,
    /// A reviewer, a partner, or `policy` for automatic steps.
    pub who: String,
    /// RFC 3339.
    pub when: String,
    pub why: String,
    pub policy_version: String,
    /// SHA-256 (hex) of the previous record's value in this partition, or [`AUDIT_GENESIS`] for
    /// the first: rewriting, dropping or inserting a record breaks the chain after it. Absent
    /// in records written before the chain (`patroli audit verify` reports them).
    #[serde(default)]
    pub prev_hash: String,
}

/// What the first audit record of a partition links to.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The link the record after a message with value `payload` carries.
pub fn audit_link(payload: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(payload))
}

/// Id of the request for `posts` (post ids) of `narrative_id` on `platform`.
pub fn takedown_request_id(narrative_id: &str, platform: &str, posts: &[&str]) -> String {
    let mut id = IdHasher::new("takedown.requests.v1");
    id.field(narrative_id.as_bytes());
    id.field(platform.as_bytes());
    let mut posts = posts.to_vec();
    posts.sort_unstable();
    for post in posts {
        id.field(post.as_bytes());
    }
    id.finish()
}

/// Id of revision `revision` of `narrative_id`'s review item.
pub fn review_item_id(narrative_id: &str, revision: u64) -> String {
    let mut id = IdHasher::new("review.queue.v1");
    id.field(narrative_id.as_bytes());
    id.field(&revision.to_be_bytes());
    id.finish()
}

/// Id of the label a decision gives a post.
pub fn label_id(decision_id: &str, post: &PostRef) -> String {
    let mut id = IdHasher::new("labels.v1");
    id.field(decision_id.as_bytes());
    id.field(post.key().as_bytes());
    id.finish()
}

/// Id of the audit event for `subject_id` moving to `to` because of `cause` (a decision, status
/// or scored event id).
pub fn audit_event_id(subject_id: &str, to: &str, cause: &str) -> String {
    let mut id = IdHasher::new("takedown.audit.v1");
    id.field(subject_id.as_bytes());
    id.field(to.as_bytes());
    id.field(cause.as_bytes());
    id.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_ignores_post_order_but_not_platform() {
        let a = takedown_request_id("n1", "x", &["p1", "p2"]);
        assert_eq!(a, takedown_request_id("n1", "x", &["p2", "p1"]));
        assert_ne!(a, takedown_request_id("n1", "tiktok", &["p1", "p2"]));
        assert_ne!(a, takedown_request_id("n1", "x", &["p1"]));
        assert_eq!(a.len(), 32);
    }
}
