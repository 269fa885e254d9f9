//! Kafka client settings shared by every service. Security options map
//! one-to-one onto librdkafka properties so the same config runs against a
//! local Apache Kafka broker (plaintext) and a production cluster (SASL/TLS).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: Option<String>,
    /// e.g. `SCRAM-SHA-512`, `PLAIN`.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// PEM file with the CA that signed the brokers' certificates.
    pub ssl_ca_location: Option<String>,
    /// Any other librdkafka property, passed through verbatim.
    pub extra: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            extra: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The base librdkafka config every client of this service starts from.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        self.with_defaults(client_id, &[])
    }

    /// A consumer that reads a topic whole (state rebuilds, the claim
    /// archive, views): committed records only, and it never commits
    /// offsets, so `group_id` only names it.
    pub fn whole_topic_reader(&self, client_id: &str, group_id: &str) -> ClientConfig {
        let mut config = self.client_config(client_id);
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        config
    }

    /// Producer settings for at-least-once delivery: idempotence keeps
    /// librdkafka's own retries from duplicating or reordering messages.
    pub fn idempotent_producer(&self, client_id: &str) -> ClientConfig {
        self.with_defaults(
            client_id,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "60000"),
            ],
        )
    }

    /// Brokers and security first, then the role's defaults, then `extra`
    /// last: an operator's explicit librdkafka property always wins.
    fn with_defaults(&self, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id);
        let optional = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }
}

/// How long a topic just created may take to get leaders for all its partitions.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Creates the topics that do not exist yet and returns once every partition
/// has a leader that answers for it. For local stacks and tests: production
/// topics are declared as Strimzi `KafkaTopic`s instead.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[(&str, i32)]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config("patroli-admin").create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(%topic, "cannot create topic");
                })
            }
        }
    }
    wait_for_leaders(kafka, topics).await
}

/// A topic just created has no leader for a moment, and a service that
/// starts reading it then fails with NotLeaderForPartition (seen on a fresh
/// broker in `patroli up`): asking each partition's offsets succeeds only
/// once its leader serves it.
async fn wait_for_leaders(kafka: &KafkaConfig, topics: &[(&str, i32)]) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = kafka.client_config("patroli-admin").create()?;
    let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + LEADER_WAIT;
        loop {
            let led = topics.iter().try_for_each(|(topic, partitions)| {
                (0..*partitions).try_for_each(|p| {
                    consumer
                        .fetch_watermarks(topic, p, Duration::from_secs(5))
                        .map(|_| ())
                })
            });
            match led {
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "waiting for partition leaders");
                    std::thread::sleep(Duration::from_millis(200));
                }
                done => return done,
            }
        }
    })
    .await
    .expect("the leader wait never panics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_and_extra_options_reach_librdkafka() {
        let mut kafka = KafkaConfig {
            brokers: "k1:9093,k2:9093".into(),
            security_protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("patroli".into()),
            sasl_password: Some("s3cret".into()),
            ssl_ca_location: Some("/etc/ca.pem".into()),
            extra: BTreeMap::new(),
        };
        kafka
            .extra
            .insert("socket.keepalive.enable".into(), "true".into());
        let config = kafka.client_config("svc");
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9093,k2:9093"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("patroli"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(config.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(config.get("client.id"), Some("svc"));
    }

    #[test]
    fn librdkafka_is_built_with_tls_and_scram() {
        // Production clusters need SASL_SSL + SCRAM; a librdkafka built
        // without OpenSSL rejects these settings when the client is created.
        let kafka = KafkaConfig {
            security_protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("patroli".into()),
            sasl_password: Some("s3cret".into()),
            ..KafkaConfig::default()
        };
        let created: Result<rdkafka::producer::BaseProducer, _> =
            kafka.idempotent_producer("tls-check").create();
        if let Err(e) = created {
            panic!("cannot create a SASL_SSL/SCRAM client: {e}");
        }
    }

    #[test]
    fn extra_properties_override_the_producer_defaults() {
        let mut kafka = KafkaConfig::default();
        kafka
            .extra
            .insert("message.timeout.ms".into(), "2000".into());
        let config = kafka.idempotent_producer("svc");
        assert_eq!(config.get("message.timeout.ms"), Some("2000"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn plaintext_default_sets_no_security_keys() {
        let config = KafkaConfig::default().client_config("svc");
        assert_eq!(config.get("security.protocol"), None);
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
    }
}
