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
        referenced_post: input.referenced_post.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use patroli_contracts::{decode_input, topics, Limits, PostRef, ScoredEvent, SourceKind};

    fn scored(topic: &str, payload: serde_json::Value) -> (OutRecord, ScoredEvent) {
        let bytes = payload.to_string().into_bytes();
        let input = decode_input(topic, Some(&bytes), &Limits::default()).expect("valid input");
        let item = Item {
            source: SourceOffset {
                topic: topic.into(),
                partition: 0,
                offset: 7,
            },
            key: None,
            payload: Some(bytes),
            ingest_ms: None,
            received: Instant::now(),
            trace_headers: Vec::new(),
            decoded: Err(InvalidInput {
                reason: DlqReason::ModelError,
                detail: "not needed here".into(),
            }),
        };
        let prediction = Prediction {
            score: 0.9,
            label: true,
            category: "ballot_fraud".into(),
            categories: Default::default(),
            top_tokens: Vec::new(),
            matches: Vec::new(),
        };
        let model = ModelRef {
            name: "m".into(),
            version: "1".into(),
        };
        let record = scored_record(&item, &input, prediction, &model, "out", 0);
        let event = serde_json::from_slice(&record.payload).expect("a scored event");
        (record, event)
    }

    #[test]
    fn a_complaint_naming_a_post_is_keyed_as_the_complaint_and_only_references_the_post() {
        let (record, event) = scored(
            topics::COMPLAINTS,
            serde_json::json!({
                "schema_version": 1, "complaint_id": "c-1", "text": "Surat suara dicoblos",
                "reported_at": "2024-02-13T08:00:00Z", "reporter": "anonymous",
                "platform": "x", "post_id": "1999999999999999999",
            }),
        );
        assert_eq!(record.key, "complaint:c-1");
        assert_eq!(event.source_kind, SourceKind::Complaint);
        assert_eq!(event.post.key(), "complaint:c-1");
        assert_eq!(event.complaint_id.as_deref(), Some("c-1"));
        assert_eq!(
            event.referenced_post,
            Some(PostRef {
                platform: "x".into(),
                post_id: "1999999999999999999".into()
            })
        );
        assert_eq!(event.author, "anonymous");
    }

    #[test]
    fn a_post_references_nothing() {
        let (record, event) = scored(
            topics::POSTS_RAW,
            serde_json::json!({
                "schema_version": 1, "platform": "x", "post_id": "1999999999999999999",
                "text": "Surat suara dicoblos", "created_at": "2024-02-13T08:00:00Z",
                "author": "u_1",
            }),
        );
        assert_eq!(record.key, "x:1999999999999999999");
        assert_eq!(
            (event.source_kind, event.referenced_post),
            (SourceKind::Post, None)
        );
    }
}
