//! `patroli bench-pipeline`: the classifier service through Apache Kafka,
//! against the model alone on the same texts and threads (issue 11's
//! pipeline goals: scored/s at least 0.9x the model's, produce→scored p99
//! under 2 s at 80% of capacity). Prints one JSON report; asserts nothing
//! about speed, only that every post came out scored.
//!
//! 1. The model alone: `patroli bench`'s batched figure on the texts.
//! 2. Capacity: all posts are on the topic before the classifier starts, so
//!    it is never starved; scored/s is counted between the first and the
//!    last scored event a consumer reads.
//! 3. Latency: fresh posts offered at `--load` x capacity for `--seconds`;
//!    each post's time from the producer's send to a consumer reading its
//!    scored event.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use patroli_classifier::ClassifierConfig;
use patroli_contracts::ScoredEvent;
use patroli_runtime::ensure_topics;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::model_cmds::{bench_texts, DEFAULT_DATA, DEFAULT_MODEL};

#[derive(clap::Args)]
pub struct PipelineBenchArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// JSONL with a "text" per line (e.g. the length mix of benches/reference/mix.py).
    #[arg(long, default_value = DEFAULT_DATA, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Posts of the capacity run.
    #[arg(long, default_value_t = 1000)]
    posts: usize,
    /// The classifier's compute threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Offered load of the latency run, as a share of the measured capacity.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Length of the latency run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub threads: usize,
    pub posts: usize,
    pub model_alone_posts_per_sec: f64,
    pub pipeline_posts_per_sec: f64,
    /// pipeline / model alone.
    pub ratio: f64,
    pub offered_posts_per_sec: f64,
    pub latency_posts: usize,
    pub produce_to_scored_p50_ms: f64,
    pub produce_to_scored_p99_ms: f64,
    pub produce_to_scored_max_ms: f64,
}

pub async fn run(args: PipelineBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.load > 0.0 && args.load <= 1.0,
        "--load is a share of capacity in (0, 1], not {}",
        args.load
    );
    anyhow::ensure!(args.posts >= 2, "--posts must be at least 2");
    patroli_runtime::init_tracing_or(false, "warn");
    let texts = bench_texts(&args.data, args.posts)?;
    eprintln!("model alone on {} texts ...", texts.len());
    let model_alone = {
        let (model, texts, threads) = (args.model.clone(), texts.clone(), args.threads);
        tokio::task::spawn_blocking(move || {
            patroli_training::bench(&model, &texts, &[threads], 0, false)
        })
        .await??
        .remove(0)
        .posts_per_sec
    };

    let (_broker, brokers) = crate::up::local_or_given_broker("patroli bench-pipeline").await?;
    let config = bench_config(&args, &brokers)?;
    ensure_topics(
        &config.kafka,
        &[
            (config.posts_topic.as_str(), 1),
            (&config.complaints_topic, 1),
            (&config.output_topic, 1),
            (&config.dlq_topic, 1),
            (&config.claims_topic, 1),
        ],
    )
    .await?;
    let producer: FutureProducer = config.kafka.idempotent_producer("patroli-bench").create()?;
    let scored: StreamConsumer = config
        .kafka
        .whole_topic_reader(
            "patroli-bench-reader",
            &format!("{}-reader", config.group_id),
        )
        .create()?;
    scored.subscribe(&[&config.output_topic])?;

    eprintln!(
        "capacity: {} posts queued before the classifier starts ...",
        texts.len()
    );
    for (i, text) in texts.iter().enumerate() {
        send(&producer, &config.posts_topic, &format!("cap-{i}"), text).await?;
    }
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(patroli_classifier::run(
        config.clone(),
        shutdown.child_token(),
    ));
    let wanted: Vec<String> = (0..texts.len()).map(|i| format!("cap-{i}")).collect();
    let arrived = read_scored(&scored, &wanted, Duration::from_secs(600)).await?;
    let first = arrived.values().min().expect("posts >= 2");
    let last = arrived.values().max().expect("posts >= 2");
    let capacity = (texts.len() - 1) as f64 / (*last - *first).as_secs_f64();

    let offered = capacity * args.load;
    let count = ((offered * args.seconds as f64) as usize).max(1);
    eprintln!("latency: {count} posts at {offered:.1}/s ...");
    let sender = {
        let (producer, topic, texts) =
            (producer.clone(), config.posts_topic.clone(), texts.clone());
        tokio::spawn(async move {
            let mut sent = HashMap::with_capacity(count);
            let start = tokio::time::Instant::now();
            for i in 0..count {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / offered)).await;
                let id = format!("lat-{i}");
                sent.insert(id.clone(), Instant::now());
                send(&producer, &topic, &id, &texts[i % texts.len()]).await?;
            }
            anyhow::Ok(sent)
        })
    };
    let wanted: Vec<String> = (0..count).map(|i| format!("lat-{i}")).collect();
    let limit = Duration::from_secs(args.seconds + 300);
    let arrived = read_scored(&scored, &wanted, limit).await?;
    let sent = sender.await??;
    shutdown.cancel();
    service.await?.context("classifier failed")?;

    let mut latencies: Vec<f64> = wanted
        .iter()
        .map(|id| (arrived[id] - sent[id]).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let report = PipelineReport {
        threads: args.threads,
        posts: texts.len(),
        model_alone_posts_per_sec: model_alone,
        pipeline_posts_per_sec: capacity,
        ratio: capacity / model_alone,
        offered_posts_per_sec: offered,
        latency_posts: count,
        produce_to_scored_p50_ms: patroli_training::percentile(&latencies, 0.50),
        produce_to_scored_p99_ms: patroli_training::percentile(&latencies, 0.99),
        produce_to_scored_max_ms: *latencies.last().expect("count >= 1"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The classifier on topics of its own (a shared broker keeps other runs'
/// posts), its HTTP endpoint on a free port.
fn bench_config(args: &PipelineBenchArgs, brokers: &str) -> anyhow::Result<ClassifierConfig> {
    let mut config: ClassifierConfig = patroli_runtime::load_config(None, std::env::vars())?;
    let run = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    config.kafka.brokers = brokers.to_owned();
    config.model_dir = args.model.clone();
    config.threads = Some(args.threads);
    config.group_id = run.clone();
    config.posts_topic = format!("{run}.posts.raw.v1");
    config.complaints_topic = format!("{run}.complaints.v1");
    config.output_topic = format!("{run}.posts.scored.v1");
    config.dlq_topic = format!("{run}.posts.dlq.v1");
    config.claims_topic = format!("{run}.claims.v1");
    config.http_addr = "127.0.0.1:0".parse().expect("socket address");
    Ok(config)
}

async fn send(producer: &FutureProducer, topic: &str, id: &str, text: &str) -> anyhow::Result<()> {
    let post = serde_json::json!({
        "schema_version": 1,
        "platform": "x",
        "post_id": id,
        "text": text,
        "created_at": "2024-02-13T21:04:05+07:00",
        "author": "bench",
    })
    .to_string();
    let key = format!("x:{id}");
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&post),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("producing post {id}"))?;
    Ok(())
}

/// When each of `wanted`'s scored events was read; fails on a post the
/// classifier sent to the dead-letter topic or on running out of time.
async fn read_scored(
    consumer: &StreamConsumer,
    wanted: &[String],
    limit: Duration,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut left: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut arrived = HashMap::with_capacity(wanted.len());
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = consumer.stream();
    while !left.is_empty() {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} of {} posts not scored within {limit:?}",
                    left.len(),
                    wanted.len()
                )
            })?
            .context("scored topic ended")??;
        let now = Instant::now();
        let event: ScoredEvent = serde_json::from_slice(message.payload().unwrap_or_default())
            .context("a scored event that is not posts.scored.v1")?;
        if left.remove(event.post.post_id.as_str()) {
            arrived.insert(event.post.post_id, now);
        }
    }
    Ok(arrived)
}
