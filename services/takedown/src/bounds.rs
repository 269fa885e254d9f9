//! What keeps the service's memory and its records bounded: the configured bounds, the caps
//! on what an input may carry into a record, and the check every output passes before it is
//! produced, so no input can make a record the broker refuses (and stall the service on it).

use patroli_contracts::topics;

use crate::engine::{Engine, Outgoing};

/// How much the engine remembers and sends at once (the takedown config's bounds, README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes of raw post texts (and their keys) remembered for joining with their scored
    /// events; the oldest go first.
    pub text_cache_bytes: usize,
    /// Most posts one request lists: a platform gets pages of at most this many, so a request
    /// stays far below the broker's message size however large its narrative grows.
    pub max_posts_per_request: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            text_cache_bytes: 256 * 1024 * 1024,
            max_posts_per_request: 500,
        }
    }
}

/// Largest decision (as JSON) the service applies: a narrative's state record carries its
/// decision whole (its signature covers every field), and must stay far below the broker's
/// message size; reviewers' reasons are sentences, not documents.
pub const MAX_DECISION_BYTES: usize = 64 * 1024;

/// Characters of a reason (a reviewer's, a partner's, a refusal's) an audit record keeps: the
/// trail is for reading, and a record must stay far below the broker's message size.
pub const AUDIT_WHY_CHARS: usize = 2_000;

/// A state or audit record over `max_message_bytes`: both are bounded by construction (texts
/// by the input limits, reasons by [`AUDIT_WHY_CHARS`], decisions by [`MAX_DECISION_BYTES`],
/// requests by their own records), so this is a bug, never an input's doing.
#[derive(Debug, thiserror::Error)]
#[error("a {topic} record (key {key}) is {bytes} bytes, over max_message_bytes {max}")]
pub struct Unbounded {
    pub topic: &'static str,
    pub key: String,
    pub bytes: usize,
    pub max: usize,
}

impl Engine {
    /// `out` with every output over `max_bytes` (key and value) replaced by an audit entry
    /// about `subject`, the input that caused it, naming what was not sent and why.
    pub fn fit(
        &mut self,
        out: Vec<Outgoing>,
        max_bytes: usize,
        subject: &str,
        now: &str,
    ) -> Result<Vec<Outgoing>, Unbounded> {
        let size = |o: &Outgoing| o.key.len() + o.payload.len();
        if out.iter().all(|o| size(o) <= max_bytes) {
            return Ok(out);
        }
        let mut fitted = Vec::with_capacity(out.len());
        let mut refused = Vec::new();
        for o in out {
            let bytes = size(&o);
            if bytes <= max_bytes {
                fitted.push(o);
            } else if o.topic == topics::TAKEDOWN_STATE || o.topic == topics::TAKEDOWN_AUDIT {
                return Err(Unbounded {
                    topic: o.topic,
                    key: o.key,
                    bytes,
                    max: max_bytes,
                });
            } else {
                refused.push((o, bytes));
            }
        }
        for (o, bytes) in refused {
            self.metrics
                .refused_outputs
                .with_label_values(&[o.topic, "too_large"])
                .inc();
            let why = format!("{bytes} bytes, over max_message_bytes {max_bytes}");
            fitted.extend(self.refuse_output(&o, &why, subject, now));
        }
        Ok(fitted)
    }

    /// The audit entry for `out`, caused by `subject` and not sent because of `why`.
    pub(crate) fn refuse_output(
        &mut self,
        out: &Outgoing,
        why: &str,
        subject: &str,
        now: &str,
    ) -> Vec<Outgoing> {
        let why = format!("output to {} (key {}) not sent: {why}", out.topic, out.key);
        self.reject_input(subject, &why, now)
    }
}
