use std::net::SocketAddr;
use std::path::PathBuf;

use patroli_runtime::KafkaConfig;

use crate::bounds::Bounds;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TakedownConfig {
    pub kafka: KafkaConfig,
    pub group_id: String,
    /// The policy TOML; unset = the bundled `policy.default.toml`.
    pub policy_file: Option<PathBuf>,
    /// The dashboard's public keys reviewer decisions are verified with (`[keys]`, key id =
    /// base64 public key; `patroli keys generate` writes it). Required: without it no decision
    /// could be believed.
    pub decision_keys_file: Option<PathBuf>,
    /// Bytes of raw post texts remembered for joining with their scored events (oldest out).
    pub text_cache_bytes: usize,
    /// At start-up, the texts of this many of the latest messages per raw-topic partition are
    /// read back, so a restart does not forget texts whose scored events are still to come.
    pub text_rebuild_per_partition: i64,
    pub http_addr: SocketAddr,
    pub log_json: bool,
    pub session_timeout_ms: u64,
    /// The producer's transactional id: each input's outputs, state records and offset commit
    /// form one Kafka transaction. One replica holds it; a new one fences the old.
    pub transactional_id: String,
    /// Largest record the service produces (key and value), as the output topics'
    /// `max.message.bytes`: a larger output is replaced by an audit entry saying so.
    pub max_message_bytes: usize,
    /// Most posts one takedown request lists; larger sets go out as several pages.
    pub max_posts_per_request: usize,
}

impl TakedownConfig {
    pub fn bounds(&self) -> Bounds {
        Bounds {
            text_cache_bytes: self.text_cache_bytes,
            max_posts_per_request: self.max_posts_per_request,
        }
    }
}

impl Default for TakedownConfig {
    fn default() -> Self {
        let bounds = Bounds::default();
        TakedownConfig {
            kafka: KafkaConfig::default(),
            group_id: "patroli-takedown".into(),
            policy_file: None,
            decision_keys_file: None,
            text_cache_bytes: bounds.text_cache_bytes,
            text_rebuild_per_partition: 20_000,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9467)),
            log_json: false,
            session_timeout_ms: 10_000,
            transactional_id: "patroli-takedown".into(),
            max_message_bytes: 1_000_000,
            max_posts_per_request: bounds.max_posts_per_request,
        }
    }
}
