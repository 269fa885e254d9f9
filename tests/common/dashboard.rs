//! Dashboard harness: the `patroli serve dashboard` child process on a test's own topics, an
//! HTTP client that keeps no cookies (tests pass them explicitly), the builders of the events
//! the dashboard reads (dashboard_events.rs), and what the tests assert about its decisions.
#![allow(dead_code)] // each dashboard test binary uses a different part

use std::path::Path;
use std::time::{Duration, Instant};

use patroli_contracts::{topics, DecisionAction, DecisionSigner, DecisionVerifier, ReviewDecision};
use patroli_runtime::ensure_topics;
use serde_json::Value;

#[path = "dashboard_events.rs"]
mod events;
pub use events::*;

use super::{free_port, kafka, partitions_of, service_wrapper, ServiceProcess, Stream};

/// The six topics the dashboard reads, named per test.
#[derive(Clone)]
pub struct DashboardTopics {
    pub scored: String,
    pub dlq: String,
    pub review: String,
    pub decisions: String,
    pub requests: String,
    pub status: String,
}

impl DashboardTopics {
    pub async fn create(brokers: &str, test: &str) -> Self {
        let stream = Stream::create(brokers, test).await;
        let named = |contract: &str| format!("{}.{}", contract, stream.unique("dash"));
        let topics = DashboardTopics {
            review: named(topics::REVIEW_QUEUE),
            decisions: named(topics::REVIEW_DECISIONS),
            requests: named(topics::TAKEDOWN_REQUESTS),
            status: named(topics::TAKEDOWN_STATUS),
            scored: stream.scored,
            dlq: stream.dlq,
        };
        let layout = [
            (topics.review.as_str(), partitions_of(topics::REVIEW_QUEUE)),
            (
                topics.decisions.as_str(),
                partitions_of(topics::REVIEW_DECISIONS),
            ),
            (
                topics.requests.as_str(),
                partitions_of(topics::TAKEDOWN_REQUESTS),
            ),
            (
                topics.status.as_str(),
                partitions_of(topics::TAKEDOWN_STATUS),
            ),
        ];
        ensure_topics(&kafka(brokers), &layout)
            .await
            .expect("create the dashboard's topics");
        topics
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("PATROLI_TOPICS__SCORED", &self.scored),
            ("PATROLI_TOPICS__DLQ", &self.dlq),
            ("PATROLI_TOPICS__REVIEW_QUEUE", &self.review),
            ("PATROLI_TOPICS__REVIEW_DECISIONS", &self.decisions),
            ("PATROLI_TOPICS__TAKEDOWN_REQUESTS", &self.requests),
            ("PATROLI_TOPICS__TAKEDOWN_STATUS", &self.status),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// A `patroli serve dashboard` child process; its web UI and API on `web_port`.
pub struct DashboardProcess {
    service: ServiceProcess,
    pub web_port: u16,
    /// The decision signing key the dashboard reads at start-up.
    _signing_key: tempfile::NamedTempFile,
}

/// The decision signing key of every test dashboard.
fn signer() -> &'static DecisionSigner {
    static SIGNER: std::sync::OnceLock<DecisionSigner> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| DecisionSigner::generate("dashboard-test").unwrap())
}
service_wrapper!(DashboardProcess, service);

impl DashboardProcess {
    pub fn spawn(
        brokers: &str,
        topics: &DashboardTopics,
        accounts: Option<&Path>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let web_port = free_port();
        let mut env = topics.env();
        env.push(("PATROLI_KAFKA__BROKERS".into(), brokers.to_owned()));
        env.push((
            "PATROLI_LISTEN_ADDR".into(),
            format!("127.0.0.1:{web_port}"),
        ));
        if let Some(accounts) = accounts {
            env.push((
                "PATROLI_ACCOUNTS_FILE".into(),
                accounts.display().to_string(),
            ));
        }
        let signing_key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(signing_key.path(), signer().to_toml()).unwrap();
        env.push((
            "PATROLI_DECISION_SIGNING_KEY_FILE".into(),
            signing_key.path().display().to_string(),
        ));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        DashboardProcess {
            service: ServiceProcess::spawn("dashboard", env),
            web_port,
            _signing_key: signing_key,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    /// Waits until `/readyz` answers 200 (the view is rebuilt).
    pub fn wait_ready(&mut self) {
        self.wait_readyz(200, Duration::from_secs(60));
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut request = client().get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request).await
    }

    pub async fn get_with(&self, path: &str, header: (&str, &str)) -> Answer {
        answer(client().get(self.url(path)).header(header.0, header.1)).await
    }

    pub async fn json(&self, path: &str) -> Value {
        let answer = self.get(path, None).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        serde_json::from_str(&answer.text).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// POSTs an HTML form with one extra header.
    pub async fn post_form_with(
        &self,
        path: &str,
        header: (&str, &str),
        fields: &[(&str, &str)],
    ) -> Answer {
        let request = client()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header.0, header.1)
            .body(form_body(fields));
        answer(request).await
    }

    /// POSTs an HTML form (`application/x-www-form-urlencoded`).
    pub async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Answer {
        let mut request = client()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(fields));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request).await
    }

    /// POSTs the sign-in form from local address `from` (any of 127.0.0.0/8 reaches the
    /// dashboard), so the dashboard sees another client address.
    pub async fn login_from(
        &self,
        from: std::net::IpAddr,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Answer {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(from)
            .build()
            .expect("http client");
        let mut request = client
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(fields));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request).await
    }

    /// Signs `user` in; returns the `Cookie` header value of the session.
    pub async fn sign_in(&self, user: &str, password: &str) -> String {
        let answer = self
            .post_form("/login", None, &[("user", user), ("password", password)])
            .await;
        assert_eq!(answer.status, 303, "sign-in of {user}: {}", answer.text);
        answer.cookie("patroli_session").expect("a session cookie")
    }

    /// Polls `path` until `done` holds for its JSON; returns it.
    pub async fn wait_json(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let value = self.json(path).await;
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "GET {path} never got there: {value:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    pairs.join("&")
}

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `name=value` part of the `Set-Cookie` header setting cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default())
            .find(|pair| pair.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the dashboard answers");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    }
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(page: &str) -> String {
    let (_, rest) = page
        .split_once(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    rest.split('"').next().unwrap().to_owned()
}

/// An accounts file with a reviewer and a viewer.
pub fn accounts_file(users: &[(&str, &str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let text: String = users
        .iter()
        .map(|(user, password, role)| {
            format!(
                "[[users]]\nuser = \"{user}\"\npassword_hash = \"{}\"\nrole = \"{role}\"\n\n",
                patroli_dashboard::hash_password(password)
            )
        })
        .collect();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Revision 2 of n1 as the takedown service republishes it after rina's confirmation:
/// confirmed, with n1-p2 joined from a protected source and held back until released.
pub fn n1_holding_a_protected_copy() -> (String, Vec<u8>) {
    item_with("n1", 2, "confirmed", &[("n1-p1", false), ("n1-p2", true)])
}

/// Reads `topic` and asserts that it holds rina's confirmation of narrative n1 with `reason`
/// and, when `released`, after it exactly one release of what `n1_holding_a_protected_copy`
/// held back, and nothing else. Both the desk test and the browser test end on it; it returns
/// the confirmation.
pub fn assert_decisions_on_n1(
    brokers: &str,
    topic: &str,
    reason: &str,
    released: bool,
) -> ReviewDecision {
    let expected = 1 + usize::from(released);
    let records = super::gateway::read_topic(brokers, topic, expected, Duration::from_secs(2));
    assert_eq!(records.len(), expected);
    let decisions: Vec<ReviewDecision> = records
        .iter()
        .map(|r| {
            assert_eq!(r.key, "n1");
            serde_json::from_slice(&r.payload).unwrap()
        })
        .collect();
    for (decision, reason) in decisions.iter().zip([reason, "release held copies"]) {
        assert_eq!(decision.narrative_id, "n1");
        assert_eq!(decision.action, DecisionAction::Confirm);
        assert_eq!(decision.reviewer, "rina");
        assert_eq!(decision.reason.as_deref(), Some(reason));
        assert!(decision.confirmed_references.is_empty());
        // Signed with the dashboard's key, over what the desk showed.
        assert!(signed_by_the_dashboard(decision));
    }
    if let [confirmation, release] = &decisions[..] {
        assert_ne!(release.decision_id, confirmation.decision_id);
        assert_eq!(release.revision, 2);
        let shown: Vec<(&str, &str)> = release
            .shown_posts
            .iter()
            .map(|p| (p.platform.as_str(), p.post_id.as_str()))
            .collect();
        assert_eq!(shown, [("x", "n1-p1"), ("x", "n1-p2")]);
    }
    decisions.into_iter().next().unwrap()
}

/// Whether `decision` carries a valid signature of the test dashboards' key.
pub fn signed_by_the_dashboard(decision: &ReviewDecision) -> bool {
    let keys = DecisionVerifier::add_to("", signer(), "test").unwrap();
    let verifier = DecisionVerifier::parse(&keys, "test").unwrap();
    verifier.verify(decision).is_ok()
}
