//! Event contracts shared by every patroli service: topic names, the JSON value of each topic,
//! input validation with machine-readable DLQ reasons, deterministic event ids, content
//! fingerprints and the JSON Schemas partners validate against.
//!
//! Kafka is the only coupling between services, so these types *are* the interface: a change
//! here that alters the wire format must bump [`SCHEMA_VERSION`] and regenerate `schemas/`.

mod decode;
mod events;
mod fingerprint;
mod ids;
pub mod schema;

pub use decode::{
    decode_as, decode_input, DlqReason, InputKind, InvalidInput, Limits, DEFAULT_MAX_TEXT_BYTES,
};
pub use events::{
    Complaint, ComplaintContact, DlqEvent, Engagement, Label, Latency, ModelRef, ParentRef,
    ParentRelation, PostRef, RawPost, Reasons, ScoredEvent, ScoringInput, SourceKind, SourceOffset,
};
pub use fingerprint::{fingerprint, hamming};
pub use ids::{dlq_event_id, now_rfc3339, scored_event_id};

/// Kafka topic names. The `.v1` suffix is part of the contract: an incompatible change gets a
/// new topic so old and new producers can run side by side during a migration.
pub mod topics {
    pub const POSTS_RAW: &str = "posts.raw.v1";
    pub const COMPLAINTS: &str = "complaints.v1";
    pub const POSTS_SCORED: &str = "posts.scored.v1";
    pub const POSTS_DLQ: &str = "posts.dlq.v1";
    /// How to reach a member of the public who filed a complaint. Kept apart from
    /// `complaints.v1` so personal data never flows into scored or DLQ events; only the
    /// team that answers complaints may read it (ACL, short retention).
    pub const COMPLAINT_CONTACTS: &str = "complaints.contacts.v1";

    /// Every topic this crate defines a value for, in data-flow order.
    pub const ALL: [&str; 5] = [
        POSTS_RAW,
        COMPLAINTS,
        COMPLAINT_CONTACTS,
        POSTS_SCORED,
        POSTS_DLQ,
    ];

    /// Partitions per topic on a local broker (`patroli up`, the tests):
    /// enough to show consumer-group scaling. Production partition counts
    /// are the Strimzi `KafkaTopic`s in deploy/k8s/base/kafkatopics.yaml.
    pub const LOCAL_PARTITIONS: [(&str, i32); 4] = [
        (POSTS_RAW, 6),
        (COMPLAINTS, 3),
        (POSTS_SCORED, 6),
        (POSTS_DLQ, 1),
    ];
}

/// The `schema_version` every event written today carries and every reader accepts.
pub const SCHEMA_VERSION: u32 = 1;
