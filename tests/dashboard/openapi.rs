//! The committed OpenAPI document against the running dashboard, with schemathesis (PyPI,
//! installed by tests/schemathesis.sh), as tests/gateway_openapi.rs does for the gateway: only
//! documented statuses, content types and bodies, and invalid queries refused.

use crate::common::{assert_server_obeys, shared_brokers, Stream};
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_obeys_its_openapi_document() {
    let brokers = shared_brokers();
    let topics = DashboardTopics::create(&brokers, "dash-openapi").await;
    crate::feed(&Stream::standard(&brokers).producer(), &topics).await;
    let accounts = accounts_file(&[("rina", "rina-password-1", "reviewer")]);
    let mut dash = DashboardProcess::spawn(&brokers, &topics, Some(accounts.path()), &[]);
    dash.wait_ready();
    // Signed in, so the review items answer 200 with real items, not only 401.
    let cookie = dash.sign_in("rina", "rina-password-1").await;
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
    assert_server_obeys(
        "services/dashboard/openapi.yaml",
        &dash.url(""),
        &[],
        40,
        &[],
        report.path(),
    );
}
