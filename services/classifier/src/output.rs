//! Turning consumed messages into the records the service produces: a
//! scored event for every valid input, a dead-letter event for every
//! invalid one. Pure functions of their inputs, so redelivery produces the
//! same `event_id`s.

use patroli_contracts::{
    fingerprint, now_rfc3339, scored_event_id, DlqEvent, DlqReason, InvalidInput, Label, Latency,
    ModelRef, Reasons, ScoredEvent, ScoringInput, SourceOffset, SCHEMA_VERSION,
};
use patroli_inference::{Prediction, Tokenized};
use std::time::Instant;

use crate::model_wire::matched_claim;

/// One consumed message, decoded (or not) in the poll loop.
pub struct Item {
    pub source: SourceOffset,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// When the post entered Kafka (ingest header or message timestamp).
    pub ingest_ms: Option<i64>,
    pub received: Instant,
    /// Trace headers carried through to the outputs.
    pub trace_headers: Vec<(String, Vec<u8>)>,
    pub decoded: Result<Valid, InvalidInput>,
}

/// A post ready for the model, tokenized once where it was decoded.
pub struct Valid {
    pub input: ScoringInput,
    pub tokens: Tokenized,
}

/// What the service produces for one item.
pub struct OutRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub outcome: Outcome,
    /// The input it came from, to dead-letter it if the broker rejects
    /// this record.
    pub origin: Origin,
}

/// The input message a record was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub source: SourceOffset,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl Origin {
    fn of(item: &Item) -> Self {
        Origin {
            source: item.source.clone(),
            key: item.key.clone(),
            payload: item.payload.clone(),
        }
    }
}

/// Milliseconds from `since_ms` to `now_ms`; `since_ms` comes from a
/// partner's header.
pub fn elapsed_ms(now_ms: i64, since_ms: i64) -> i64 {
    now_ms.saturating_sub(since_ms).max(0)
}

/// For counting what was produced, once it is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Scored(Label),
    DeadLetter(&'static str),
}

pub fn scored_record(
    item: &Item,
    input: &ScoringInput,
    prediction: Prediction,
    model: &ModelRef,
    topic: &str,
    now_ms: i64,
) -> OutRecord {
    let label = if prediction.label {
        Label::Disinformation
    } else {
        Label::NotDisinformation
    };
    let event_id = scored_event_id(input, model);
    let event = ScoredEvent {
        schema_version: SCHEMA_VERSION,
        event_id: event_id.clone(),
        source_kind: input.source_kind,
        post: input.post.clone(),
        complaint_id: input.complaint_id.clone(),
        author: input.author.clone(),
        created_at: input.created_at.clone(),
        url: input.url.clone(),
        region: input.region.clone(),
        lang: input.lang.clone(),
        score: prediction.score,
        label,
        category: prediction.category,
        categories: prediction.categories,
        model: model.clone(),
        scored_at: now_rfc3339(),
        latency: Latency {
            processing_ms: item.received.elapsed().as_secs_f64() * 1000.0,
            end_to_end_ms: item.ingest_ms.map(|t| elapsed_ms(now_ms, t) as f64),
        },
        fingerprint: fingerprint(&input.text),
        reasons: Reasons {
            top_tokens: prediction.top_tokens,
        },
        matches: prediction.matches.into_iter().map(matched_claim).collect(),
        source: item.source.clone(),
    };
    OutRecord {
        topic: topic.to_owned(),
        key: input.post.key(),
        payload: serde_json::to_vec(&event).expect("scored events always serialise"),
        headers: with_event_id(&item.trace_headers, &event_id),
        outcome: Outcome::Scored(label),
        origin: Origin::of(item),
    }
}

pub fn dead_letter_record(item: &Item, invalid: &InvalidInput, topic: &str) -> OutRecord {
    let event = DlqEvent::new(
        item.source.clone(),
        item.key.as_deref(),
        item.payload.as_deref(),
        invalid,
    );
    OutRecord {
        topic: topic.to_owned(),
        key: event.message_key(),
        payload: serde_json::to_vec(&event).expect("dead-letter events always serialise"),
        headers: with_event_id(&item.trace_headers, &event.event_id),
        outcome: Outcome::DeadLetter(invalid.reason.as_str()),
        origin: Origin::of(item),
    }
}

/// The dead letter for `record`, which the broker rejected for good
/// (`error`). A scored event's post is dead-lettered with its original; a
/// rejected dead letter is written again without the original. Trace
/// headers, often the reason a record is too large, are left off. `None`
/// when even that was rejected: there is nothing left to shed.
pub fn rejected_record(
    record: &OutRecord,
    error: &dyn std::fmt::Display,
    topic: &str,
) -> Option<OutRecord> {
    let mut origin = record.origin.clone();
    let bytes = record.payload.len();
    let detail = match record.outcome {
        Outcome::Scored(_) => {
            format!("the broker rejected the scored event ({bytes} bytes) for good: {error}")
        }
        Outcome::DeadLetter(reason) => {
            if reason == DlqReason::OutputRejected.as_str() && origin.payload.is_none() {
                return None;
            }
            origin.payload = None;
            format!(
                "the broker rejected the dead-letter event ({bytes} bytes) for good, \
                 so the original is not kept: {error}"
            )
        }
    };
    let event = DlqEvent::new(
        origin.source.clone(),
        origin.key.as_deref(),
        origin.payload.as_deref(),
        &InvalidInput {
            reason: DlqReason::OutputRejected,
            detail,
        },
    );
    Some(OutRecord {
        topic: topic.to_owned(),
        key: event.message_key(),
        payload: serde_json::to_vec(&event).expect("dead-letter events always serialise"),
        headers: with_event_id(&[], &event.event_id),
        outcome: Outcome::DeadLetter(DlqReason::OutputRejected.as_str()),
        origin,
    })
}

fn with_event_id(trace: &[(String, Vec<u8>)], event_id: &str) -> Vec<(String, Vec<u8>)> {
    let mut headers = trace.to_vec();
    headers.push(("event_id".into(), event_id.as_bytes().to_vec()));
    headers
}
