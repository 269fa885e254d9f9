//! A load client for the gateway (`patroli load-gateway`), run as its own process so the
//! measurement includes real HTTP on loopback. Bounded by a request count and a time limit;
//! writes what happened to every request, so a test can check the topic against it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub key: String,
    pub platform: String,
    /// At most this many requests...
    pub requests: usize,
    /// ...and none started after this long.
    pub duration: Duration,
    pub concurrency: usize,
    /// Posts per request.
    pub batch: usize,
    /// Every n-th request carries one invalid post (so the whole batch must be refused);
    /// 0 = never.
    pub invalid_every: usize,
    /// Makes post ids unique per run.
    pub id_prefix: String,
    /// JSON lines, one per request: `{"request", "status", "ids"}` (status 0: no answer).
    pub results: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub requests: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub accepted_posts_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Serialize)]
struct Outcome {
    request: usize,
    status: u16,
    ids: Vec<String>,
}

pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let endpoint = format!("{}/v1/posts", options.url.trim_end_matches('/'));
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(options.requests)));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency.max(1))
        .map(|_| {
            let (client, endpoint, next, samples, options) = (
                client.clone(),
                endpoint.clone(),
                next.clone(),
                samples.clone(),
                options.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let request = next.fetch_add(1, Ordering::Relaxed);
                    if request >= options.requests || started.elapsed() >= options.duration {
                        return;
                    }
                    let (ids, body) = batch(&options, request);
                    let sent = Instant::now();
                    let status = match client
                        .post(&endpoint)
                        .bearer_auth(&options.key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Drain the body so the connection is reused.
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    let latency = sent.elapsed();
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push((
                        Outcome {
                            request,
                            status,
                            ids,
                        },
                        latency,
                    ));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(path) = &options.results {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (outcome, _) in &samples {
            serde_json::to_writer(&mut out, outcome)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let mut by_status = BTreeMap::new();
    let mut accepted_posts = 0;
    for (outcome, _) in &samples {
        *by_status.entry(outcome.status).or_insert(0) += 1;
        if outcome.status == 202 {
            accepted_posts += outcome.ids.len();
        }
    }
    let mut latencies: Vec<f64> = samples
        .iter()
        .map(|(_, l)| l.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(LoadReport {
        requests: samples.len(),
        by_status,
        seconds,
        requests_per_second: samples.len() as f64 / seconds,
        accepted_posts_per_second: accepted_posts as f64 / seconds,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}

const TEXTS: [&str; 4] = [
    "Surat suara sudah dicoblos di gudang KPU, sebarkan sebelum dihapus!",
    "Jadwal pemungutan suara 14 Februari 2024 pukul 07.00 sampai 13.00 WIB, bawa KTP-el.",
    "antrian di TPS 05 panjang bgt wkwk tp seru ketemu tetangga",
    "Debat capres semalam lebih banyak saling sindir daripada adu program.",
];

/// The post ids and JSON body of request `request`.
fn batch(options: &LoadOptions, request: usize) -> (Vec<String>, String) {
    let invalid = options.invalid_every > 0 && request.is_multiple_of(options.invalid_every);
    let mut ids = Vec::with_capacity(options.batch);
    let posts: Vec<serde_json::Value> = (0..options.batch.max(1))
        .map(|i| {
            let post_id = format!("{}-{request}-{i}", options.id_prefix);
            ids.push(format!("{}:{post_id}", options.platform));
            let text = if invalid && i == 0 {
                String::new()
            } else {
                format!("{} #{request}-{i}", TEXTS[(request + i) % TEXTS.len()])
            };
            serde_json::json!({
                "schema_version": 1,
                "platform": options.platform,
                "post_id": post_id,
                "text": text,
                "created_at": "2024-02-10T08:00:00Z",
                "author": format!("anon-{}", (request + i) % 97),
            })
        })
        .collect();
    (ids, serde_json::Value::Array(posts).to_string())
}
