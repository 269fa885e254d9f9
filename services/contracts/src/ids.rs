use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::events::{ModelRef, ScoringInput, SourceOffset};

/// Hex characters kept from the digest: 128 bits is ample against collisions and keeps keys short.
const ID_HEX_CHARS: usize = 32;

/// Deterministic id of the scored event for `input` under `model`.
///
/// A redelivered message scored by the same model gets the same id, so consumers can
/// de-duplicate after an at-least-once retry; a changed text or a new model version is a new
/// fact and gets a new id.
pub fn scored_event_id(input: &ScoringInput, model: &ModelRef) -> String {
    let mut id = IdHasher::new("posts.scored.v1");
    id.field(input.source_kind.as_str().as_bytes());
    id.field(input.post.key().as_bytes());
    id.optional(input.complaint_id.as_deref());
    id.field(input.text.as_bytes());
    id.field(model.name.as_bytes());
    id.field(model.version.as_bytes());
    // Only complaints name a post: posts' ids stay what they were before references existed.
    if let Some(referenced) = &input.referenced_post {
        id.field(referenced.platform.as_bytes());
        id.field(referenced.post_id.as_bytes());
    }
    id.finish()
}

/// Deterministic id of the DLQ event for the message at `source`: a message redelivered after a
/// crash is the same failure, not a new one.
pub fn dlq_event_id(source: &SourceOffset) -> String {
    let mut id = IdHasher::new("posts.dlq.v1");
    id.field(source.topic.as_bytes());
    id.field(&source.partition.to_be_bytes());
    id.field(&source.offset.to_be_bytes());
    id.finish()
}

/// Current UTC time, RFC 3339.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time is within RFC 3339's year range")
}

/// SHA-256 over length-prefixed fields, so ("ab", "c") and ("a", "bc") never share an id.
/// The domain tag keeps ids of different event kinds apart even if their fields coincide.
pub(crate) struct IdHasher(Sha256);

impl IdHasher {
    pub(crate) fn new(domain: &str) -> Self {
        let mut id = Self(Sha256::new());
        id.field(domain.as_bytes());
        id
    }

    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn optional(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0u8]),
            Some(value) => {
                self.0.update([1u8]);
                self.field(value.as_bytes());
            }
        }
    }

    pub(crate) fn finish(self) -> String {
        let mut hex = hex::encode(self.0.finalize());
        hex.truncate(ID_HEX_CHARS);
        hex
    }
}
