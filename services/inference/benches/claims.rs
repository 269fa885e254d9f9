//! What known-claim matching costs per post at archive sizes around today's (27k) up to a
//! million: one batch of 32 posts (the classifier's usual batch) searched exactly against
//! the archive, the median of several runs. Prints one JSON line per size.
//!
//! cargo bench -p patroli-inference --bench claims   (figures in docs/claims.md)

use std::time::Instant;

use patroli_inference::{Claim, ClaimIndex, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;
const BATCH: usize = 32;

fn vector(rng: &mut StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn archive(size: usize, rng: &mut StdRng) -> ClaimIndex {
    let mut index = ClaimIndex::new(DIM);
    for i in 0..size {
        let claim = Claim {
            id: format!("c{i}"),
            verdict: if i % 3 == 0 {
                Verdict::Genuine
            } else {
                Verdict::Hoax
            },
            source: "bench".into(),
            text: None,
            date: None,
            url: None,
        };
        index.upsert(claim, &vector(rng)).expect("right width");
    }
    index.prepare().expect("matrix");
    index
}

fn main() {
    // `cargo bench` passes `--bench`; a size list may follow as plain numbers.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let mut rng = StdRng::seed_from_u64(7);
    let queries: Vec<Vec<f32>> = (0..BATCH).map(|_| vector(&mut rng)).collect();
    for size in sizes {
        let index = archive(size, &mut rng);
        let runs = if size >= 1_000_000 { 5 } else { 20 };
        let mut ms: Vec<f64> = (0..runs + 1)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(index.nearest(&queries, &|_, _| false).expect("search"));
                started.elapsed().as_secs_f64() * 1000.0
            })
            .skip(1) // the first run warms caches and the thread pool
            .collect();
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        println!(
            "{}",
            serde_json::json!({
                "claims": size,
                "batch": BATCH,
                "threads": threads,
                "median_ms_per_batch": (median * 100.0).round() / 100.0,
                "ms_per_post": (median / BATCH as f64 * 1000.0).round() / 1000.0,
                "vectors_mb": size * DIM * 4 / 1_000_000,
            })
        );
    }
}
