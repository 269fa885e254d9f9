//! Dashboard harness: the `patroli serve dashboard` child process on a test's own topics, an
//! HTTP client that keeps no cookies (tests pass them explicitly), and builders for the events
//! the dashboard reads.
#![allow(dead_code)] // each dashboard test binary uses a different part

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use patroli_contracts::{topics, DecisionAction, DecisionSigner, DecisionVerifier, ReviewDecision};
use patroli_runtime::ensure_topics;
use serde_json::{json, Value};

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

/// A scored event as the classifier writes it.
pub fn scored(
    i: usize,
    platform: &str,
    category: &str,
    region: Option<&str>,
    score: f32,
) -> (String, Vec<u8>) {
    let flagged = score >= 0.5;
    let label = if flagged {
        "disinformation"
    } else {
        "not_disinformation"
    };
    let categories: BTreeMap<&str, f32> = [(category, score), ("lainnya", 1.0 - score)].into();
    let value = json!({
        "schema_version": 1, "event_id": format!("ev{i}"), "source_kind": "post",
        "post": {"platform": platform, "post_id": format!("p{i}")}, "complaint_id": null,
        "author": format!("anon-{i}"), "created_at": "2024-02-10T08:00:00Z", "url": null,
        "region": region, "lang": "id", "score": score, "label": label, "category": category,
        "categories": categories, "model": {"name": "patroli-e5s1", "version": "2.0.0"},
        "scored_at": "2024-02-10T08:00:01Z",
        "latency": {"processing_ms": 3.0, "end_to_end_ms": null},
        "fingerprint": "0123456789abcdef", "reasons": {"top_tokens": ["dicoblos"]},
        "source": {"topic": "posts.raw.v1", "partition": 0, "offset": i},
    });
    (format!("{platform}:p{i}"), value.to_string().into_bytes())
}

pub fn dlq(i: usize, reason: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "event_id": format!("dlq{i}"),
        "source": {"topic": "posts.raw.v1", "partition": 0, "offset": i},
        "key": null, "original_base64": "bm90IGpzb24=", "reason": reason,
        "detail": "test", "failed_at": "2024-02-10T08:00:00Z",
    });
    (
        format!("posts.raw.v1:0:{i}"),
        value.to_string().into_bytes(),
    )
}

/// Revision `revision` of a narrative's review item.
pub fn review_item(
    narrative: &str,
    revision: u64,
    post_count: u64,
    high: bool,
    text: &str,
) -> (String, Vec<u8>) {
    let coordinated = high.then(|| {
        json!({"distinct_authors": 12, "window_minutes": 60, "window_start": "2024-02-10T07:30:00Z"})
    });
    let value = json!({
        "schema_version": 1, "event_id": format!("{narrative}-{revision}"),
        "narrative_id": narrative, "revision": revision, "status": "pending_review",
        "priority": if high { "high" } else { "normal" }, "coordinated": coordinated,
        "category": "kecurangan", "score": 0.93, "categories": {"kecurangan": 0.93, "lainnya": 0.07},
        "reason_words": ["dicoblos", "sebarkan"], "post_count": post_count,
        "platforms": ["facebook", "x"], "first_seen": "2024-02-10T07:31:00Z",
        "last_seen": format!("2024-02-10T08:{revision:02}:00Z"),
        "sample_posts": [{
            "post": {"platform": "x", "post_id": format!("{narrative}-p1")}, "url": null,
            "author": "anon-1", "created_at": "2024-02-10T07:31:00Z", "score": 0.93,
            "text": text, "protected": false,
        }],
        "policy_version": "test", "updated_at": "2024-02-10T08:00:00Z",
    });
    (narrative.to_owned(), value.to_string().into_bytes())
}

pub fn request(id: &str, platform: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "request_id": id, "platform": platform, "narrative_id": "n1",
        "posts": [{"post_id": "p1", "url": null}], "category": "kecurangan", "score": 0.93,
        "evidence_excerpt": null, "basis": "confirmed", "decision_id": "d1", "coordinated": null,
        "policy_version": "test", "created_at": "2024-02-10T09:00:00Z",
    });
    (platform.to_owned(), value.to_string().into_bytes())
}

pub fn status(request: &str, status: &str) -> (String, Vec<u8>) {
    let value = json!({
        "schema_version": 1, "request_id": request, "platform": "x", "status": status,
        "reason": null, "reported_by": "x-trust-safety", "reported_at": "2024-02-10T10:00:00Z",
    });
    (request.to_owned(), value.to_string().into_bytes())
}

/// `(key, value)` pairs as `produce` takes them.
pub fn keyed(messages: Vec<(String, Vec<u8>)>) -> Vec<(Option<String>, Option<Vec<u8>>)> {
    messages
        .into_iter()
        .map(|(k, v)| (Some(k), Some(v)))
        .collect()
}

/// Reads `topic` and asserts that it holds exactly one decision: reviewer rina confirmed
/// narrative n1 with `reason`. Both the desk test and the browser test end on it.
pub fn assert_one_confirmation_of_n1(brokers: &str, topic: &str, reason: &str) -> ReviewDecision {
    let records = super::gateway::read_topic(brokers, topic, 1, Duration::from_secs(2));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, "n1");
    let decision: ReviewDecision = serde_json::from_slice(&records[0].payload).unwrap();
    assert_eq!(decision.narrative_id, "n1");
    assert_eq!(decision.action, DecisionAction::Confirm);
    assert_eq!(decision.reviewer, "rina");
    assert_eq!(decision.reason.as_deref(), Some(reason));
    // Signed with the dashboard's key, over what the desk showed.
    assert!(signed_by_the_dashboard(&decision));
    decision
}

/// Whether `decision` carries a valid signature of the test dashboards' key.
pub fn signed_by_the_dashboard(decision: &ReviewDecision) -> bool {
    let keys = DecisionVerifier::add_to("", signer(), "test").unwrap();
    let verifier = DecisionVerifier::parse(&keys, "test").unwrap();
    verifier.verify(decision).is_ok()
}
