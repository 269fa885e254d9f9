use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::events::{Complaint, ParentRelation, RawPost, ScoringInput};
use crate::{topics, SCHEMA_VERSION};

pub const DEFAULT_MAX_TEXT_BYTES: usize = 10_000;

/// Input limits the classifier enforces before scoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Limits {
    /// Longer texts go to the DLQ rather than being truncated, so nobody mistakes a score of
    /// the first part for a score of the whole post.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// Why a message went to the DLQ. Serialised in snake_case; [`DlqReason::as_str`] gives the same
/// string for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DlqReason {
    EmptyPayload,
    InvalidUtf8,
    NotJson,
    NotAnObject,
    MissingField,
    WrongType,
    /// An identifier that forms a key (`platform`, `post_id`, `complaint_id`) is empty.
    EmptyField,
    EmptyText,
    TextTooLong,
    UnknownSchemaVersion,
    InvalidTimestamp,
    UnknownTopic,
    /// The model failed on this post alone (after its batch failed); kept so one poisonous
    /// post cannot stall its partition.
    ModelError,
}

impl DlqReason {
    /// Every reason, so metrics can pre-register a zero series per label.
    pub const ALL: [DlqReason; 13] = [
        Self::EmptyPayload,
        Self::InvalidUtf8,
        Self::NotJson,
        Self::NotAnObject,
        Self::MissingField,
        Self::WrongType,
        Self::EmptyField,
        Self::EmptyText,
        Self::TextTooLong,
        Self::UnknownSchemaVersion,
        Self::InvalidTimestamp,
        Self::UnknownTopic,
        Self::ModelError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmptyPayload => "empty_payload",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::EmptyField => "empty_field",
            Self::EmptyText => "empty_text",
            Self::TextTooLong => "text_too_long",
            Self::UnknownSchemaVersion => "unknown_schema_version",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::UnknownTopic => "unknown_topic",
            Self::ModelError => "model_error",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that cannot be scored; it belongs in the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct InvalidInput {
    pub reason: DlqReason,
    pub detail: String,
}

impl InvalidInput {
    /// The offending field's path (`text`, `engagement.likes`), for APIs that point a client at
    /// what to fix; `None` when the message as a whole is wrong. Read back from the detail,
    /// which names the field between backticks wherever one is at fault.
    pub fn field(&self) -> Option<&str> {
        match self.reason {
            DlqReason::EmptyText | DlqReason::TextTooLong => Some("text"),
            DlqReason::UnknownSchemaVersion => Some("schema_version"),
            DlqReason::MissingField
            | DlqReason::WrongType
            | DlqReason::EmptyField
            | DlqReason::InvalidTimestamp => {
                let (_, rest) = self.detail.split_once('`')?;
                rest.split_once('`').map(|(field, _)| field)
            }
            DlqReason::EmptyPayload
            | DlqReason::InvalidUtf8
            | DlqReason::NotJson
            | DlqReason::NotAnObject
            | DlqReason::UnknownTopic
            | DlqReason::ModelError => None,
        }
    }

    fn new(reason: DlqReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Which contract an input message follows. Deployments may rename topics
/// (environment prefixes, test namespaces), so the consumer tells the
/// decoder what it subscribed a topic as; the name alone proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `posts.raw.v1`'s contract.
    Post,
    /// `complaints.v1`'s contract.
    Complaint,
}

/// Decodes and validates the value of a message from `posts.raw.v1` or `complaints.v1`
/// (by their contract names; see [`decode_as`] for renamed topics).
pub fn decode_input(
    topic: &str,
    payload: Option<&[u8]>,
    limits: &Limits,
) -> Result<ScoringInput, InvalidInput> {
    let kind = match topic {
        topics::POSTS_RAW => InputKind::Post,
        topics::COMPLAINTS => InputKind::Complaint,
        _ => {
            return Err(InvalidInput::new(
                DlqReason::UnknownTopic,
                format!(
                    "topic `{}` is not an input topic (expected {} or {})",
                    excerpt(topic),
                    topics::POSTS_RAW,
                    topics::COMPLAINTS
                ),
            ))
        }
    };
    decode_as(kind, payload, limits)
}

/// Decodes and validates an input message of a known contract.
///
/// Required fields are checked on the untyped JSON first because serde's own errors do not
/// say which field had the wrong type, and the DLQ reason must tell the partner exactly what to fix.
pub fn decode_as(
    kind: InputKind,
    payload: Option<&[u8]>,
    limits: &Limits,
) -> Result<ScoringInput, InvalidInput> {
    let spec = match kind {
        InputKind::Post => &RAW_POST,
        InputKind::Complaint => &COMPLAINT,
    };
    let object = parse_object(payload)?;
    check_schema_version(&object)?;
    check_fields(&object, spec.fields, "")?;
    check_text(&object, limits)?;
    check_timestamp(&object, spec.timestamp)?;
    (spec.build)(Value::Object(object))
        .map_err(|e| InvalidInput::new(DlqReason::WrongType, e.to_string()))
}

struct InputSpec {
    fields: &'static [Field],
    timestamp: &'static str,
    build: fn(Value) -> Result<ScoringInput, serde_json::Error>,
}

struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

enum Kind {
    Str,
    /// A string that forms part of a Kafka key, so empty would collide across posts.
    Id,
    Count,
    Object(&'static [Field]),
    Relation,
}

const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const RAW_POST: InputSpec = InputSpec {
    fields: &[
        required("platform", Kind::Id),
        required("post_id", Kind::Id),
        required("text", Kind::Str),
        required("created_at", Kind::Str),
        required("author", Kind::Str),
        optional("url", Kind::Str),
        optional("lang", Kind::Str),
        optional("region", Kind::Str),
        optional(
            "engagement",
            Kind::Object(&[
                optional("likes", Kind::Count),
                optional("shares", Kind::Count),
                optional("replies", Kind::Count),
                optional("views", Kind::Count),
            ]),
        ),
        optional(
            "parent",
            Kind::Object(&[
                required("platform", Kind::Id),
                required("post_id", Kind::Id),
                required("relation", Kind::Relation),
            ]),
        ),
    ],
    timestamp: "created_at",
    build: |v| serde_json::from_value::<RawPost>(v).map(ScoringInput::from),
};

const COMPLAINT: InputSpec = InputSpec {
    fields: &[
        required("complaint_id", Kind::Id),
        required("text", Kind::Str),
        required("reported_at", Kind::Str),
        required("reporter", Kind::Str),
        optional("channel", Kind::Str),
        optional("platform", Kind::Str),
        optional("post_id", Kind::Str),
        optional("url", Kind::Str),
    ],
    timestamp: "reported_at",
    build: |v| serde_json::from_value::<Complaint>(v).map(ScoringInput::from),
};

fn parse_object(payload: Option<&[u8]>) -> Result<Map<String, Value>, InvalidInput> {
    let bytes = match payload {
        None => {
            return Err(InvalidInput::new(
                DlqReason::EmptyPayload,
                "message has no value",
            ))
        }
        Some([]) => {
            return Err(InvalidInput::new(
                DlqReason::EmptyPayload,
                "message value is empty",
            ))
        }
        Some(bytes) => bytes,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        InvalidInput::new(
            DlqReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(InvalidInput::new(
            DlqReason::NotAnObject,
            format!("expected a JSON object, got {}", json_type(&other)),
        )),
        Err(e) => Err(InvalidInput::new(DlqReason::NotJson, e.to_string())),
    }
}

/// Checked before the other fields: a newer version may have renamed them, and "unsupported
/// version" is the actionable message then, not "missing field".
fn check_schema_version(object: &Map<String, Value>) -> Result<(), InvalidInput> {
    let version = match object.get("schema_version") {
        None => {
            return Err(InvalidInput::new(
                DlqReason::MissingField,
                "missing field `schema_version`",
            ))
        }
        Some(value) => value
            .as_u64()
            .ok_or_else(|| wrong_type("schema_version", &Kind::Count))?,
    };
    if version != u64::from(SCHEMA_VERSION) {
        return Err(InvalidInput::new(
            DlqReason::UnknownSchemaVersion,
            format!("schema_version {version} is not supported (expected {SCHEMA_VERSION})"),
        ));
    }
    Ok(())
}

fn check_fields(
    object: &Map<String, Value>,
    fields: &[Field],
    prefix: &str,
) -> Result<(), InvalidInput> {
    for field in fields {
        let path = format!("{prefix}{}", field.name);
        let value = match (object.get(field.name), field.required) {
            (None, true) => {
                return Err(InvalidInput::new(
                    DlqReason::MissingField,
                    format!("missing field `{path}`"),
                ))
            }
            // Partners commonly send explicit nulls for optional values they do not have.
            (None | Some(Value::Null), false) => continue,
            (Some(value), _) => value,
        };
        let well_typed = match (&field.kind, value) {
            (Kind::Str, Value::String(_)) => true,
            (Kind::Id, Value::String(s)) if s.trim().is_empty() => {
                return Err(InvalidInput::new(
                    DlqReason::EmptyField,
                    format!("field `{path}` is empty"),
                ))
            }
            (Kind::Id, Value::String(_)) => true,
            (Kind::Count, value) => value.as_u64().is_some(),
            (Kind::Object(inner), Value::Object(nested)) => {
                check_fields(nested, inner, &format!("{path}."))?;
                true
            }
            (Kind::Relation, value) => ParentRelation::deserialize(value).is_ok(),
            _ => false,
        };
        if !well_typed {
            return Err(wrong_type(&path, &field.kind));
        }
    }
    Ok(())
}

fn check_text(object: &Map<String, Value>, limits: &Limits) -> Result<(), InvalidInput> {
    let Some(text) = object.get("text").and_then(Value::as_str) else {
        return Ok(());
    };
    if text.trim().is_empty() {
        return Err(InvalidInput::new(
            DlqReason::EmptyText,
            "field `text` is empty or whitespace-only",
        ));
    }
    if text.len() > limits.max_text_bytes {
        return Err(InvalidInput::new(
            DlqReason::TextTooLong,
            format!(
                "text is {} bytes, limit {}",
                text.len(),
                limits.max_text_bytes
            ),
        ));
    }
    Ok(())
}

fn check_timestamp(object: &Map<String, Value>, field: &str) -> Result<(), InvalidInput> {
    let Some(value) = object.get(field).and_then(Value::as_str) else {
        return Ok(());
    };
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(_) => Ok(()),
        Err(_) => Err(InvalidInput::new(
            DlqReason::InvalidTimestamp,
            format!(
                "field `{field}` is not an RFC 3339 timestamp: `{}`",
                excerpt(value)
            ),
        )),
    }
}

fn wrong_type(path: &str, kind: &Kind) -> InvalidInput {
    let expected = match kind {
        Kind::Str | Kind::Id => "a string",
        Kind::Count => "a non-negative integer",
        Kind::Object(_) => "an object",
        Kind::Relation => "one of \"reply\", \"share\", \"quote\"",
    };
    InvalidInput::new(
        DlqReason::WrongType,
        format!("field `{path}` must be {expected}"),
    )
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Details end up in logs and DLQ events; a multi-megabyte bad value must not be copied there.
fn excerpt(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::schema::topic_schema;

    /// The hand-written checks must know every field the types know, or a type change would
    /// surface as an unhelpful serde message instead of a precise DLQ reason.
    #[test]
    fn field_checks_cover_the_schema() {
        for (topic, spec) in [
            (topics::POSTS_RAW, &RAW_POST),
            (topics::COMPLAINTS, &COMPLAINT),
        ] {
            let schema = topic_schema(topic).expect("input topic has a schema");
            let names = |key: &str| -> BTreeSet<String> {
                match schema.get(key) {
                    Some(Value::Array(names)) => names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect(),
                    Some(Value::Object(properties)) => properties.keys().cloned().collect(),
                    _ => BTreeSet::new(),
                }
            };
            let checked = |only_required: bool| -> BTreeSet<String> {
                spec.fields
                    .iter()
                    .filter(|f| f.required || !only_required)
                    .map(|f| f.name.to_owned())
                    .chain(["schema_version".to_owned()])
                    .collect()
            };
            assert_eq!(checked(true), names("required"), "{topic} required fields");
            assert_eq!(checked(false), names("properties"), "{topic} fields");
        }
    }
}
