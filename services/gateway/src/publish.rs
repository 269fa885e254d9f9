//! Writes accepted events through the idempotent producer and answers only once the broker
//! has acknowledged every one of them.
//!
//! "A retry creates no second event": Kafka's idempotent producer removes duplicates caused
//! by its own retries, not by a client retrying a request whose answer it never saw. So every
//! acknowledged (key, content) is remembered for `dedup_window_secs`; a retry within the
//! window on this instance is answered 202 without writing again. Beyond that (another
//! replica, a restart, an acknowledgement lost with a timeout) a duplicate message can reach
//! the topic, but it carries the same key and value, so the classifier derives the same
//! `event_id` from it and consumers drop it: the pipeline as a whole never counts it twice.

use crate::metrics::Metrics;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub type Fingerprint = [u8; 32];

pub struct Outgoing {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    /// Equal for a retry of the same content; a changed post under the same id differs.
    pub fingerprint: Fingerprint,
}

/// Carried as headers so a post can be traced from the request to its scored event.
pub struct Trace {
    pub trace_id: String,
    pub traceparent: Option<String>,
    pub ingest_time_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub written: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Found before anything was produced: the request is refused whole.
    #[error(
        "message {index} would be a {size}-byte Kafka record; the producer accepts at most {max}"
    )]
    TooLarge {
        index: usize,
        size: usize,
        max: usize,
    },
    /// The producer or the broker refused a record as too large (a topic's own
    /// `max.message.bytes` below the gateway's `max_message_bytes`): retrying cannot help.
    #[error("the broker refused a message as too large: {0}")]
    RefusedAsTooLarge(KafkaError),
    #[error("the broker did not acknowledge {failed} of {total} messages: {first}")]
    NotAcknowledged {
        failed: usize,
        total: usize,
        first: KafkaError,
    },
}

/// librdkafka's worst-case framing of one record (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`: the
/// length, attributes, timestamp and offset deltas, key and value lengths, header count as
/// varints) and of one header (its key and value lengths); it refuses a record whose key,
/// value and headers plus these exceed `message.max.bytes` (README, "Ingest gateway").
const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
const HEADER_OVERHEAD: usize = 5 + 5;

fn record_size(message: &Outgoing, headers: &[(&str, &str)]) -> usize {
    RECORD_OVERHEAD
        + message.key.len()
        + message.payload.len()
        + headers
            .iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + v.len())
            .sum::<usize>()
}

fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

pub struct Publisher {
    producer: FutureProducer,
    recent: RecentIds,
    metrics: Metrics,
    /// The producer's `message.max.bytes`: larger records are refused before producing.
    max_message_bytes: usize,
    /// Cancelled when the producer hits a fatal error; the service then exits non-zero so it
    /// is restarted with a fresh producer instead of failing every request.
    fatal: CancellationToken,
}

impl Publisher {
    pub fn new(
        producer: FutureProducer,
        window: Duration,
        capacity: usize,
        max_message_bytes: usize,
        metrics: Metrics,
        fatal: CancellationToken,
    ) -> Self {
        Publisher {
            producer,
            recent: RecentIds::new(window, capacity),
            metrics,
            max_message_bytes,
            fatal,
        }
    }

    pub async fn publish(
        &self,
        messages: Vec<Outgoing>,
        trace: &Trace,
    ) -> Result<Published, PublishError> {
        let ingest = trace.ingest_time_ms.to_string();
        let mut header_pairs = vec![
            ("trace_id", trace.trace_id.as_str()),
            ("ingest_time_ms", ingest.as_str()),
        ];
        if let Some(traceparent) = &trace.traceparent {
            header_pairs.push(("traceparent", traceparent));
        }
        // All or nothing: a record too large for the producer would otherwise fail alone
        // after the others of its request were written.
        for (index, message) in messages.iter().enumerate() {
            let size = record_size(message, &header_pairs);
            if size > self.max_message_bytes {
                return Err(PublishError::TooLarge {
                    index,
                    size,
                    max: self.max_message_bytes,
                });
            }
        }
        let total = messages.len();
        let fresh: Vec<Outgoing> = messages
            .into_iter()
            .filter(|m| !self.recent.contains(&m.topic, &m.key, &m.fingerprint))
            .collect();
        let duplicates = total - fresh.len();
        let headers = header_pairs
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        let mut deliveries = Vec::with_capacity(fresh.len());
        let mut errors = Errors::default();
        for message in &fresh {
            let record = FutureRecord::to(&message.topic)
                .key(&message.key)
                .payload(&message.payload)
                .headers(headers.clone());
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(Some(delivery)),
                Err((e, _)) => {
                    errors.note(e);
                    deliveries.push(None);
                }
            }
        }
        let mut failed = 0;
        for (message, delivery) in fresh.iter().zip(deliveries) {
            let outcome = match delivery {
                Some(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(Some(e)),
                    Err(_canceled) => Err(None),
                },
                None => Err(None),
            };
            match outcome {
                Ok(()) => {
                    self.metrics
                        .events
                        .with_label_values(&[&message.topic])
                        .inc();
                    self.recent
                        .insert(&message.topic, &message.key, message.fingerprint);
                }
                Err(e) => {
                    failed += 1;
                    if let Some(e) = e {
                        errors.note(e);
                    }
                }
            }
        }
        self.metrics.duplicates.inc_by(duplicates as u64);
        if failed == 0 {
            return Ok(Published {
                written: fresh.len(),
                duplicates,
            });
        }
        self.metrics.produce_failures.inc_by(failed as u64);
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::error!(?code, %reason, "fatal producer error; stopping");
            self.fatal.cancel();
        }
        if let Some(too_large) = errors.too_large {
            return Err(PublishError::RefusedAsTooLarge(too_large));
        }
        Err(PublishError::NotAcknowledged {
            failed,
            total: fresh.len(),
            first: errors.first.unwrap_or(KafkaError::Canceled),
        })
    }
}

/// The first error of a request, and the first size refusal, which decides its answer.
#[derive(Default)]
struct Errors {
    first: Option<KafkaError>,
    too_large: Option<KafkaError>,
}

impl Errors {
    fn note(&mut self, error: KafkaError) {
        if is_too_large(&error) {
            self.too_large.get_or_insert(error);
        } else {
            self.first.get_or_insert(error);
        }
    }
}

/// Acknowledged (topic, key) → content fingerprint, for `window`, at most `capacity` entries
/// (the oldest go first).
struct RecentIds {
    window: Duration,
    capacity: usize,
    inner: Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    by_key: HashMap<(String, String), (Fingerprint, Instant)>,
    order: VecDeque<((String, String), Instant)>,
}

impl RecentIds {
    fn new(window: Duration, capacity: usize) -> Self {
        RecentIds {
            window,
            capacity,
            inner: Mutex::default(),
        }
    }

    fn contains(&self, topic: &str, key: &str, fingerprint: &Fingerprint) -> bool {
        let mut inner = self.lock();
        self.expire(&mut inner);
        inner
            .by_key
            .get(&(topic.to_owned(), key.to_owned()))
            .is_some_and(|(seen, _)| seen == fingerprint)
    }

    fn insert(&self, topic: &str, key: &str, fingerprint: Fingerprint) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let id = (topic.to_owned(), key.to_owned());
        let mut inner = self.lock();
        inner.by_key.insert(id.clone(), (fingerprint, now));
        inner.order.push_back((id, now));
        while inner.by_key.len() > self.capacity {
            let Some((oldest, at)) = inner.order.pop_front() else {
                break;
            };
            inner.forget(&oldest, at);
        }
    }

    fn expire(&self, inner: &mut RecentInner) {
        while let Some((_, at)) = inner.order.front() {
            if at.elapsed() < self.window {
                break;
            }
            let (id, at) = inner.order.pop_front().expect("front exists");
            inner.forget(&id, at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RecentInner {
    /// Removes `id` only if this queue entry is its latest insertion.
    fn forget(&mut self, id: &(String, String), at: Instant) {
        if self.by_key.get(id).is_some_and(|(_, latest)| *latest == at) {
            self.by_key.remove(id);
        }
    }
}

pub fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_remember_content_per_key_within_window_and_capacity() {
        let recent = RecentIds::new(Duration::from_millis(200), 2);
        let (a, b) = (fingerprint(&[b"a"]), fingerprint(&[b"b"]));
        recent.insert("t", "x:1", a);
        assert!(recent.contains("t", "x:1", &a));
        assert!(!recent.contains("t", "x:1", &b), "edited post is new");
        assert!(!recent.contains("u", "x:1", &a), "other topic");
        recent.insert("t", "x:2", a);
        recent.insert("t", "x:3", a);
        assert!(!recent.contains("t", "x:1", &a), "evicted by capacity");
        assert!(recent.contains("t", "x:3", &a));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!recent.contains("t", "x:3", &a), "expired");
    }

    #[test]
    fn fingerprint_separates_fields() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
