//! The takedown service's Prometheus metrics, served at `/metrics`.

use patroli_contracts::DecisionAction;
use prometheus::{exponential_buckets, Histogram, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use crate::state::RequestState;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub consumed: IntCounterVec,
    pub ignored: IntCounterVec,
    pub requests_created: IntCounterVec,
    pub requests: IntGaugeVec,
    pub review_queue_depth: IntGauge,
    pub review_queue_oldest_seconds: IntGauge,
    pub narratives: IntGaugeVec,
    pub decisions: IntCounterVec,
    pub labels: IntCounterVec,
    pub first_post_to_request_seconds: Histogram,
    pub refused_outputs: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registrar = patroli_runtime::Registrar::new();
        let metrics = Metrics {
            consumed: registrar.counter_vec(
                "patroli_takedown_consumed_total",
                "Messages read, by topic.",
                &["topic"],
            ),
            ignored: registrar.counter_vec(
                "patroli_takedown_ignored_total",
                "Inputs that changed nothing, by reason (duplicate, stale status, unknown narrative ...).",
                &["reason"],
            ),
            requests_created: registrar.counter_vec(
                "patroli_takedown_requests_created_total",
                "Takedown requests sent, by platform, category and basis.",
                &["platform", "category", "basis"],
            ),
            requests: registrar.gauge_vec(
                "patroli_takedown_requests",
                "Takedown requests by platform, category and current state.",
                &["platform", "category", "state"],
            ),
            review_queue_depth: registrar.gauge(
                "patroli_review_queue_depth",
                "Narratives waiting for a reviewer's decision.",
            ),
            review_queue_oldest_seconds: registrar.gauge(
                "patroli_review_queue_oldest_seconds",
                "How long the oldest undecided narrative has waited.",
            ),
            narratives: registrar.gauge_vec(
                "patroli_narratives",
                "Narratives known, by status.",
                &["status"],
            ),
            decisions: registrar.counter_vec(
                "patroli_review_decisions_total",
                "Reviewer decisions applied, by action.",
                &["action"],
            ),
            labels: registrar.counter_vec(
                "patroli_labels_total",
                "labels.v1 records written, by label.",
                &["label"],
            ),
            first_post_to_request_seconds: registrar.histogram(
                "patroli_takedown_first_post_to_request_seconds",
                "From the narrative's first post (created_at) to a request for it.",
                // 1 minute .. ~11 days.
                exponential_buckets(60.0, 2.0, 15).expect("valid buckets"),
            ),
            refused_outputs: registrar.counter_vec(
                "patroli_takedown_refused_outputs_total",
                "Outputs not sent and audited instead, by topic and reason (too_large: over max_message_bytes; rejected: the broker refused it for good).",
                &["topic", "reason"],
            ),
            registry: registrar.registry(),
        };
        for action in ["confirm", "reject"] {
            metrics.decisions.with_label_values(&[action]);
        }
        for label in ["hoax", "not_hoax"] {
            metrics.labels.with_label_values(&[label]);
        }
        metrics
    }

    /// Counts an input the service did not act on, by why.
    pub fn ignore(&self, why: &str) {
        self.ignored.with_label_values(&[why]).inc();
    }

    pub fn decision(&self, action: DecisionAction) {
        let action = match action {
            DecisionAction::Confirm => "confirm",
            DecisionAction::Reject => "reject",
        };
        self.decisions.with_label_values(&[action]).inc();
    }

    pub fn request_moved(
        &self,
        platform: &str,
        category: &str,
        from: Option<RequestState>,
        to: RequestState,
    ) {
        if let Some(from) = from {
            self.requests
                .with_label_values(&[platform, category, from.as_str()])
                .dec();
        }
        self.requests
            .with_label_values(&[platform, category, to.as_str()])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
