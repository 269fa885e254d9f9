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
/// The category taxonomy.
pub mod taxonomy;
/// Topic names, and every topic's settings: the one table the local broker, the services and
/// the Strimzi manifests are made from.
pub mod topics;

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

/// The `schema_version` every event written today carries and every reader accepts.
pub const SCHEMA_VERSION: u32 = 1;
