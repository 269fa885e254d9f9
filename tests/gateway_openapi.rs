//! The committed OpenAPI document against the running gateway, with schemathesis (PyPI,
//! installed by tests/schemathesis.sh into its own venv): generated valid and invalid
//! requests must get only documented statuses, content types, headers and bodies, invalid
//! ones must be refused, and nothing may answer 5xx except the documented 503.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use common::*;
use gateway::*;
use std::process::Command;

const KEY: &str = "pk_schemathesis_0123456789abcdef0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_obeys_its_openapi_document() {
    let schemathesis = schemathesis();
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
    let spec = repo_root().join("services/gateway/openapi.yaml");
    let report = tempfile::tempdir().unwrap();
    let out = Command::new(&schemathesis)
        .arg("run")
        .arg(&spec)
        .args(["--url", &gw.url("")])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,negative_data_rejection,\
             missing_required_header,unsupported_method",
        ])
        .args(["--max-examples", "60", "--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        // schemathesis keeps a cache folder in its working directory.
        .current_dir(report.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the server and its document disagree:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
}
