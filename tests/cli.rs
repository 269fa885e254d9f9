//! The operator-facing commands, run as a person would: `patroli up` on the
//! bundled sample stream, and `patroli replay` into a real broker.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::path::Path;
use std::process::{Command, Output, Stdio};
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

/// `patroli score` run as a person would, from `cwd`, on one post.
fn score_from(cwd: &Path, model: Option<&str>, home: Option<&Path>) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_patroli"));
    command
        .current_dir(cwd)
        .args(["score", "--input", "-", "--output", "-"])
        .env_remove("PATROLI_HOME")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(model) = model {
        command.args(["--model", model]);
    }
    if let Some(home) = home {
        command.env("PATROLI_HOME", home);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\":\"a\",\"text\":\"KPU menunda pemilu\"}\n")
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One scored line for the post `a`.
fn assert_scored(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["id"], "a", "{stdout}");
    assert!(lines[0]["score"].is_f64(), "{stdout}");
}

/// The default model is found from outside the checkout (the checkout this
/// binary was built from), and a relative `--model` under `PATROLI_HOME`.
#[test]
fn score_finds_its_model_from_any_working_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    assert_scored(&score_from(elsewhere.path(), None, None));

    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("models")).unwrap();
    patroli_training::build_tiny_model(&home.path().join("models/tiny"), 7).unwrap();
    assert_scored(&score_from(
        elsewhere.path(),
        Some("models/tiny"),
        Some(home.path()),
    ));
}

/// A model found nowhere: the error names every path tried, and how to get one.
#[test]
fn a_missing_model_lists_every_path_tried_and_how_to_install() {
    let elsewhere = tempfile::tempdir().unwrap();
    let cwd = elsewhere.path().canonicalize().unwrap();
    let home = Path::new("/nonexistent-patroli-home");
    let output = score_from(&cwd, Some("models/no-such-model"), Some(home));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let checkout = repo_root().canonicalize().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_patroli"));
    let checkout_is = if binary.starts_with(&checkout) {
        "the checkout holding this binary"
    } else {
        "the checkout this binary was built from"
    };
    assert_eq!(
        stderr,
        format!(
            "Error: no model models/no-such-model (patroli.json) in any of:\n  \
             {}/models/no-such-model (the working directory)\n  \
             /nonexistent-patroli-home/models/no-such-model (PATROLI_HOME)\n  \
             {}/models/no-such-model ({checkout_is})\n\
             the trained models ship in the patroli checkout's models/ folder: run from it, \
             set PATROLI_HOME to it, or pass the model directory; the base encoder they need \
             is installed by models/install-base.sh\n",
            cwd.display(),
            checkout.display()
        )
    );
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
        vec!["train", "--out", out, "--name", "x"],
        vec![
            "stack",
            "--encoder",
            out,
            "--out",
            out,
            "--name",
            "x",
            "--version",
            "1",
        ],
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
