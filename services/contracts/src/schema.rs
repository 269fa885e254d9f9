//! JSON Schemas of the topic values, generated from the types so they cannot drift; the
//! committed copies under `schemas/` are what partners validate against.

use schemars::{schema_for, Schema};

use crate::claims::ClaimRecord;
use crate::dlq::DlqEvent;
use crate::events::{Complaint, ComplaintContact, RawPost, ScoredEvent};
use crate::takedown::{
    AuditEvent, LabelRecord, ReviewDecision, ReviewItem, TakedownRequest, TakedownStatus,
};
use crate::topics;

/// The JSON Schema of `topic`'s message value, or `None` for a topic this crate does not define.
pub fn topic_schema(topic: &str) -> Option<Schema> {
    Some(match topic {
        topics::POSTS_RAW => schema_for!(RawPost),
        topics::COMPLAINTS => schema_for!(Complaint),
        topics::COMPLAINT_CONTACTS => schema_for!(ComplaintContact),
        topics::POSTS_SCORED => schema_for!(ScoredEvent),
        topics::POSTS_DLQ => schema_for!(DlqEvent),
        topics::REVIEW_QUEUE => schema_for!(ReviewItem),
        topics::REVIEW_DECISIONS => schema_for!(ReviewDecision),
        topics::TAKEDOWN_REQUESTS => schema_for!(TakedownRequest),
        topics::TAKEDOWN_STATUS => schema_for!(TakedownStatus),
        topics::LABELS => schema_for!(LabelRecord),
        topics::TAKEDOWN_AUDIT => schema_for!(AuditEvent),
        topics::CLAIMS => schema_for!(ClaimRecord),
        _ => return None,
    })
}
