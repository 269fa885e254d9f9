//! The gateway's Prometheus metrics, served on the health port's `/metrics`.

use prometheus::{
    exponential_buckets, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub events: IntCounterVec,
    pub duplicates: IntCounter,
    pub produce_failures: IntCounter,
    pub keys: IntGauge,
    pub key_reload_failures: IntCounter,
    pub keys_file_valid: IntGauge,
    pub in_flight: IntGauge,
}

pub const ENDPOINTS: [&str; 2] = ["posts", "complaints"];

impl Metrics {
    pub fn new() -> Self {
        let registrar = patroli_runtime::Registrar::new();
        let requests = registrar.counter_vec(
            "patroli_gateway_requests_total",
            "API requests answered, by endpoint and HTTP status.",
            &["endpoint", "status"],
        );
        let request_seconds = registrar.histogram_vec(
            "patroli_gateway_request_seconds",
            "Time to answer an API request, broker acknowledgement included.",
            exponential_buckets(0.0005, 2.0, 16).expect("valid buckets"),
            &["endpoint"],
        );
        let events = registrar.counter_vec(
            "patroli_gateway_events_total",
            "Messages the broker acknowledged, by topic.",
            &["topic"],
        );
        let duplicates = registrar.counter(
            "patroli_gateway_duplicates_total",
            "Messages of retried requests answered from the recent-id cache, not written again.",
        );
        let produce_failures = registrar.counter(
            "patroli_gateway_produce_failures_total",
            "Messages the broker did not acknowledge in time (their requests got 503).",
        );
        let key_reload_failures = registrar.counter(
            "patroli_gateway_key_reload_failures_total",
            "Keys file contents that failed to parse, each counted once (the previous keys stay in force).",
        );
        let keys_file_valid = registrar.gauge(
            "patroli_gateway_keys_file_valid",
            "1 while the keys file parses, 0 while it does not (the last valid keys are in force).",
        );
        let in_flight = registrar.gauge(
            "patroli_gateway_requests_in_flight",
            "Requests admitted and not yet answered (at most max_concurrent_requests).",
        );
        let keys = registrar.gauge("patroli_gateway_keys", "Partner keys currently accepted.");
        for endpoint in ENDPOINTS {
            request_seconds.with_label_values(&[endpoint]);
            for status in ["202", "400", "413", "429", "503"] {
                requests.with_label_values(&[endpoint, status]);
            }
        }
        Metrics {
            registry: registrar.registry(),
            requests,
            request_seconds,
            events,
            duplicates,
            produce_failures,
            keys,
            key_reload_failures,
            keys_file_valid,
            in_flight,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
