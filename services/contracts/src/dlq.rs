//! The dead-letter contract: why a message could not be scored, and the `posts.dlq.v1` event
//! that carries it with the original bytes.

use std::fmt;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::SourceOffset;
use crate::{dlq_event_id, now_rfc3339, SCHEMA_VERSION};

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
    /// The broker permanently rejected the event this post was scored into (e.g. larger than
    /// the topic's `max.message.bytes`, usually because of oversized trace headers); `detail`
    /// has the broker's error. Retrying would fail the same way forever.
    OutputRejected,
}

impl DlqReason {
    /// Every reason, so metrics can pre-register a zero series per label.
    pub const ALL: [DlqReason; 14] = [
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
        Self::OutputRejected,
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
            Self::OutputRejected => "output_rejected",
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
            | DlqReason::ModelError
            | DlqReason::OutputRejected => None,
        }
    }

    pub(crate) fn new(reason: DlqReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Value of `posts.dlq.v1`; the message key is the original key, or `source.key()` if there was
/// none ([`DlqEvent::message_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "posts.dlq.v1")]
pub struct DlqEvent {
    pub schema_version: u32,
    pub event_id: String,
    pub source: SourceOffset,
    /// The original key, decoded lossily as UTF-8.
    pub key: Option<String>,
    /// The exact original value bytes (standard base64), so the message can be fixed and replayed.
    pub original_base64: String,
    pub reason: DlqReason,
    pub detail: String,
    /// RFC 3339.
    pub failed_at: String,
}

impl DlqEvent {
    /// Builds the DLQ event for a message that failed [`crate::decode_input`].
    pub fn new(
        source: SourceOffset,
        key: Option<&[u8]>,
        original: Option<&[u8]>,
        error: &InvalidInput,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event_id: dlq_event_id(&source),
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            original_base64: base64::engine::general_purpose::STANDARD
                .encode(original.unwrap_or_default()),
            reason: error.reason,
            detail: error.detail.clone(),
            failed_at: now_rfc3339(),
            source,
        }
    }

    pub fn message_key(&self) -> String {
        self.key.clone().unwrap_or_else(|| self.source.key())
    }

    /// The original value bytes; `None` only if `original_base64` was tampered with.
    pub fn original(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.original_base64)
            .ok()
    }
}
