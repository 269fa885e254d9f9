use patroli_contracts::{topics, DEFAULT_MAX_TEXT_BYTES};
use patroli_runtime::{KafkaConfig, DEFAULT_DRAIN_TIMEOUT_SECS};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A token bucket: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplaintLimits {
    /// Complaints one client address may file per minute, sustained.
    pub per_ip_per_minute: u32,
    /// Complaints one client address may file at once.
    pub per_ip_burst: u32,
    pub max_body_bytes: usize,
}

impl Default for ComplaintLimits {
    fn default() -> Self {
        ComplaintLimits {
            per_ip_per_minute: 6,
            per_ip_burst: 3,
            max_body_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    pub kafka: KafkaConfig,
    /// Where partners and the public reach the API.
    pub listen_addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics` (kept off the public port).
    pub http_addr: SocketAddr,
    /// Partner keys (TOML, see README); re-read every `keys_reload_ms`, so a rotated Secret
    /// takes effect without a restart. Without it no partner can post.
    pub keys_file: Option<PathBuf>,
    pub keys_reload_ms: u64,
    pub posts_topic: String,
    pub complaints_topic: String,
    pub contacts_topic: String,
    /// Must equal the classifier's `max_text_bytes`: the gateway refuses what the classifier
    /// would dead-letter.
    pub max_text_bytes: usize,
    pub max_body_bytes: usize,
    /// The producer's `message.max.bytes`: one post (or complaint) whose Kafka record (key,
    /// value, headers, framing) is larger is refused with 413. Keep it at or below every
    /// gateway topic's `max.message.bytes` (broker default 1,048,588).
    pub max_message_bytes: usize,
    /// Requests answered at once (both endpoints, including those waiting for the broker);
    /// past it a request gets 503 with `Retry-After` instead of queueing without bound. Each
    /// may hold its body about three times, so this also bounds memory.
    pub max_concurrent_requests: usize,
    pub max_batch_posts: usize,
    /// Posts per key unless the key's entry sets its own; burst must cover a full batch.
    pub default_rate: Rate,
    pub complaints: ComplaintLimits,
    /// Behind an ingress, take the client address from the last `X-Forwarded-For` entry (the
    /// one the ingress appended) instead of the TCP peer. Off when clients connect directly,
    /// or anyone could pick their own address and dodge the per-IP limit.
    pub trust_forwarded_for: bool,
    /// A request waits at most this long for the broker's acknowledgement, then gets 503.
    pub produce_timeout_ms: u64,
    /// How long an acknowledged id is remembered, so a retried request is not written again.
    pub dedup_window_secs: u64,
    pub dedup_capacity: usize,
    /// Secret mixed into reporter pseudonyms so they cannot be reversed by hashing phone
    /// numbers; empty = a random one per process (pseudonyms then differ across pods).
    pub reporter_salt: String,
    /// After SIGTERM, how long the gateway may take to stop (requests answered, records
    /// flushed) before it exits non-zero naming what still ran; below the pod's grace period.
    pub drain_timeout_secs: u64,
    pub log_json: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            kafka: KafkaConfig::default(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9465)),
            keys_file: None,
            keys_reload_ms: 5_000,
            posts_topic: topics::POSTS_RAW.into(),
            complaints_topic: topics::COMPLAINTS.into(),
            contacts_topic: topics::COMPLAINT_CONTACTS.into(),
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            max_body_bytes: 1024 * 1024,
            // librdkafka's own default for `message.max.bytes`.
            max_message_bytes: 1_000_000,
            max_concurrent_requests: 64,
            max_batch_posts: 500,
            default_rate: Rate {
                per_second: 1_000,
                burst: 2_000,
            },
            complaints: ComplaintLimits::default(),
            trust_forwarded_for: false,
            produce_timeout_ms: 10_000,
            dedup_window_secs: 600,
            dedup_capacity: 1_000_000,
            reporter_salt: String::new(),
            drain_timeout_secs: DEFAULT_DRAIN_TIMEOUT_SECS,
            log_json: false,
        }
    }
}

impl GatewayConfig {
    /// Settings that would make the service misbehave rather than fail: caught at start-up.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch_posts == 0 {
            return Err("max_batch_posts must be at least 1".into());
        }
        if self.default_rate.per_second == 0 || self.default_rate.burst == 0 {
            return Err("default_rate.per_second and default_rate.burst must be at least 1".into());
        }
        if (self.default_rate.burst as usize) < self.max_batch_posts {
            return Err(format!(
                "default_rate.burst ({}) is below max_batch_posts ({}): a full batch could never pass",
                self.default_rate.burst, self.max_batch_posts
            ));
        }
        if !(1_000..=1_000_000_000).contains(&self.max_message_bytes) {
            return Err(format!(
                "max_message_bytes must be between 1000 and 1000000000 (librdkafka's range), not {}",
                self.max_message_bytes
            ));
        }
        if self.kafka.extra.contains_key("message.max.bytes") {
            return Err(
                "set max_message_bytes, not kafka.extra.\"message.max.bytes\": the gateway checks records against it"
                    .into(),
            );
        }
        if self.max_concurrent_requests == 0 || self.drain_timeout_secs == 0 {
            return Err("max_concurrent_requests and drain_timeout_secs must be at least 1".into());
        }
        if self.complaints.per_ip_per_minute == 0 || self.complaints.per_ip_burst == 0 {
            return Err("complaints.per_ip_per_minute and per_ip_burst must be at least 1".into());
        }
        Ok(())
    }
}
