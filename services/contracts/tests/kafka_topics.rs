//! `deploy/k8s/base/kafkatopics.yaml` is rendered from `patroli_contracts::topics::TABLE`, and
//! every topic a manifest names is one of the table's: a change to one side without the other
//! fails here. `UPDATE_KAFKA_TOPICS=1` rewrites the topics file.

use std::path::{Path, PathBuf};

use patroli_contracts::topics;

mod generated;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/k8s")
        .join(file)
}

#[test]
fn the_committed_kafka_topics_are_the_topic_table() {
    generated::assert_committed(
        "k8s/base/kafkatopics.yaml",
        &topics::strimzi_topics(),
        "UPDATE_KAFKA_TOPICS",
        "patroli_contracts::topics::TABLE",
        "kafka_topics",
    );
}

/// Every `*.v1` value in the manifests (ConfigMaps, Deployments' env, overlays' patches) is a
/// topic of the table, so a renamed topic cannot leave a service reading the old name.
#[test]
fn every_topic_the_manifests_name_is_in_the_table() {
    let mut named = Vec::new();
    for dir in ["base", "overlays/production", "overlays/staging"] {
        for entry in std::fs::read_dir(deploy(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") || path.ends_with("kafkatopics.yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let line = line.split(" #").next().unwrap_or_default();
                let Some((_, value)) = line.split_once(": ") else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                if value.ends_with(".v1") && !value.contains(' ') {
                    named.push((format!("{}:{}", path.display(), n + 1), value.to_owned()));
                }
            }
        }
    }
    assert!(
        named.iter().any(|(_, v)| v == topics::POSTS_RAW),
        "the ConfigMap names the raw topic: {named:?}"
    );
    for (at, value) in &named {
        assert!(
            topics::spec(value).is_some(),
            "{at}: {value} is not a topic of patroli_contracts::topics::TABLE"
        );
    }
}

/// The classifier's producer may send dead letters up to the DLQ topic's limit, and no more.
#[test]
fn the_classifier_producer_limit_is_the_dead_letter_topics() {
    let config = std::fs::read_to_string(deploy("base/configmap.yaml")).unwrap();
    let dlq = topics::spec(topics::POSTS_DLQ).unwrap();
    let limit = dlq.max_message_bytes.unwrap();
    assert!(
        config.contains(&format!(r#"{{"message.max.bytes":"{limit}"}}"#)),
        "deploy/k8s/base/configmap.yaml must raise message.max.bytes to {limit}"
    );
}
