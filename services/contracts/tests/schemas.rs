use std::path::{Path, PathBuf};

use patroli_contracts::schema::topic_schema;
use patroli_contracts::{
    decode_input, topics, AuditEvent, Complaint, DlqEvent, LabelRecord, Limits, RawPost,
    ReviewDecision, ReviewItem, ScoredEvent, SourceKind, TakedownRequest, TakedownStatus,
};
use serde_json::Value;

fn crate_file(dir: &str, topic: &str, suffix: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{topic}{suffix}"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator(topic: &str) -> jsonschema::Validator {
    let schema = read_json(&crate_file("schemas", topic, ".schema.json"));
    jsonschema::validator_for(&schema).expect("committed schema is a valid JSON Schema")
}

fn sample(topic: &str) -> Value {
    read_json(&crate_file("samples", topic, ".json"))
}

#[test]
fn committed_schemas_match_the_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for topic in topics::ALL {
        let schema = topic_schema(topic).expect("every topic has a schema");
        let generated = serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n";
        let path = crate_file("schemas", topic, ".schema.json");
        if update {
            std::fs::write(&path, &generated).expect("schema file is writable");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            drifted.push(path.display().to_string());
        }
    }
    assert!(
        drifted.is_empty(),
        "committed JSON Schemas differ from the types: {drifted:?}\n\
         regenerate with `UPDATE_SCHEMAS=1 cargo test -p patroli-contracts --test schemas` \
         and commit them (a wire-format change also needs a SCHEMA_VERSION bump)"
    );
}

#[test]
fn unknown_topic_has_no_schema() {
    assert!(topic_schema("posts.raw.v2").is_none());
}

#[test]
fn samples_are_valid_against_committed_schemas() {
    for topic in topics::ALL {
        let validator = validator(topic);
        let sample = sample(topic);
        let errors: Vec<String> = validator
            .iter_errors(&sample)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "sample for {topic} is invalid: {errors:?}"
        );
    }
}

#[test]
fn schema_rejects_a_post_without_text() {
    let validator = validator(topics::POSTS_RAW);
    let mut post = sample(topics::POSTS_RAW);
    post.as_object_mut()
        .expect("sample is an object")
        .remove("text");
    assert!(!validator.is_valid(&post));
}

#[test]
fn schema_rejects_a_scored_event_with_unknown_label() {
    let validator = validator(topics::POSTS_SCORED);
    let mut event = sample(topics::POSTS_SCORED);
    event["label"] = "maybe".into();
    assert!(!validator.is_valid(&event));
}

#[test]
fn raw_post_schema_tolerates_unknown_fields() {
    let validator = validator(topics::POSTS_RAW);
    let mut post = sample(topics::POSTS_RAW);
    post["partner_extra"] = serde_json::json!({"anything": [1, 2]});
    assert!(validator.is_valid(&post));
}

#[test]
fn samples_deserialise_into_the_types() {
    serde_json::from_value::<RawPost>(sample(topics::POSTS_RAW)).expect("raw post sample");
    serde_json::from_value::<Complaint>(sample(topics::COMPLAINTS)).expect("complaint sample");
    serde_json::from_value::<ScoredEvent>(sample(topics::POSTS_SCORED)).expect("scored sample");
    serde_json::from_value::<ReviewItem>(sample(topics::REVIEW_QUEUE)).expect("review sample");
    serde_json::from_value::<ReviewDecision>(sample(topics::REVIEW_DECISIONS))
        .expect("decision sample");
    serde_json::from_value::<TakedownRequest>(sample(topics::TAKEDOWN_REQUESTS))
        .expect("request sample");
    serde_json::from_value::<TakedownStatus>(sample(topics::TAKEDOWN_STATUS))
        .expect("status sample");
    serde_json::from_value::<LabelRecord>(sample(topics::LABELS)).expect("label sample");
    serde_json::from_value::<AuditEvent>(sample(topics::TAKEDOWN_AUDIT)).expect("audit sample");
    let dlq: DlqEvent = serde_json::from_value(sample(topics::POSTS_DLQ)).expect("dlq sample");
    let original = dlq.original().expect("sample original is base64");
    let error = decode_input(topics::POSTS_RAW, Some(&original), &Limits::default())
        .expect_err("the DLQ sample holds an invalid post");
    assert_eq!((error.reason, error.detail), (dlq.reason, dlq.detail));
}

#[test]
fn input_samples_decode() {
    for (topic, kind) in [
        (topics::POSTS_RAW, SourceKind::Post),
        (topics::COMPLAINTS, SourceKind::Complaint),
    ] {
        let bytes = serde_json::to_vec(&sample(topic)).expect("sample serialises");
        let input = decode_input(topic, Some(&bytes), &Limits::default())
            .unwrap_or_else(|e| panic!("sample for {topic} does not decode: {e}"));
        assert_eq!(input.source_kind, kind);
    }
}

#[test]
fn schema_rejects_a_decision_with_unknown_action() {
    let validator = validator(topics::REVIEW_DECISIONS);
    let mut decision = sample(topics::REVIEW_DECISIONS);
    decision["action"] = "escalate".into();
    assert!(!validator.is_valid(&decision));
}

#[test]
fn schema_rejects_a_status_without_request_id() {
    let validator = validator(topics::TAKEDOWN_STATUS);
    let mut status = sample(topics::TAKEDOWN_STATUS);
    status
        .as_object_mut()
        .expect("sample is an object")
        .remove("request_id");
    assert!(!validator.is_valid(&status));
}
