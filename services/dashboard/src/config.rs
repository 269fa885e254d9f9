use patroli_contracts::topics;
use patroli_runtime::KafkaConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The topics the dashboard reads (and the one it writes decisions to). Overridable so tests
/// and staging can run on topics of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardTopics {
    pub scored: String,
    pub dlq: String,
    pub review_queue: String,
    pub review_decisions: String,
    pub takedown_requests: String,
    pub takedown_status: String,
}

impl Default for DashboardTopics {
    fn default() -> Self {
        DashboardTopics {
            scored: topics::POSTS_SCORED.into(),
            dlq: topics::POSTS_DLQ.into(),
            review_queue: topics::REVIEW_QUEUE.into(),
            review_decisions: topics::REVIEW_DECISIONS.into(),
            takedown_requests: topics::TAKEDOWN_REQUESTS.into(),
            takedown_status: topics::TAKEDOWN_STATUS.into(),
        }
    }
}

impl DashboardTopics {
    pub fn all(&self) -> [&str; 6] {
        [
            &self.scored,
            &self.dlq,
            &self.review_queue,
            &self.review_decisions,
            &self.takedown_requests,
            &self.takedown_status,
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub kafka: KafkaConfig,
    /// The web UI and the JSON API.
    pub listen_addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics` (kept off the public port).
    pub http_addr: SocketAddr,
    /// Consumer group id for the broker's bookkeeping only: the dashboard assigns every
    /// partition itself and never commits, so each replica rebuilds the whole view.
    pub group_id: String,
    pub topics: DashboardTopics,
    /// How far back the view reaches; older minutes are evicted.
    pub lookback_secs: u64,
    /// Narratives listed on the overview.
    pub top_narratives: usize,
    /// Review items (narratives) kept in memory; the least recently updated settled ones go first.
    pub max_review_items: usize,
    /// Takedown requests whose state is tracked; the oldest go first.
    pub max_requests: usize,
    /// Reviewer and viewer accounts (TOML, see README). Without it nobody can sign in.
    pub accounts_file: Option<PathBuf>,
    /// How often the accounts file is re-read (a changed Secret applies without a restart).
    pub accounts_reload_ms: u64,
    /// Behind a reverse proxy that authenticates people itself, the header it puts the user
    /// name in (e.g. `X-Forwarded-User`). Anyone who can reach the dashboard without passing
    /// the proxy could set it, so it stays off unless the proxy is the only way in.
    pub trusted_user_header: Option<String>,
    /// A session ends this long after sign-in.
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure` (set when TLS terminates in front of the dashboard).
    pub cookie_secure: bool,
    /// How long a decision waits for the broker's acknowledgement before the reviewer sees an error.
    pub produce_timeout_ms: u64,
    /// The Ed25519 key every decision is signed with (`patroli keys generate`; a Secret only
    /// the dashboard reads). Without it the desk refuses decisions: the takedown service would
    /// ignore them unsigned.
    pub decision_signing_key_file: Option<PathBuf>,
    pub log_json: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            kafka: KafkaConfig::default(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8090)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9466)),
            group_id: "patroli-dashboard".into(),
            topics: DashboardTopics::default(),
            lookback_secs: 24 * 3600,
            top_narratives: 20,
            max_review_items: 1_000,
            max_requests: 100_000,
            accounts_file: None,
            accounts_reload_ms: 5_000,
            trusted_user_header: None,
            session_ttl_secs: 8 * 3600,
            cookie_secure: false,
            produce_timeout_ms: 10_000,
            decision_signing_key_file: None,
            log_json: false,
        }
    }
}

impl DashboardConfig {
    /// Settings that would make the service misbehave rather than fail: caught at start-up.
    pub fn validate(&self) -> Result<(), String> {
        if self.lookback_secs < 60 {
            return Err("lookback_secs must be at least 60 (one minute bucket)".into());
        }
        if self.session_ttl_secs == 0 {
            return Err("session_ttl_secs must be at least 1".into());
        }
        if self.max_review_items == 0 || self.max_requests == 0 || self.top_narratives == 0 {
            return Err(
                "top_narratives, max_review_items and max_requests must be at least 1".into(),
            );
        }
        if self
            .trusted_user_header
            .as_deref()
            .is_some_and(|h| axum::http::HeaderName::try_from(h).is_err())
        {
            return Err("trusted_user_header is not a valid header name".into());
        }
        Ok(())
    }
}
