//! The dashboard's Prometheus metrics, served on the health port's `/metrics`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub events: IntCounterVec,
    pub invalid: IntCounterVec,
    pub consumer_lag: IntGauge,
    pub minutes: IntGauge,
    pub sign_ins: IntCounterVec,
    pub decisions: IntCounterVec,
    pub refusals: IntCounterVec,
    pub sessions: IntGauge,
    pub stream_clients: IntGauge,
    pub stream_refusals: IntCounter,
    pub accounts: IntGauge,
    pub accounts_reload_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registrar = patroli_runtime::Registrar::new();
        let events = registrar.counter_vec(
            "patroli_dashboard_events_total",
            "Events folded into the view, by topic.",
            &["topic"],
        );
        let invalid = registrar.counter_vec(
            "patroli_dashboard_invalid_events_total",
            "Messages the dashboard could not read (not its topic's contract), by topic.",
            &["topic"],
        );
        let consumer_lag = registrar.gauge(
            "patroli_dashboard_consumer_lag",
            "Messages on the dashboard's topics not yet read into the view.",
        );
        let minutes = registrar.gauge(
            "patroli_dashboard_minutes",
            "Minute buckets held in memory (bounded by the look-back).",
        );
        let sign_ins = registrar.counter_vec(
            "patroli_dashboard_sign_ins_total",
            "Sign-in attempts, by outcome: ok, wrong_password, or refused unchecked: \
             address_limited, user_limited (too many attempts), busy (all password checks running).",
            &["outcome"],
        );
        let decisions = registrar.counter_vec(
            "patroli_dashboard_decisions_total",
            "Review decisions published to review.decisions.v1, by action (confirm, reject, release).",
            &["action"],
        );
        let refusals = registrar.counter_vec(
            "patroli_dashboard_refusals_total",
            "Refused review-desk requests, by reason.",
            &["reason"],
        );
        let sessions = registrar.gauge("patroli_dashboard_sessions", "Sessions not yet expired.");
        let stream_clients = registrar.gauge(
            "patroli_dashboard_stream_clients",
            "Browsers connected to the live stream.",
        );
        let stream_refusals = registrar.counter(
            "patroli_dashboard_stream_refusals_total",
            "Live-stream connections refused because max_stream_clients were connected.",
        );
        let accounts = registrar.gauge(
            "patroli_dashboard_accounts",
            "Accounts that may sign in (from the accounts file).",
        );
        let accounts_reload_failures = registrar.counter(
            "patroli_dashboard_accounts_reload_failures_total",
            "Failed reloads of the accounts file (the previous accounts stay in force).",
        );
        for outcome in [
            "ok",
            "wrong_password",
            "address_limited",
            "user_limited",
            "busy",
        ] {
            sign_ins.with_label_values(&[outcome]);
        }
        for ask in crate::rules::Ask::ALL {
            decisions.with_label_values(&[ask.as_str()]);
        }
        Metrics {
            registry: registrar.registry(),
            events,
            invalid,
            consumer_lag,
            minutes,
            sign_ins,
            decisions,
            refusals,
            sessions,
            stream_clients,
            stream_refusals,
            accounts,
            accounts_reload_failures,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
