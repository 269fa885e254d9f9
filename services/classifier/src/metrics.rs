//! The classifier's Prometheus metrics, on one registry served at `/metrics`.

use patroli_contracts::{DlqReason, Label};
use prometheus::{exponential_buckets, Histogram, IntCounterVec, IntGauge, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub consumed: IntCounterVec,
    pub scored: IntCounterVec,
    pub dlq: IntCounterVec,
    pub produce_retries: IntCounterVec,
    pub batch_posts: Histogram,
    pub batch_tokens: Histogram,
    pub inference_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub in_flight_batches: IntGauge,
    pub assigned_partitions: IntGauge,
    pub paused: IntGauge,
    pub model_info: IntGaugeVec,
    pub claims_applied: IntCounterVec,
    pub claims_archive: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registrar = patroli_runtime::Registrar::new();
        let seconds = exponential_buckets(0.001, 2.0, 16).expect("valid buckets");
        let metrics = Metrics {
            consumed: registrar.counter_vec(
                "patroli_consumed_total",
                "Messages read from the input topics.",
                &["topic"],
            ),
            scored: registrar.counter_vec(
                "patroli_scored_total",
                "Scored events produced, by label.",
                &["label"],
            ),
            dlq: registrar.counter_vec(
                "patroli_dlq_total",
                "Messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            produce_retries: registrar.counter_vec(
                "patroli_produce_retries_total",
                "Batches whose output had to be produced again after a delivery failure.",
                &["mode"],
            ),
            batch_posts: registrar.histogram(
                "patroli_batch_posts",
                "Posts per scored batch.",
                exponential_buckets(1.0, 2.0, 9).expect("valid buckets"),
            ),
            batch_tokens: registrar.histogram(
                "patroli_batch_tokens",
                "Tokens per scored batch (after truncation, before padding).",
                exponential_buckets(16.0, 2.0, 12).expect("valid buckets"),
            ),
            inference_seconds: registrar.histogram(
                "patroli_inference_seconds",
                "Model time per batch.",
                seconds.clone(),
            ),
            end_to_end_seconds: registrar.histogram(
                "patroli_end_to_end_seconds",
                "From the input message's timestamp to its scored event.",
                seconds,
            ),
            consumer_lag: registrar.gauge_vec(
                "patroli_consumer_lag",
                "Messages not yet committed: the partition's high watermark minus the group's committed offset.",
                &["topic", "partition"],
            ),
            claims_applied: registrar.counter_vec(
                "patroli_claims_applied_total",
                "Records of the claims topic applied to the claim archive, by outcome (upserted, removed, rejected).",
                &["outcome"],
            ),
            claims_archive: registrar.gauge(
                "patroli_claims_archive_size",
                "Known claims posts are matched against (shipped with the model plus the claims topic).",
            ),
            in_flight_batches: registrar.gauge(
                "patroli_in_flight_batches",
                "Batches being scored or produced.",
            ),
            assigned_partitions: registrar.gauge(
                "patroli_assigned_partitions",
                "Input partitions assigned to this instance.",
            ),
            paused: registrar.gauge(
                "patroli_consumer_paused",
                "1 while fetching is paused because scoring is behind.",
            ),
            model_info: registrar.gauge_vec(
                "patroli_model_info",
                "The loaded model (value is always 1).",
                &["name", "version"],
            ),
            registry: registrar.registry(),
        };
        // Zero series from the start, so rate() and absent-series alerts work
        // before the first dead letter or the first flagged post.
        for reason in DlqReason::ALL {
            metrics.dlq.with_label_values(&[reason.as_str()]);
        }
        for label in Label::ALL {
            metrics.scored.with_label_values(&[label.as_str()]);
        }
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
