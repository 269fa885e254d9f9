//! `patroli`: one binary for every service and tool. Kubernetes runs
//! `patroli serve <service>`; people run `patroli up`, `score`, `train` ...

mod dashboard_cmds;
mod gateway_cmds;
mod model_cmds;
mod pipeline_bench;
mod replay;
mod takedown_view;
mod trust_cmds;
mod up;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patroli_classifier::ClassifierConfig;
use patroli_dashboard::DashboardConfig;
use patroli_gateway::GatewayConfig;
use patroli_takedown::TakedownConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "patroli",
    version,
    about = "Election-disinformation patrol engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline locally: broker, topics, classifier, sample stream, live counts.
    Up(up::UpArgs),
    /// Run one service until SIGTERM.
    Serve {
        #[command(subcommand)]
        service: Service,
    },
    /// Produce a JSONL file of posts into a topic, one message per line.
    Replay(replay::ReplayArgs),
    /// Load-test a running gateway from this process; prints a JSON report.
    LoadGateway(gateway_cmds::LoadArgs),
    /// Benchmark the classifier service through Apache Kafka against the model alone:
    /// scored/s and produce-to-scored latency; prints a JSON report.
    BenchPipeline(pipeline_bench::PipelineBenchArgs),
    /// Make a new partner key: the key to hand over, and the keys-file entry to deploy.
    GatewayKey(gateway_cmds::KeyArgs),
    /// Make a dashboard account entry (password read from stdin) for the accounts file.
    DashboardUser(dashboard_cmds::UserArgs),
    /// Decision signing keys: the dashboard signs reviewer decisions, the takedown service
    /// verifies them.
    #[command(subcommand)]
    Keys(trust_cmds::KeysCommand),
    /// The takedown audit trail's hash chains.
    #[command(subcommand)]
    Audit(trust_cmds::AuditCommand),
    #[command(flatten)]
    Model(model_cmds::ModelCommand),
}

#[derive(Subcommand)]
enum Service {
    /// posts.raw.v1 + complaints.v1 → posts.scored.v1 (+ posts.dlq.v1).
    Classifier(ServeArgs),
    /// posts.scored.v1 + review.decisions.v1 + takedown.status.v1 → review.queue.v1,
    /// takedown.requests.v1, labels.v1, takedown.audit.v1.
    Takedown(ServeArgs),
    /// HTTP ingest: partners' posts → posts.raw.v1, public complaints → complaints.v1.
    Gateway(ServeArgs),
    /// Web UI, JSON API and review desk over the scored, DLQ, review and takedown topics;
    /// reviewers' decisions → review.decisions.v1.
    Dashboard(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file layered between the defaults and PATROLI_* env vars.
    #[arg(long, env = "PATROLI_CONFIG")]
    config: Option<PathBuf>,
}

/// Every service starts the same way: layered config, logging, then the
/// service until SIGTERM; any error exits non-zero.
fn serve<C, Run, Fut, E>(
    name: &str,
    args: ServeArgs,
    log_json: impl Fn(&C) -> bool,
    run: Run,
) -> anyhow::Result<()>
where
    C: serde::Serialize + serde::de::DeserializeOwned + Default,
    Run: FnOnce(C, patroli_runtime::Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    anyhow::Error: From<E>,
{
    let config: C = patroli_runtime::load_config(args.config.as_deref(), std::env::vars())
        .with_context(|| format!("loading the {name} configuration"))?;
    patroli_runtime::init_tracing(log_json(&config));
    let runtime = runtime()?;
    let served = runtime.block_on(async {
        let shutdown = patroli_runtime::shutdown_on_signals();
        run(config, shutdown)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{name} failed"))
    });
    // A service that gave up its drain leaves threads blocked in a client: exit without
    // waiting for them (a clean stop has none left).
    runtime.shutdown_background();
    served
}

// Inference allocates and frees activations of a few MB per layer and batch;
// glibc's malloc serves them 5-12% slower than mimalloc, and returns the
// memory int8 loading frees less readily (docs/performance.md, "Memory and the allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => {
            let runtime = runtime()?;
            let mut broker = None;
            let outcome = runtime.block_on(up::run(args, &mut broker));
            // Tasks still holding a client end with the runtime, before the
            // broker stops (see `up::run`).
            runtime.shutdown_timeout(std::time::Duration::from_secs(30));
            drop(broker);
            outcome
        }
        Command::Serve { service } => match service {
            Service::Classifier(args) => serve(
                "classifier",
                args,
                |c: &ClassifierConfig| c.log_json,
                |config, shutdown| patroli_classifier::run(config, shutdown.draining().clone()),
            ),
            Service::Takedown(args) => serve(
                "takedown",
                args,
                |c: &TakedownConfig| c.log_json,
                |config, shutdown| patroli_takedown::run(config, shutdown.draining().clone()),
            ),
            Service::Gateway(args) => serve(
                "gateway",
                args,
                |c: &GatewayConfig| c.log_json,
                |config, shutdown| patroli_gateway::run(config, shutdown, |_| {}),
            ),
            Service::Dashboard(args) => serve(
                "dashboard",
                args,
                |c: &DashboardConfig| c.log_json,
                |config, shutdown| patroli_dashboard::run(config, shutdown, |_| {}),
            ),
        },
        Command::LoadGateway(args) => runtime()?.block_on(gateway_cmds::load(args)),
        Command::BenchPipeline(args) => runtime()?.block_on(pipeline_bench::run(args)),
        Command::GatewayKey(args) => gateway_cmds::key(args),
        Command::DashboardUser(args) => dashboard_cmds::user(args),
        Command::Keys(command) => trust_cmds::keys(command),
        Command::Audit(command) => trust_cmds::audit(command),
        Command::Replay(args) => {
            patroli_runtime::init_tracing(false);
            runtime()?.block_on(async {
                let produced = replay::run(&args).await?;
                eprintln!("produced {produced} messages to {}", args.topic);
                Ok(())
            })
        }
        Command::Model(command) => {
            patroli_runtime::init_tracing(false);
            model_cmds::run(command)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // At least two workers even on one CPU: a rebalance blocks one worker
    // while the write stage finishes in-flight batches on another.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
