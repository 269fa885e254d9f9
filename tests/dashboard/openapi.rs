//! The committed OpenAPI document against the running dashboard, with schemathesis (PyPI,
//! installed by tests/schemathesis.sh), as tests/gateway_openapi.rs does for the gateway: only
//! documented statuses, content types and bodies, and invalid queries refused.

use std::process::Command;

use crate::common::{repo_root, schemathesis, shared_brokers, Stream};
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_obeys_its_openapi_document() {
    let schemathesis = schemathesis();
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-openapi").await;
    crate::feed(&Stream::standard(&brokers).producer(), &topics).await;
    let accounts = accounts_file(&[("rina", "rina-password-1", "reviewer")]);
    let mut dash = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &[]);
    dash.wait_ready();
    // Signed in, so the review items answer 200 with real items, not only 401.
    let cookie = dash.sign_in("rina", "rina-password-1").await;
    let spec = repo_root().join("services/dashboard/openapi.yaml");
    let report = tempfile::tempdir().unwrap();
    // Through the document's `session` scheme, not a fixed header, so schemathesis can also
    // leave the cookie out and see the 401.
    let token = cookie
        .strip_prefix("patroli_session=")
        .expect("the session cookie");
    std::fs::write(
        report.path().join("schemathesis.toml"),
        format!("[auth.openapi.session]\napi_key = \"{token}\"\n"),
    )
    .unwrap();
    let out = Command::new(&schemathesis)
        .arg("run")
        .arg(&spec)
        .args(["--url", &dash.url("")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,negative_data_rejection,\
             unsupported_method",
        ])
        .args(["--max-examples", "40", "--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        // schemathesis reads its config from, and keeps a cache folder in, its working directory.
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
