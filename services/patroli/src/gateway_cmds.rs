//! `patroli load-gateway` and `patroli gateway-key`.

use patroli_gateway::load::{self, LoadOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Base URL of the gateway API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Partner key (sent as a bearer token).
    #[arg(long, env = "PATROLI_GATEWAY_KEY")]
    key: String,
    /// The platform the key is bound to.
    #[arg(long)]
    platform: String,
    /// Most requests to send.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Send no request after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Posts per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Every n-th request carries an invalid post (0: never).
    #[arg(long, default_value_t = 0)]
    invalid_every: usize,
    /// Prefix of the generated post ids (unique per run).
    #[arg(long, default_value = "load")]
    id_prefix: String,
    /// Write each request's status and post ids here (JSON lines).
    #[arg(long)]
    results: Option<PathBuf>,
}

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let report = load::run(LoadOptions {
        url: args.url,
        key: args.key,
        platform: args.platform,
        requests: args.requests,
        duration: Duration::from_secs_f64(args.seconds),
        concurrency: args.concurrency,
        batch: args.batch,
        invalid_every: args.invalid_every,
        id_prefix: args.id_prefix,
        results: args.results,
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct KeyArgs {
    /// Names the key in logs and metrics.
    #[arg(long)]
    id: String,
    /// The only platform the key may post as.
    #[arg(long)]
    platform: String,
}

pub fn key(args: KeyArgs) -> anyhow::Result<()> {
    let key = patroli_gateway::generate_key();
    eprintln!("give this key to the partner (it is shown only once): {key}");
    println!(
        "[[keys]]\nid = {:?}\nplatform = {:?}\nsha256 = \"{}\"",
        args.id,
        args.platform,
        patroli_gateway::key_digest(&key)
    );
    Ok(())
}
