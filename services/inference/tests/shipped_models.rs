//! The shipped models as they are loaded and scored, without the pipeline
//! (tests/real_model.rs runs them through the broker). Needs the installed
//! base encoder.

mod common;

use patroli_inference::{Classifier, InferenceOptions};

/// The fast variant the container also ships (`models/patroli-id-v5`, a
/// 4-layer student of the default) loads on its pruned vocabulary and
/// labels the sample stream's posts as its teacher does, nearly always.
#[test]
fn the_fast_student_labels_the_sample_posts_as_its_teacher_does() {
    let root = common::repo_root();
    common::base_dir();
    let sample = std::fs::read_to_string(root.join("deploy/local/sample-posts.jsonl")).unwrap();
    let texts: Vec<String> = sample
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    assert!(texts.len() >= 100, "{} sample posts", texts.len());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let load = |dir: &str| Classifier::load(&root.join(dir), &InferenceOptions::default()).unwrap();
    let teacher = load("models/patroli-id-v4").score(&refs).unwrap();
    let student = load("models/patroli-id-v5").score(&refs).unwrap();
    let agree = teacher
        .iter()
        .zip(&student)
        .filter(|(t, s)| t.label == s.label)
        .count();
    assert!(
        agree * 100 >= texts.len() * 90,
        "labels agree on {agree} of {} posts",
        texts.len()
    );
}
