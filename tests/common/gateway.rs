//! Gateway-specific harness: a `patroli serve gateway` child process with its own topics and
//! keys file, an HTTP client, and a reader that returns everything on a topic.
#![allow(dead_code)] // each gateway test binary uses a different part

use patroli_runtime::ensure_topics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get, kafka};

/// The gateway's three output topics, named per test so tests sharing a broker never see
/// each other's events.
pub struct GatewayTopics {
    pub posts: String,
    pub complaints: String,
    pub contacts: String,
}

impl GatewayTopics {
    pub async fn create(brokers: &str, test: &str) -> Self {
        let topics = GatewayTopics {
            posts: format!("posts.raw.v1.{test}"),
            complaints: format!("complaints.v1.{test}"),
            contacts: format!("complaints.contacts.v1.{test}"),
        };
        ensure_topics(
            &kafka(brokers),
            &[
                (topics.posts.as_str(), 3),
                (topics.complaints.as_str(), 2),
                (topics.contacts.as_str(), 1),
            ],
        )
        .await
        .expect("create gateway topics");
        topics
    }
}

/// A partner key as the keys file stores it.
pub fn key_entry(id: &str, platform: &str, key: &str, rate: Option<(u32, u32)>) -> String {
    let mut entry = format!(
        "[[keys]]\nid = \"{id}\"\nplatform = \"{platform}\"\nsha256 = \"{}\"\n",
        patroli_gateway::key_digest(key)
    );
    if let Some((per_second, burst)) = rate {
        entry += &format!("per_second = {per_second}\nburst = {burst}\n");
    }
    entry
}

pub struct GatewayProcess {
    pub child: Child,
    pub api_port: u16,
    pub http_port: u16,
}

impl GatewayProcess {
    pub fn spawn(
        brokers: &str,
        topics: &GatewayTopics,
        keys_file: &Path,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let (api_port, http_port) = (free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_patroli"));
        command
            .args(["serve", "gateway"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PATROLI_KAFKA__BROKERS", brokers)
            .env("PATROLI_LISTEN_ADDR", format!("127.0.0.1:{api_port}"))
            .env("PATROLI_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("PATROLI_KEYS_FILE", keys_file)
            .env("PATROLI_KEYS_RELOAD_MS", "200")
            .env("PATROLI_PRODUCE_TIMEOUT_MS", "3000")
            .env("PATROLI_POSTS_TOPIC", &topics.posts)
            .env("PATROLI_COMPLAINTS_TOPIC", &topics.complaints)
            .env("PATROLI_CONTACTS_TOPIC", &topics.contacts)
            .env("PATROLI_REPORTER_SALT", "test-salt")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn patroli serve gateway");
        GatewayProcess {
            child,
            api_port,
            http_port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// Waits until `/readyz` answers 200 (the broker is reachable).
    pub fn wait_ready(&mut self) {
        self.wait_readyz(200, Duration::from_secs(60));
    }

    pub fn wait_readyz(&mut self, status: u16, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait().expect("poll gateway") {
                panic!("gateway exited early with {exit}");
            }
            if http_get(self.http_port, "/readyz").is_some_and(|(s, _)| s == status) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "/readyz did not answer {status} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Value of a metric series line, e.g. `patroli_gateway_keys`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = http_get(self.http_port, "/metrics")?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait for gateway")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

/// POSTs `body` with the given content type and bearer key (if any).
pub async fn post(
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    Answer {
        status,
        headers,
        body,
    }
}

pub struct Record {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("topic holds JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything on `topic`, read from the beginning until `expected` records arrived and then
/// nothing more for `quiet` (so duplicates would be seen too).
pub fn read_topic(brokers: &str, topic: &str, expected: usize, quiet: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = kafka(brokers)
        .client_config("gateway-test-reader")
        .set("group.id", format!("reader-{}", rand::random::<u64>()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while records.len() < expected || last.elapsed() < quiet {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {expected} records on {topic}",
            records.len()
        );
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    records
}
