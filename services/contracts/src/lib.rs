//! Event contracts shared by every patroli service: topic names, the JSON value of each topic,
//! input validation with machine-readable DLQ reasons, deterministic event ids, content
//! fingerprints and the JSON Schemas partners validate against.
//!
//! Kafka is the only coupling between services, so these types *are* the interface: a change
//! here that breaks an existing reader or writer must bump [`SCHEMA_VERSION`]; any change to the
//! wire format regenerates `schemas/`. An added field that readers may lack (`#[serde(default)]`)
//! is not breaking.

/// Kafka principals and their ACLs.
pub mod access;
mod claims;
mod decode;
mod dlq;
mod events;
mod fingerprint;
mod ids;
pub mod schema;
mod signing;
mod takedown;

pub use claims::{ClaimRecord, ClaimVerdict, MatchedClaim};
pub use decode::{decode_as, decode_input, InputKind, Limits, DEFAULT_MAX_TEXT_BYTES};
pub use dlq::{DlqEvent, DlqReason, InvalidInput};
pub use events::{
    Complaint, ComplaintContact, Engagement, Label, Latency, ModelRef, ParentRef, ParentRelation,
    PostRef, RawPost, Reasons, ScoredEvent, ScoringInput, SourceKind, SourceOffset,
};
pub use fingerprint::{fingerprint, hamming, parse_fingerprint};
pub use ids::{dlq_event_id, now_rfc3339, scored_event_id};
pub use signing::{
    canonical_bytes, DecisionSignature, DecisionSigner, DecisionVerifier, KeyError, SignatureError,
};
pub use takedown::{
    audit_event_id, audit_link, label_id, review_item_id, takedown_request_id, AuditEvent,
    AuditSubject, ComplaintReference, CoordinatedBurst, DecisionAction, LabelRecord,
    NarrativeStatus, PartnerStatus, Priority, RequestBasis, RequestedPost, ReviewDecision,
    ReviewItem, ReviewLabel, SamplePost, TakedownRequest, TakedownStatus, AUDIT_GENESIS,
    MAX_COMPLAINT_REFERENCES,
};

/// Kafka topic names. The `.v1` suffix is part of the contract: an incompatible change gets a
/// new topic so old and new producers can run side by side during a migration.
pub mod topics {
    pub const POSTS_RAW: &str = "posts.raw.v1";
    pub const COMPLAINTS: &str = "complaints.v1";
    pub const POSTS_SCORED: &str = "posts.scored.v1";
    pub const POSTS_DLQ: &str = "posts.dlq.v1";
    pub const REVIEW_QUEUE: &str = "review.queue.v1";
    pub const REVIEW_DECISIONS: &str = "review.decisions.v1";
    pub const TAKEDOWN_REQUESTS: &str = "takedown.requests.v1";
    pub const TAKEDOWN_STATUS: &str = "takedown.status.v1";
    pub const LABELS: &str = "labels.v1";
    pub const TAKEDOWN_AUDIT: &str = "takedown.audit.v1";
    /// Checked claims every classifier matches posts against; compacted, keyed by claim id.
    pub const CLAIMS: &str = "claims.v1";
    /// The takedown service's own compacted state (narratives, posts, requests), read back at
    /// start-up. Internal to that service, so it has no schema here and is not in [`ALL`].
    pub const TAKEDOWN_STATE: &str = "takedown.state.v1";

    /// How to reach a member of the public who filed a complaint. Kept apart from
    /// `complaints.v1` so personal data never flows into scored or DLQ events; only the
    /// team that answers complaints may read it (ACL, short retention).
    pub const COMPLAINT_CONTACTS: &str = "complaints.contacts.v1";

    /// Every topic this crate defines a value for, in data-flow order.
    pub const ALL: [&str; 12] = [
        POSTS_RAW,
        COMPLAINTS,
        COMPLAINT_CONTACTS,
        POSTS_SCORED,
        POSTS_DLQ,
        REVIEW_QUEUE,
        REVIEW_DECISIONS,
        TAKEDOWN_REQUESTS,
        TAKEDOWN_STATUS,
        LABELS,
        TAKEDOWN_AUDIT,
        CLAIMS,
    ];

    /// Partitions per topic on a local broker (`patroli up`, the tests):
    /// enough to show consumer-group scaling. Production partition counts
    /// are the Strimzi `KafkaTopic`s in deploy/k8s/base/kafkatopics*.yaml.
    pub const LOCAL_PARTITIONS: [(&str, i32); 13] = [
        (POSTS_RAW, 6),
        (COMPLAINTS, 3),
        (POSTS_SCORED, 6),
        (POSTS_DLQ, 1),
        (REVIEW_QUEUE, 3),
        (REVIEW_DECISIONS, 3),
        // Keyed by platform: each partner reads the partition its platform hashes to.
        (TAKEDOWN_REQUESTS, 3),
        (TAKEDOWN_STATUS, 3),
        (LABELS, 3),
        // One hash chain, written by one service (docs/architecture.md, "Audit chain").
        (TAKEDOWN_AUDIT, 1),
        // One partition: one takedown instance owns every narrative.
        (TAKEDOWN_STATE, 1),
        (COMPLAINT_CONTACTS, 1),
        // Every classifier reads all of it: one partition keeps it in order.
        (CLAIMS, 1),
    ];
}

/// The `schema_version` every event written today carries and every reader accepts.
pub const SCHEMA_VERSION: u32 = 1;
