//! The committed OpenAPI document against the running gateway, with schemathesis (PyPI,
//! installed by tests/schemathesis.sh into its own venv): generated valid and invalid
//! requests must get only documented statuses, content types, headers and bodies, invalid
//! ones must be refused, and nothing may answer 5xx except the documented 503.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use common::*;
use gateway::*;

const KEY: &str = "pk_schemathesis_0123456789abcdef0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_obeys_its_openapi_document() {
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    let topics = GatewayTopics::create(&brokers, "openapi").await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        key_entry("fuzz", "x", KEY, Some((100_000, 100_000))),
    )
    .unwrap();
    let mut gw = GatewayProcess::spawn(
        &brokers,
        &topics,
        keys.path(),
        // Generous limits so the generated requests reach validation, not the rate limiter.
        &[
            ("PATROLI_COMPLAINTS__PER_IP_PER_MINUTE", "100000"),
            ("PATROLI_COMPLAINTS__PER_IP_BURST", "100000"),
        ],
    );
    gw.wait_ready();
    let report = tempfile::tempdir().unwrap();
    assert_server_obeys(
        "services/gateway/openapi.yaml",
        &gw.url(""),
        &["missing_required_header"],
        60,
        &["--header".into(), format!("Authorization: Bearer {KEY}")],
        report.path(),
    );
}
