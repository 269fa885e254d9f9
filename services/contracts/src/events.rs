use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::claims::MatchedClaim;

/// Value of `posts.raw.v1`; the message key is `platform:post_id`.
///
/// Unknown fields are ignored rather than rejected so partners can add fields before readers
/// know about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "posts.raw.v1")]
pub struct RawPost {
    pub schema_version: u32,
    pub platform: String,
    pub post_id: String,
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
    /// A pseudonym assigned by the partner, never the raw handle.
    pub author: String,
    pub url: Option<String>,
    /// BCP 47 language tag if the partner knows it (e.g. `id`, `jv`).
    pub lang: Option<String>,
    pub region: Option<String>,
    pub engagement: Option<Engagement>,
    /// Set when the post is a reply to, share of or quote of another post.
    pub parent: Option<ParentRef>,
}

impl RawPost {
    pub fn post_ref(&self) -> PostRef {
        PostRef {
            platform: self.platform.clone(),
            post_id: self.post_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Engagement {
    pub likes: Option<u64>,
    pub shares: Option<u64>,
    pub replies: Option<u64>,
    pub views: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParentRef {
    pub platform: String,
    pub post_id: String,
    pub relation: ParentRelation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParentRelation {
    Reply,
    Share,
    Quote,
}

/// Value of `complaints.v1` (a member of the public reporting a suspected hoax); the message key
/// is `complaint_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "complaints.v1")]
pub struct Complaint {
    pub schema_version: u32,
    pub complaint_id: String,
    /// What the public reported: the post text or their own description of it.
    pub text: String,
    /// RFC 3339.
    pub reported_at: String,
    /// A pseudonym, never the reporter's identity.
    pub reporter: String,
    /// Where the report came in (e.g. `web`, `whatsapp`, `hotline`).
    pub channel: Option<String>,
    pub platform: Option<String>,
    pub post_id: Option<String>,
    pub url: Option<String>,
}

/// Value of `complaints.contacts.v1`: the contact details a reporter chose to leave, keyed by
/// `complaint_id`. Only the team answering complaints reads this topic; no service copies it
/// anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "complaints.contacts.v1")]
pub struct ComplaintContact {
    pub schema_version: u32,
    pub complaint_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// RFC 3339.
    pub received_at: String,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct PostRef {
    pub platform: String,
    pub post_id: String,
}

impl PostRef {
    /// The platform of every complaint's own key (`complaint:<complaint_id>`).
    pub const COMPLAINT_PLATFORM: &'static str = "complaint";

    /// The Kafka key, so all events about one post land on one partition in order.
    pub fn key(&self) -> String {
        format!("{}:{}", self.platform, self.post_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Post,
    Complaint,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Complaint => "complaint",
        }
    }
}

/// What the classifier scores, whichever input topic it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoringInput {
    pub source_kind: SourceKind,
    /// The scored thing's own identity and Kafka key. For a complaint always platform
    /// `complaint`, post_id = complaint_id: a complaint is never scored as the post it names.
    pub post: PostRef,
    pub complaint_id: Option<String>,
    /// The platform post a complaint names (see [`ScoredEvent::referenced_post`]).
    #[serde(default)]
    pub referenced_post: Option<PostRef>,
    pub text: String,
    /// Post author or complaint reporter (pseudonym).
    pub author: String,
    /// Post `created_at` or complaint `reported_at`.
    pub created_at: String,
    pub url: Option<String>,
    pub lang: Option<String>,
    pub region: Option<String>,
}

impl From<RawPost> for ScoringInput {
    fn from(post: RawPost) -> Self {
        Self {
            source_kind: SourceKind::Post,
            post: post.post_ref(),
            complaint_id: None,
            referenced_post: None,
            text: post.text,
            author: post.author,
            created_at: post.created_at,
            url: post.url,
            lang: post.lang,
            region: post.region,
        }
    }
}

impl From<Complaint> for ScoringInput {
    /// A complaint is scored under its own key, `complaint:<complaint_id>`, whatever it names.
    /// The platform and post it names (both non-blank) only become `referenced_post`: anyone
    /// may file a complaint, so what it says about a post is a claim for a reviewer to check,
    /// never the post's identity, text or author.
    fn from(complaint: Complaint) -> Self {
        let referenced_post = match (complaint.platform, complaint.post_id) {
            (Some(platform), Some(post_id))
                if !platform.trim().is_empty() && !post_id.trim().is_empty() =>
            {
                Some(PostRef { platform, post_id })
            }
            _ => None,
        };
        Self {
            source_kind: SourceKind::Complaint,
            post: PostRef {
                platform: PostRef::COMPLAINT_PLATFORM.to_owned(),
                post_id: complaint.complaint_id.clone(),
            },
            complaint_id: Some(complaint.complaint_id),
            referenced_post,
            text: complaint.text,
            author: complaint.reporter,
            created_at: complaint.reported_at,
            url: complaint.url,
            lang: None,
            region: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Disinformation,
    NotDisinformation,
}

impl Label {
    pub const ALL: [Label; 2] = [Self::Disinformation, Self::NotDisinformation];

    /// The serialised name, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disinformation => "disinformation",
            Self::NotDisinformation => "not_disinformation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    /// From the classifier consuming the message to the scored event being built.
    pub processing_ms: f64,
    /// From ingest (the ingest-time header, else the Kafka timestamp) to scored; absent when
    /// neither is available.
    pub end_to_end_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Reasons {
    /// Tokens that pushed the score most, for reviewers on the dashboard.
    pub top_tokens: Vec<String>,
}

/// Where an event came from, so any derived event can be traced back to (and replayed from)
/// its input message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SourceOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl SourceOffset {
    /// `topic:partition:offset`: the DLQ key for messages that arrived without one.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }
}

/// Value of `posts.scored.v1`; the message key is `post.key()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "posts.scored.v1")]
pub struct ScoredEvent {
    pub schema_version: u32,
    /// Deterministic (see [`crate::scored_event_id`]): consumers de-duplicate redeliveries by it.
    pub event_id: String,
    pub source_kind: SourceKind,
    /// For a complaint: platform `complaint`, post_id = complaint_id (its own key space).
    pub post: PostRef,
    pub complaint_id: Option<String>,
    /// The platform post a complaint names, as the complainant gave it: unverified, so it is
    /// never the event's key or identity; a takedown needs a reviewer to confirm this very post.
    /// Absent for posts, for complaints naming none, and in events written before references.
    #[serde(default)]
    pub referenced_post: Option<PostRef>,
    pub author: String,
    pub created_at: String,
    pub url: Option<String>,
    pub region: Option<String>,
    pub lang: Option<String>,
    /// Calibrated probability of election disinformation, 0..1.
    pub score: f32,
    pub label: Label,
    /// The most probable category.
    pub category: String,
    /// Probability per category.
    pub categories: BTreeMap<String, f32>,
    pub model: ModelRef,
    /// RFC 3339.
    pub scored_at: String,
    pub latency: Latency,
    /// 64-bit simhash as 16 hex chars (see [`crate::fingerprint`]) for near-duplicate grouping.
    pub fingerprint: String,
    pub reasons: Reasons,
    /// Known claims the post repeats, most similar first (at most three); empty when none
    /// reaches the model's match threshold or the model has no claim archive. Events written
    /// before matching existed lack it and read as empty.
    #[serde(default)]
    pub matches: Vec<MatchedClaim>,
    pub source: SourceOffset,
}
