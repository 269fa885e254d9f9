//! `patroli bench`: throughput and per-post latency on a realistic mix.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{Classifier, InferenceOptions, ModelError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchRow {
    pub threads: usize,
    pub posts: usize,
    pub mean_tokens: f64,
    /// One `score` call over all posts (length-bucketed batches).
    pub batch_posts_per_sec: f64,
    /// One post per call, as a latency-bound caller sees it.
    pub single_posts_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Benchmarks `model_dir` on `texts` at each thread count.
pub fn bench(
    model_dir: &Path,
    texts: &[String],
    threads: &[usize],
) -> Result<Vec<BenchRow>, ModelError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    // rayon sizes its global pool once, from the first thread count it sees:
    // run the largest first so smaller counts are a cap on that pool.
    let mut order = threads.to_vec();
    order.sort_unstable_by(|a, b| b.cmp(a));
    for t in order {
        let opts = InferenceOptions {
            max_len: 0,
            threads: Some(t),
        };
        let clf = Classifier::load(model_dir, &opts)?;
        let tokens: usize = refs.iter().map(|x| clf.token_count(x)).sum();
        // Warm-up: first calls pay for allocation and thread start.
        clf.score(&refs[..refs.len().min(8)])?;
        let start = Instant::now();
        clf.score(&refs)?;
        let batch_secs = start.elapsed().as_secs_f64();
        let mut lat = Vec::with_capacity(refs.len());
        let start = Instant::now();
        for x in &refs {
            let s = Instant::now();
            clf.score(&[x])?;
            lat.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        let single_secs = start.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        rows.push(BenchRow {
            threads: t,
            posts: refs.len(),
            mean_tokens: tokens as f64 / refs.len().max(1) as f64,
            batch_posts_per_sec: refs.len() as f64 / batch_secs,
            single_posts_per_sec: refs.len() as f64 / single_secs,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
        });
    }
    rows.sort_by_key(|r| r.threads);
    Ok(rows)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
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
    }
}
