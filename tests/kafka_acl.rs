//! Least privilege on a real broker: Apache Kafka with SASL/SCRAM-SHA-512 and the
//! StandardAuthorizer, its users and ACLs made from `patroli_contracts::access`. Each
//! service's principal may write what its code writes and is refused the rest with the
//! broker's authorization error; the gateway runs end to end under its own principal.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use common::*;
use gateway::*;
use patroli_contracts::access::{self, PRINCIPALS};
use patroli_contracts::topics;
use patroli_runtime::{ensure_topics, KafkaConfig, LocalBroker};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_writes_only_its_own_topics() {
    let broker = LocalBroker::start_secured(&repo_root(), PRINCIPALS)
        .expect("start a secured Apache Kafka (deploy/local/kafka.sh)");
    let admin = broker.kafka_config();
    let all: Vec<(&str, i32)> = topics::ALL
        .iter()
        .chain([&topics::TAKEDOWN_STATE])
        .map(|t| (*t, 1))
        .collect();
    ensure_topics(&admin, &all)
        .await
        .expect("admin creates topics");
    let as_user = |name: &str| broker.kafka_config_as(name).expect("a user per principal");

    let gateway = as_user(access::GATEWAY);
    for topic in [
        topics::REVIEW_DECISIONS,
        topics::TAKEDOWN_STATE,
        topics::TAKEDOWN_AUDIT,
        topics::CLAIMS,
    ] {
        assert_eq!(
            write(&gateway, topic).await,
            Err(RDKafkaErrorCode::TopicAuthorizationFailed),
            "the gateway writing {topic}"
        );
    }
    for topic in [
        topics::POSTS_RAW,
        topics::COMPLAINTS,
        topics::COMPLAINT_CONTACTS,
    ] {
        assert_eq!(
            write(&gateway, topic).await,
            Ok(()),
            "the gateway writing {topic}"
        );
    }

    let dashboard = as_user(access::DASHBOARD);
    assert_eq!(write(&dashboard, topics::REVIEW_DECISIONS).await, Ok(()));
    assert_eq!(
        write(&dashboard, topics::TAKEDOWN_AUDIT).await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let takedown = as_user(access::TAKEDOWN);
    assert_eq!(write(&takedown, topics::TAKEDOWN_AUDIT).await, Ok(()));
    assert_eq!(
        write(&takedown, topics::POSTS_RAW).await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // Only the takedown service may use its transactional id: any other credentials could
    // otherwise fence it, aborting the transaction that holds its requests and their state.
    assert_eq!(
        init_transactions(&as_user(access::CLASSIFIER), "patroli-takedown"),
        Err(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
    );
    assert_eq!(init_transactions(&takedown, "patroli-takedown"), Ok(()));
    // KEDA only reads offsets.
    assert_eq!(
        write(&as_user(access::KEDA), topics::POSTS_RAW).await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // A wrong password is no principal at all: the client never gets past SCRAM, so its
    // record is never sent (librdkafka retries the login until the record times out).
    let mut impostor = as_user(access::DASHBOARD);
    impostor.sasl_password = Some("guessed".into());
    assert_eq!(
        write(&impostor, topics::REVIEW_DECISIONS).await,
        Err(RDKafkaErrorCode::MessageTimedOut)
    );

    the_gateway_publishes_under_its_own_principal(&broker, &gateway).await;
}

/// The real service, configured as its Deployment is: a post reaches `posts.raw.v1`.
async fn the_gateway_publishes_under_its_own_principal(broker: &LocalBroker, kafka: &KafkaConfig) {
    let key = "pk_acl_test_0123456789abcdef0123456789abcdef";
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), key_entry("x-partner", "x", key, None)).unwrap();
    let topics = GatewayTopics {
        posts: topics::POSTS_RAW.into(),
        complaints: topics::COMPLAINTS.into(),
        contacts: topics::COMPLAINT_CONTACTS.into(),
    };
    let (user, password) = (
        kafka.sasl_username.clone().unwrap(),
        kafka.sasl_password.clone().unwrap(),
    );
    let mut gw = GatewayProcess::spawn(
        &broker.bootstrap_servers(),
        &topics,
        keys.path(),
        &[
            ("PATROLI_KAFKA__SECURITY_PROTOCOL", "sasl_plaintext"),
            ("PATROLI_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
            ("PATROLI_KAFKA__SASL_USERNAME", &user),
            ("PATROLI_KAFKA__SASL_PASSWORD", &password),
        ],
    );
    gw.wait_ready();
    let post_body = json!({
        "schema_version": 1,
        "platform": "x",
        "post_id": "acl-1",
        "text": "Surat suara sudah dicoblos duluan!",
        "created_at": "2024-02-13T21:04:05+07:00",
        "author": "anon-1",
    });
    let answer = post(
        &gw.url("/v1/posts"),
        Some(key),
        "application/json",
        post_body.to_string(),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.body["ids"]),
        (202, &json!(["x:acl-1"]))
    );
    // Read back as the admin: the probe writes of the test above are there too.
    let admin = broker.kafka_config();
    let records = read_topic_with(&admin, topics::POSTS_RAW, 2, Duration::from_millis(500));
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["probe", "x:acl-1"]);
}

/// Starts transactions under `id` as the principal `kafka` names: Ok, or the broker's refusal.
fn init_transactions(kafka: &KafkaConfig, id: &str) -> Result<(), RDKafkaErrorCode> {
    let mut config = kafka.idempotent_producer("acl-test");
    config.set("transactional.id", id);
    let producer: BaseProducer = config.create().expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .map_err(|e| e.rdkafka_error_code().expect("the broker's error code"))
}

/// One record on `topic` as the principal `kafka` names: Ok once acknowledged, else the
/// broker's (or client's) error code. Not idempotent, so only the topic's ACL is tested
/// (KEDA's principal may not even start an idempotent producer); the gateway below runs
/// the services' idempotent producer.
async fn write(kafka: &KafkaConfig, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let mut config = kafka.client_config("acl-test");
    config.set("acks", "all").set("message.timeout.ms", "10000");
    let producer: FutureProducer = config.create().expect("producer");
    let record = FutureRecord::to(topic).key("probe").payload("{}");
    match producer.send(record, Duration::from_secs(10)).await {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((e, _)) => panic!("unexpected error writing {topic}: {e}"),
    }
}
