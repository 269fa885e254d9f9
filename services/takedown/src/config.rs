use std::net::SocketAddr;
use std::path::PathBuf;

use patroli_runtime::KafkaConfig;
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
    /// Raw post texts remembered for joining with their scored events.
    pub text_cache_posts: usize,
    /// At start-up, the texts of this many of the latest messages per raw-topic partition are
    /// read back, so a restart does not forget texts whose scored events are still to come.
    pub text_rebuild_per_partition: i64,
    pub http_addr: SocketAddr,
    pub log_json: bool,
    pub session_timeout_ms: u64,
    /// How often stored offsets are committed.
    pub commit_interval_ms: u64,
}

impl Default for TakedownConfig {
    fn default() -> Self {
        TakedownConfig {
            kafka: KafkaConfig::default(),
            group_id: "patroli-takedown".into(),
            policy_file: None,
            decision_keys_file: None,
            text_cache_posts: 200_000,
            text_rebuild_per_partition: 20_000,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9467)),
            log_json: false,
            session_timeout_ms: 10_000,
            commit_interval_ms: 1_000,
        }
    }
}
