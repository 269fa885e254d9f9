//! Gateway-specific harness: a `patroli serve gateway` child process with its own topics and
//! keys file, an HTTP client, and a reader that returns everything on a topic.
#![allow(dead_code)] // each gateway test binary uses a different part

use patroli_runtime::{ensure_topics, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{free_port, kafka, service_wrapper, ServiceProcess};

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

/// A `patroli serve gateway` child process; its public API on `api_port`.
pub struct GatewayProcess {
    service: ServiceProcess,
    pub api_port: u16,
}
service_wrapper!(GatewayProcess, service);

impl GatewayProcess {
    pub fn spawn(
        brokers: &str,
        topics: &GatewayTopics,
        keys_file: &Path,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let api_port = free_port();
        let mut env: Vec<(String, String)> = [
            ("PATROLI_KAFKA__BROKERS", brokers.to_owned()),
            ("PATROLI_LISTEN_ADDR", format!("127.0.0.1:{api_port}")),
            ("PATROLI_KEYS_FILE", keys_file.display().to_string()),
            ("PATROLI_KEYS_RELOAD_MS", "200".to_owned()),
            ("PATROLI_PRODUCE_TIMEOUT_MS", "3000".to_owned()),
            ("PATROLI_POSTS_TOPIC", topics.posts.clone()),
            ("PATROLI_COMPLAINTS_TOPIC", topics.complaints.clone()),
            ("PATROLI_CONTACTS_TOPIC", topics.contacts.clone()),
            ("PATROLI_REPORTER_SALT", "test-salt".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        GatewayProcess {
            service: ServiceProcess::spawn("gateway", env),
            api_port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// Waits until `/readyz` answers 200 (the broker is reachable).
    pub fn wait_ready(&mut self) {
        self.wait_readyz(200, Duration::from_secs(60));
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
    read_topic_with(&kafka(brokers), topic, expected, quiet)
}

/// `read_topic` as the client `kafka` describes (a secured broker's user).
pub fn read_topic_with(
    kafka: &KafkaConfig,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = kafka
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
