//! Fitting the stacked head: logistic regression by per-row Adagrad over
//! the views a fit may use, early-stopped on dev, and Platt scaling.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::metrics::roc_auc;
use crate::stack_rows::Row;
use crate::stack_train::{StackOptions, Views};
use patroli_inference::ngram::BUCKETS;
use patroli_inference::stack::{sigmoid, tfidf, StackedHead};

/// Standardised dense and TF-IDF sparse features of one row.
type Features = (Vec<f32>, Vec<(u32, f32)>);

pub(crate) struct Fit {
    pub(crate) head: StackedHead,
    pub(crate) dev_auc: Option<f64>,
    pub(crate) epochs: usize,
}

/// `head`'s logit for a training row (with the match features when the
/// head reads them).
pub(crate) fn logit_of(head: &StackedHead, r: &Row) -> f32 {
    let with_matches = head.w_dense.len() > r.pooled.len();
    head.logit(&r.dense(with_matches), &tfidf(&head.idf, &r.tf).0)
}

/// Logistic regression by per-row Adagrad over `train`, classes weighted
/// equally, rows by their source's size (`source_weights`, `balance`),
/// early-stopped on dev log-loss. A view left out has zero
/// weights (n-grams: zero IDF; encoder: unit-free zero weights).
pub(crate) fn fit(
    train: &[&Row],
    dev: &[&Row],
    views: Views,
    l2: f32,
    balance: f32,
    opts: &StackOptions,
) -> Fit {
    let dense: Vec<Vec<f32>> = train.iter().map(|r| r.dense(opts.matching)).collect();
    let (d, hidden) = (dense[0].len(), train[0].pooled.len());
    let n = train.len() as f32;
    let mut df = vec![0u32; BUCKETS];
    for r in train {
        for &(b, _) in &r.tf {
            df[b as usize] += 1;
        }
    }
    let idf: Vec<f32> = df
        .iter()
        .map(|&c| {
            if !views.ngrams() || c < opts.min_df {
                0.0
            } else {
                ((1.0 + n) / (1.0 + c as f32)).ln() + 1.0
            }
        })
        .collect();
    let mut mean = vec![0f32; d];
    for x in &dense {
        mean.iter_mut().zip(x).for_each(|(m, x)| *m += x / n);
    }
    let mut std = vec![0f32; d];
    for x in &dense {
        std.iter_mut()
            .zip(x.iter().zip(&mean))
            .for_each(|(s, (x, m))| *s += (x - m).powi(2) / n);
    }
    std.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
    let x_train: Vec<Features> = train
        .iter()
        .zip(&dense)
        .map(|(r, x)| {
            (
                standardise(x, &mean, &std, |i| {
                    if i < hidden {
                        views.encoder()
                    } else {
                        views.matches()
                    }
                }),
                tfidf(&idf, &r.tf).0,
            )
        })
        .collect();
    let pos = train.iter().filter(|r| r.hoax).count().max(1) as f32;
    let class_w = [n / (2.0 * (n - pos).max(1.0)), n / (2.0 * pos)];
    let row_w = source_weights(train, balance);

    let mut head = StackedHead {
        idf,
        w_sparse: vec![0.0; BUCKETS],
        w_dense: vec![0.0; d],
        mean,
        std,
        bias: 0.0,
        platt: (1.0, 0.0),
    };
    let (mut g_sparse, mut g_dense, mut g_bias) = (vec![0f32; BUCKETS], vec![0f32; d], 0f32);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let dev_labels: Vec<bool> = dev.iter().map(|r| r.hoax).collect();
    let mut best: Option<(f64, usize, StackedHead)> = None;
    let mut epochs = 0;
    for epoch in 1..=opts.epochs {
        epochs = epoch;
        order.shuffle(&mut rng);
        for &i in &order {
            let (xd, xs) = &x_train[i];
            let z: f32 = xd
                .iter()
                .zip(&head.w_dense)
                .map(|(x, w)| x * w)
                .sum::<f32>()
                + xs.iter()
                    .map(|&(b, v)| head.w_sparse[b as usize] * v)
                    .sum::<f32>()
                + head.bias;
            let y = train[i].hoax;
            let g = (sigmoid(z) - f32::from(u8::from(y))) * class_w[usize::from(y)] * row_w[i];
            for (j, x) in xd.iter().enumerate() {
                adagrad(&mut head.w_dense[j], &mut g_dense[j], g * x, l2, opts.lr);
            }
            for &(b, v) in xs {
                let b = b as usize;
                adagrad(&mut head.w_sparse[b], &mut g_sparse[b], g * v, l2, opts.lr);
            }
            adagrad(&mut head.bias, &mut g_bias, g, 0.0, opts.lr);
        }
        let logits: Vec<f32> = dev.iter().map(|r| logit_of(&head, r)).collect();
        let loss = log_loss(&logits, &dev_labels);
        if best.as_ref().is_none_or(|b| loss < b.0) {
            best = Some((loss, epoch, head.clone()));
        } else if best.as_ref().is_some_and(|b| epoch - b.1 >= 2) {
            break;
        }
    }
    let (_, _, head) = best.expect("at least one epoch");
    let logits: Vec<f32> = dev.iter().map(|r| logit_of(&head, r)).collect();
    Fit {
        dev_auc: roc_auc(&logits, &dev_labels),
        head,
        epochs,
    }
}

/// Each row's weight for its source's size: (mean rows per source / the
/// source's rows) ^ `balance`, so 0 weighs every row alike and 1 every
/// source alike; scaled to a mean of 1.
fn source_weights(rows: &[&Row], balance: f32) -> Vec<f32> {
    let mut per_source: HashMap<&str, f32> = HashMap::new();
    for r in rows {
        *per_source.entry(r.source.as_str()).or_default() += 1.0;
    }
    let mean = rows.len() as f32 / per_source.len() as f32;
    let w: Vec<f32> = rows
        .iter()
        .map(|r| (mean / per_source[r.source.as_str()]).powf(balance))
        .collect();
    let scale = rows.len() as f32 / w.iter().sum::<f32>();
    w.into_iter().map(|x| x * scale).collect()
}

/// Standardised dense features; those `used` rejects are zero, so their
/// weights stay zero.
fn standardise(x: &[f32], mean: &[f32], std: &[f32], used: impl Fn(usize) -> bool) -> Vec<f32> {
    x.iter()
        .zip(mean.iter().zip(std))
        .enumerate()
        .map(|(i, (x, (m, s)))| if used(i) { (x - m) / s } else { 0.0 })
        .collect()
}

fn adagrad(w: &mut f32, g2: &mut f32, grad: f32, l2: f32, lr: f32) {
    let g = grad + l2 * *w;
    *g2 += g * g;
    *w -= lr * g / (g2.sqrt() + 1e-8);
}

fn log_loss(logits: &[f32], labels: &[bool]) -> f64 {
    logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| {
            let p = f64::from(sigmoid(z)).clamp(1e-7, 1.0 - 1e-7);
            -(if y { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / logits.len().max(1) as f64
}

/// Platt scaling (a, b) minimising dev log-loss, by Newton's method with
/// step halving, on Platt's smoothed targets ((n+ + 1)/(n+ + 2) and
/// 1/(n- + 2)): without them a dev split the head separates perfectly
/// drives `a` to infinity.
pub(crate) fn platt(logits: &[f32], labels: &[bool]) -> (f32, f32) {
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let neg = labels.len() as f64 - pos;
    let targets: Vec<f64> = labels
        .iter()
        .map(|&y| {
            if y {
                (pos + 1.0) / (pos + 2.0)
            } else {
                1.0 / (neg + 2.0)
            }
        })
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        logits
            .iter()
            .zip(&targets)
            .map(|(&z, &t)| {
                let u = a * f64::from(z) + b;
                // log(1 + e^u) - t u, stable for large |u|.
                u.max(0.0) + (-u.abs()).exp().ln_1p() - t * u
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&z, &t) in logits.iter().zip(&targets) {
            let z = f64::from(z);
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let w = p * (1.0 - p);
            ga += (p - t) * z;
            gb += p - t;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut step = 1.0;
        while step > 1e-6 && loss(a - step * da, b - step * db) > current {
            step /= 2.0;
        }
        if step <= 1e-6 {
            break;
        }
        a -= step * da;
        b -= step * db;
        let next = loss(a, b);
        let converged = current - next < 1e-10 * current.abs().max(1.0);
        current = next;
        if converged {
            break;
        }
    }
    (a as f32, b as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_recovers_a_known_scale() {
        // Labels drawn deterministically with P(hoax) = sigmoid(2z - 1).
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..400 {
            let z = (i as f32 / 400.0) * 6.0 - 3.0;
            let p = sigmoid(2.0 * z - 1.0);
            for k in 0..200 {
                logits.push(z);
                labels.push((k as f32 + 0.5) / 200.0 < p);
            }
        }
        let (a, b) = platt(&logits, &labels);
        assert!((a - 2.0).abs() < 0.05 && (b + 1.0).abs() < 0.05, "{a} {b}");
    }
}
