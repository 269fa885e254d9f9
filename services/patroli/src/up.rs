//! `patroli up`: the whole pipeline on one machine. Starts a broker unless
//! `KAFKA_BROKERS` points at one, creates the topics, runs the classifier
//! in-process, replays the bundled sample stream and shows live results.

use crate::replay::{jsonl_lines, key_of, produce_lines};
use crate::takedown_view;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use patroli_classifier::ClassifierConfig;
use patroli_contracts::{topics, DlqEvent, ScoredEvent};
use patroli_runtime::{ensure_topics, find_repo_root, LocalBroker};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Posts to replay into posts.raw.v1 (JSONL, one post per line).
    #[arg(long, default_value = "deploy/local/sample-posts.jsonl")]
    pub sample: PathBuf,
    #[arg(
        long,
        env = "PATROLI_MODEL_DIR",
        default_value = patroli_inference::DEFAULT_MODEL_DIR
    )]
    pub model: PathBuf,
    /// Posts per second replayed; 0 = all at once.
    #[arg(long, default_value_t = 25.0)]
    pub rate: f64,
    /// Where the classifier serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub http_addr: SocketAddr,
    /// Stop once every sample post is scored or dead-lettered (else: Ctrl-C).
    #[arg(long)]
    pub exit_when_done: bool,
}

/// The local broker it starts goes into `broker`, for the caller to stop
/// only once the runtime, and with it every client, is gone: librdkafka
/// reports a broker that vanishes under a live client as an error.
pub async fn run(args: UpArgs, broker: &mut Option<LocalBroker>) -> anyhow::Result<()> {
    // Keep the terminal for the live view; warnings still show.
    patroli_runtime::init_tracing_or(false, "warn");
    let shutdown = patroli_runtime::shutdown_on_signals();

    let (local, brokers) = local_or_given_broker("patroli up").await?;
    *broker = local;
    eprintln!("broker:     {brokers}");

    let mut config: ClassifierConfig = patroli_runtime::load_config(None, std::env::vars())?;
    config.kafka.brokers = brokers.clone();
    config.model_dir = args.model.clone();
    config.http_addr = args.http_addr;
    ensure_topics(&config.kafka, &topics::LOCAL_PARTITIONS)
        .await
        .context("creating topics")?;
    let mut takedown_config: patroli_takedown::TakedownConfig =
        patroli_runtime::load_config(None, std::env::vars())?;
    takedown_config.kafka = config.kafka.clone();
    let mut dashboard_config: patroli_dashboard::DashboardConfig =
        patroli_runtime::load_config(None, std::env::vars())?;
    dashboard_config.kafka = config.kafka.clone();
    if takedown_config.decision_keys_file.is_none()
        && dashboard_config.decision_signing_key_file.is_none()
    {
        let (signing, verifying) = dev_decision_keys()?;
        dashboard_config.decision_signing_key_file = Some(signing);
        takedown_config.decision_keys_file = Some(verifying);
    }
    eprintln!(
        "takedown:   http://{}/metrics  (review items on {}, requests on {})",
        takedown_config.http_addr,
        topics::REVIEW_QUEUE,
        topics::TAKEDOWN_REQUESTS
    );
    let takedown = tokio::spawn(patroli_takedown::run(
        takedown_config,
        shutdown.draining().child_token(),
    ));

    let sample = std::fs::read(&args.sample)
        .with_context(|| format!("cannot read the sample stream {}", args.sample.display()))?;
    let lines = jsonl_lines(&sample);
    let texts: HashMap<String, String> = lines
        .iter()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_slice(line).ok()?;
            Some((key_of(line)?, value.get("text")?.as_str()?.to_owned()))
        })
        .collect();

    let classifier = tokio::spawn(patroli_classifier::run(
        config.clone(),
        shutdown.draining().child_token(),
    ));
    eprintln!(
        "metrics:    http://{}/metrics  (readiness: /readyz)",
        args.http_addr
    );
    // The local demo shows its overview without an account unless told otherwise.
    if std::env::var_os("PATROLI_PUBLIC_AGGREGATES").is_none() {
        dashboard_config.public_aggregates = true;
    }
    if dashboard_config.accounts_file.is_none() {
        eprintln!(
            "review desk: set PATROLI_ACCOUNTS_FILE to sign in (entries: `patroli dashboard-user`)"
        );
    }
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let dashboard = tokio::spawn(patroli_dashboard::run(
        dashboard_config,
        shutdown.child(),
        move |bound| {
            let _ = bound_tx.send(bound.web);
        },
    ));
    let Ok(web) = bound_rx.await else {
        // It ended before listening: its own error says why.
        return Err(match dashboard.await {
            Ok(Err(e)) => anyhow::Error::from(e).context("dashboard failed"),
            Ok(Ok(())) => anyhow::anyhow!("the dashboard stopped before it listened"),
            Err(e) => anyhow::anyhow!("dashboard task failed: {e}"),
        });
    };
    eprintln!("dashboard:  http://{web}/  (live overview; review desk at /review)");
    eprintln!(
        "replaying:  {} posts from {} at {}/s\n",
        lines.len(),
        args.sample.display(),
        args.rate
    );

    let producer: FutureProducer = config.kafka.idempotent_producer("patroli-up").create()?;
    let pause = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let owned: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    let replay = tokio::spawn(async move {
        let lines: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        produce_lines(&producer, topics::POSTS_RAW, &lines, pause).await
    });

    let outcome = watch(
        &config,
        lines.len(),
        &texts,
        args.exit_when_done,
        shutdown.draining(),
    )
    .await;
    shutdown.drain();
    replay.abort();
    match classifier.await {
        Ok(result) => result.context("classifier failed")?,
        Err(e) => anyhow::bail!("classifier task failed: {e}"),
    }
    match takedown.await {
        Ok(result) => result.context("takedown failed")?,
        Err(e) => anyhow::bail!("takedown task failed: {e}"),
    }
    match dashboard.await {
        Ok(result) => result.context("dashboard failed")?,
        Err(e) => anyhow::bail!("dashboard task failed: {e}"),
    }
    outcome
}

/// A decision signing key pair for local runs under `.local/decision-keys/` (made once, then
/// reused so decisions already on the local topics still verify): the dashboard signs with one
/// file, the takedown service verifies with the other. Production keys come from Secrets.
fn dev_decision_keys() -> anyhow::Result<(PathBuf, PathBuf)> {
    let cwd = std::env::current_dir()?;
    let dir = find_repo_root(&cwd)
        .unwrap_or(cwd)
        .join(".local")
        .join("decision-keys");
    let signing = dir.join("dev.signing.toml");
    let verifying = dir.join("dev.verifying.toml");
    if !signing.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::trust_cmds::generate("dev", &signing, &verifying)?;
        eprintln!(
            "decisions:  signed with a new local dev key in {}",
            dir.display()
        );
    }
    Ok((signing, verifying))
}

/// `KAFKA_BROKERS` when set; otherwise a local Apache Kafka broker started
/// from the checkout (kept running while the returned handle lives).
pub(crate) async fn local_or_given_broker(
    command: &str,
) -> anyhow::Result<(Option<LocalBroker>, String)> {
    if let Ok(brokers) = std::env::var("KAFKA_BROKERS") {
        if !brokers.is_empty() {
            return Ok((None, brokers));
        }
    }
    let cwd = std::env::current_dir()?;
    let root = find_repo_root(&cwd).with_context(|| {
        format!("run `{command}` inside the patroli checkout (it needs deploy/local/kafka.sh), or set KAFKA_BROKERS")
    })?;
    eprintln!("starting a local Apache Kafka broker ...");
    let broker = tokio::task::spawn_blocking(move || LocalBroker::start(&root)).await??;
    let brokers = broker.bootstrap_servers();
    Ok((Some(broker), brokers))
}

/// Follows the output topics and draws the live view. Counts distinct
/// `event_id`s, so re-delivered duplicates are not counted twice.
async fn watch(
    config: &ClassifierConfig,
    expected: usize,
    texts: &HashMap<String, String>,
    exit_when_done: bool,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = config
        .kafka
        .client_config("patroli-up-watch")
        .set(
            "group.id",
            format!("patroli-up-watch-{}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut subscribed = vec![topics::POSTS_SCORED, topics::POSTS_DLQ];
    subscribed.extend(takedown_view::TOPICS);
    consumer.subscribe(&subscribed)?;
    let bar = ProgressBar::new(expected as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} posts  {msg}",
        )
        .expect("valid template"),
    );
    let mut seen = HashSet::new();
    let (mut flagged, mut clean, mut dead) = (0usize, 0usize, 0usize);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m?,
        };
        let Some(payload) = message.payload() else {
            continue;
        };
        if takedown_view::TOPICS.contains(&message.topic()) {
            if let Some(line) = takedown_view::line(message.topic(), payload)? {
                show(&bar, line);
            }
            continue;
        }
        if message.topic() == topics::POSTS_DLQ {
            let event: DlqEvent = serde_json::from_slice(payload)?;
            if seen.insert(event.event_id.clone()) {
                dead += 1;
                show(
                    &bar,
                    format!("  DLQ    {:<22} {}", event.reason.as_str(), event.detail),
                );
            }
        } else {
            let event: ScoredEvent = serde_json::from_slice(payload)?;
            if !seen.insert(event.event_id.clone()) {
                continue;
            }
            if event.label == patroli_contracts::Label::Disinformation {
                flagged += 1;
                let text = texts
                    .get(&event.post.key())
                    .map(String::as_str)
                    .unwrap_or("");
                show(
                    &bar,
                    format!(
                        "  FLAG   {:.2} {:<18} {}",
                        event.score,
                        event.category,
                        preview(text, 90)
                    ),
                );
            } else {
                clean += 1;
            }
        }
        bar.set_position(seen.len() as u64);
        bar.set_message(format!(
            "flagged {flagged}  not flagged {clean}  dead-lettered {dead}"
        ));
        if exit_when_done && seen.len() >= expected {
            break;
        }
    }
    bar.finish();
    eprintln!(
        "\n{} posts: {flagged} flagged as disinformation, {clean} not, {dead} dead-lettered",
        seen.len()
    );
    Ok(())
}

/// Above the bar on a terminal; plain lines when piped (indicatif hides
/// the bar, and everything printed through it, without a terminal).
fn show(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn preview(text: &str, chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}
