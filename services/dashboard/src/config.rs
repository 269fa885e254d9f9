use patroli_contracts::topics;
use patroli_runtime::{KafkaConfig, DEFAULT_DRAIN_TIMEOUT_SECS};
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

/// Where the dashboard starts reading a topic (README "Dashboard", "What it reads").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A stream of events counted per minute: only the look-back matters.
    Lookback,
    /// State the view needs whole, however old: a pending review item last updated days ago
    /// still awaits a person, and a decision or request made then still stands.
    Beginning,
}

impl DashboardTopics {
    /// Every topic read, with where reading starts: the one table of what is a stream and
    /// what is state.
    pub fn reading(&self) -> [(&str, Start); 6] {
        [
            (&self.scored, Start::Lookback),
            (&self.dlq, Start::Lookback),
            (&self.review_queue, Start::Beginning),
            (&self.review_decisions, Start::Beginning),
            (&self.takedown_requests, Start::Beginning),
            (&self.takedown_status, Start::Beginning),
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
    /// Whether the aggregates (overview, series, histogram, narratives without their texts,
    /// requests, DLQ and the live stream) answer readers who have not signed in. Off by
    /// default: what the patrol sees and how much of it is itself sensitive during an election.
    pub public_aggregates: bool,
    /// Behind an ingress, take the client address (for the sign-in limits) from the last
    /// `X-Forwarded-For` entry, the one the ingress itself appended. Off, the socket peer is the
    /// client. Anyone who reaches the dashboard without the ingress could pick their own address.
    pub trust_forwarded_for: bool,
    pub sign_in: SignInLimits,
    /// Live overview pages (`/api/v1/stream`) connected at once; one more is refused with 503.
    pub max_stream_clients: usize,
    /// After SIGTERM, how long the dashboard may take to stop (pages answered, decisions
    /// flushed) before it exits non-zero naming what still ran; below the pod's grace period.
    pub drain_timeout_secs: u64,
    pub log_json: bool,
}

/// Longest refill period: a day (a longer one is a lock-out, not a limit).
const MAX_REFILL_SECS: u64 = 86_400;

/// How fast sign-in attempts are answered (see README "Sign-in limits"). Each limit is a token
/// bucket: `*_burst` attempts at once, then one more every `*_refill_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInLimits {
    /// Per client address (IPv6: per /64, what one subscriber usually holds).
    pub address_burst: u32,
    pub address_refill_secs: u64,
    /// Per typed user name, from all addresses together; a browser that signed in as that user
    /// before (it holds the device cookie) is exempt, so a flood cannot lock a reviewer out.
    pub user_burst: u32,
    pub user_refill_secs: u64,
    /// Argon2 checks at once (~19 MiB each); a sign-in finding them all busy gets 503 at once.
    pub max_password_checks: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            address_burst: 10,
            address_refill_secs: 6,
            user_burst: 10,
            user_refill_secs: 30,
            max_password_checks: 4,
        }
    }
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
            public_aggregates: false,
            trust_forwarded_for: false,
            sign_in: SignInLimits::default(),
            max_stream_clients: 200,
            drain_timeout_secs: DEFAULT_DRAIN_TIMEOUT_SECS,
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
        if self.session_ttl_secs == 0 || self.drain_timeout_secs == 0 {
            return Err("session_ttl_secs and drain_timeout_secs must be at least 1".into());
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
        let limits = &self.sign_in;
        if limits.address_burst == 0 || limits.user_burst == 0 {
            return Err("sign_in.address_burst and sign_in.user_burst must be at least 1".into());
        }
        let refills = [limits.address_refill_secs, limits.user_refill_secs];
        if refills
            .iter()
            .any(|secs| !(1..=MAX_REFILL_SECS).contains(secs))
        {
            return Err(format!(
                "sign_in.address_refill_secs and sign_in.user_refill_secs must be 1 to {MAX_REFILL_SECS}"
            ));
        }
        if limits.max_password_checks == 0 || self.max_stream_clients == 0 {
            return Err(
                "sign_in.max_password_checks and max_stream_clients must be at least 1".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_limits_that_would_lock_everyone_out_or_never_refill_are_refused() {
        assert_eq!(DashboardConfig::default().validate(), Ok(()));
        let mut config = DashboardConfig::default();
        config.sign_in.user_burst = 0;
        assert_eq!(
            config.validate().unwrap_err(),
            "sign_in.address_burst and sign_in.user_burst must be at least 1"
        );
        let mut config = DashboardConfig::default();
        config.sign_in.address_refill_secs = 86_401;
        assert_eq!(
            config.validate().unwrap_err(),
            "sign_in.address_refill_secs and sign_in.user_refill_secs must be 1 to 86400"
        );
        let config = DashboardConfig {
            max_stream_clients: 0,
            ..Default::default()
        };
        assert_eq!(
            config.validate().unwrap_err(),
            "sign_in.max_password_checks and max_stream_clients must be at least 1"
        );
    }
}
