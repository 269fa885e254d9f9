//! The operator-facing commands, run as a person would: `patroli up` on the
//! bundled sample stream, and `patroli replay` into a real broker.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::process::Command;
use std::time::{Duration, Instant};

fn sample_lines() -> usize {
    std::fs::read_to_string(repo_root().join("deploy/local/sample-posts.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn up_runs_the_whole_stack_on_the_sample_stream() {
    let model = tiny_model();
    let output = Command::new(env!("CARGO_BIN_EXE_patroli"))
        .current_dir(repo_root())
        .args(["up", "--rate", "0", "--exit-when-done", "--http-addr"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--model")
        .arg(model.path())
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "patroli up failed:\n{stderr}");
    assert!(
        stderr.contains("starting a local Apache Kafka broker"),
        "{stderr}"
    );
    let total = sample_lines();
    let summary = stderr
        .lines()
        .find(|l| l.starts_with(&format!("{total} posts: ")))
        .unwrap_or_else(|| panic!("no summary for {total} posts in:\n{stderr}"));
    assert!(summary.ends_with(", 3 dead-lettered"), "{summary}");
    assert_eq!(stderr.matches("  DLQ    ").count(), 3, "{stderr}");
    // A clean run logs no error, not even librdkafka's about the broker it
    // stopped itself at the end.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors, Vec::<&str>::new(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_produces_every_line_with_its_partner_key() {
    let stream = Stream::create(&shared_brokers(), "replay").await;
    let brokers = stream.brokers.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("posts.jsonl");
    std::fs::write(
        &file,
        format!("{}\n\nnot json at all\n{}\n", post_json(1), post_json(2)),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_patroli"))
        .args(["replay", "--brokers", &brokers, "--topic", &stream.raw])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("produced 3 messages to {}", stream.raw)),
        "{stderr}"
    );

    let consumer: BaseConsumer = kafka(&brokers)
        .client_config("replay-check")
        .set("group.id", stream.unique("replay-check"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[&stream.raw]).unwrap();
    let mut keys = Vec::new();
    let started = Instant::now();
    while keys.len() < 3 && started.elapsed() < Duration::from_secs(30) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            keys.push(
                message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
            );
        }
    }
    keys.sort();
    assert_eq!(keys, vec![None, Some(post_key(1)), Some(post_key(2))]);
}

/// The commands that write a new model take no default directory, and stop
/// before any work when theirs already holds a model, unless `--overwrite`
/// says so: the shipped models cannot be replaced by accident.
#[test]
fn train_and_stack_refuse_to_write_over_a_model_unless_told() {
    let model = tiny_model();
    let spec = std::fs::read(model.path().join("patroli.json")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_patroli"))
            .current_dir(repo_root())
            .args(args)
            // The error alone, as a person sees it, not a backtrace.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .unwrap()
    };
    let missing = run(&["train"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the following required arguments were not provided:\n  --out <OUT>"),
        "{stderr}"
    );
    let out = model.path().to_str().unwrap();
    for args in [
        vec!["train", "--out", out],
        vec!["stack", "--out", out, "--name", "x", "--version", "1"],
    ] {
        let refused = run(&args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            format!(
                "Error: {out} already holds a model (patroli.json): choose a new --out, \
                 or pass --overwrite to replace it"
            ),
            "{args:?}"
        );
    }
    assert_eq!(
        std::fs::read(model.path().join("patroli.json")).unwrap(),
        spec
    );
}
