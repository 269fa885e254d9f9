//! `patroli bench`: throughput, per-batch and per-post latency and peak
//! memory on a given mix of texts (docs/performance.md says which), in the
//! JSON shape `benches/reference/` prints for PyTorch.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use patroli_inference::token_budget_batches;
use patroli_inference::{Classifier, InferenceOptions, ModelError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchRow {
    pub threads: usize,
    pub posts: usize,
    /// After truncation, incl. special tokens.
    pub mean_tokens: f64,
    /// Token-budget batches (length-sorted, packed) the posts made.
    pub batches: usize,
    /// All posts through those batches, one forward pass each.
    pub posts_per_sec: f64,
    pub batch_p50_ms: f64,
    pub batch_p99_ms: f64,
    /// One post per call, as a latency-bound caller sees it.
    pub single_posts_per_sec: f64,
    pub single_p50_ms: f64,
    pub single_p99_ms: f64,
    /// The process's peak resident memory so far (VmHWM; Linux), in MB.
    pub peak_rss_mb: Option<u64>,
}

/// Benchmarks `model_dir` on `texts` at each thread count.
pub fn bench(
    model_dir: &Path,
    texts: &[String],
    threads: &[usize],
    max_len: usize,
    int8: bool,
) -> Result<Vec<BenchRow>, ModelError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    threads
        .iter()
        // Each row loads the model anew with exactly `t` compute threads of
        // its own, so one row's threads never serve another.
        .map(|&t| bench_at(model_dir, &refs, t, max_len, int8))
        .collect()
}

fn bench_at(
    model_dir: &Path,
    refs: &[&str],
    t: usize,
    max_len: usize,
    int8: bool,
) -> Result<BenchRow, ModelError> {
    let opts = InferenceOptions {
        max_len,
        threads: Some(t),
        // Without `--int8`, as the model's spec says.
        int8: int8.then_some(true),
    };
    let clf = Classifier::load(model_dir, &opts)?;
    let toks = refs
        .iter()
        .map(|x| clf.tokenize(x))
        .collect::<Result<Vec<_>, _>>()?;
    let lens: Vec<usize> = toks.iter().map(|t| t.len()).collect();
    let plan = token_budget_batches(&lens);
    // Warm-up: first calls pay for allocation and thread start.
    clf.score(&refs[..refs.len().min(8)])?;
    let mut per_batch = Vec::with_capacity(plan.len());
    let start = Instant::now();
    for batch in &plan {
        let items: Vec<_> = batch.iter().map(|&i| &toks[i]).collect();
        let s = Instant::now();
        clf.score_tokenized(&items)?;
        per_batch.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    let batch_secs = start.elapsed().as_secs_f64();
    per_batch.sort_by(f64::total_cmp);
    let mut lat = Vec::with_capacity(refs.len());
    let start = Instant::now();
    for x in refs {
        let s = Instant::now();
        clf.score(&[x])?;
        lat.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    let single_secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(BenchRow {
        threads: t,
        posts: refs.len(),
        mean_tokens: lens.iter().sum::<usize>() as f64 / refs.len().max(1) as f64,
        batches: plan.len(),
        posts_per_sec: refs.len() as f64 / batch_secs,
        batch_p50_ms: percentile(&per_batch, 0.50),
        batch_p99_ms: percentile(&per_batch, 0.99),
        single_posts_per_sec: refs.len() as f64 / single_secs,
        single_p50_ms: percentile(&lat, 0.50),
        single_p99_ms: percentile(&lat, 0.99),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// VmHWM from /proc/self/status: the most resident memory this process has held.
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert!(peak_rss_mb().is_some_and(|mb| mb > 0));
    }
}
