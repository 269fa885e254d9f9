//! `patroli stack`: trains the stacked head (`stack.rs`) on top of a
//! fine-tuned model directory, using every labelled train row (the encoder
//! runs once per row; its outputs are kept in `cache_dir` between runs),
//! calibrates it and sets the threshold on dev, and measures it per held-out
//! source (leave-one-source-out). Never reads the test split for fitting.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::claims::{Claim, ClaimIndex, MATCH_FEATURES};
use crate::classifier::{token_budget_batches, Classifier, InferenceOptions};
use crate::data::{data_fingerprint, load_examples, Example, Split};
use crate::metrics::roc_auc;
use crate::ngram::{term_frequencies, BUCKETS};
use crate::spec::{ClaimsSpec, ModelSpec, WEIGHTS_FILE};
use crate::stack::{sigmoid, tfidf, StackedHead};
use crate::train::{choose_threshold, ThresholdChoice};
use crate::ModelError;
use patroli_contracts::ClaimVerdict;

pub const STACK_FILE: &str = "stack.safetensors";
/// Stem of the claim archive's two files (`.jsonl`, `.safetensors`).
pub const CLAIMS_FILE: &str = "claims";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StackOptions {
    /// JSONL files or directories of them.
    pub data: Vec<PathBuf>,
    /// The fine-tuned model directory whose encoder and category head are kept.
    pub encoder: PathBuf,
    /// Model directory to write.
    pub out: PathBuf,
    pub name: String,
    pub version: String,
    pub seed: u64,
    /// Passes over the train rows at most (early-stopped on dev log-loss).
    pub epochs: usize,
    /// Adagrad step size.
    pub lr: f32,
    /// L2 penalties tried; the one with the best dev ROC-AUC is kept.
    pub l2: Vec<f32>,
    /// N-grams seen in fewer train rows are ignored.
    pub min_df: u32,
    pub threshold: f32,
    pub max_protected_fpr: f64,
    pub exclude_sources: Vec<String>,
    /// Keeps the encoder's outputs between runs.
    pub cache_dir: Option<PathBuf>,
    /// Also measure every source held out (cheap once the encoder has run
    /// on every row, which this requires).
    pub leave_one_source_out: bool,
    /// Known-claim matching: the train rows become the claim archive that
    /// ships with the model, and the head reads each post's nearest claims.
    pub matching: bool,
    /// Sources whose texts may ship in the archive (their licence allows);
    /// the others ship vector and provenance only.
    pub claim_texts_from: Vec<String>,
    /// The similarity at or above which a claim is shown as a match: the
    /// lowest with at most this share of dev genuine items matching a hoax.
    pub max_genuine_match_rate: f64,
    /// How far row weights even out source sizes (`source_weights`).
    pub source_balance: f32,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("models/data/build/all.jsonl")],
            encoder: PathBuf::from("models/patroli-id-v3"),
            out: PathBuf::from("models/patroli-id-v4"),
            name: "patroli-id-v4".into(),
            version: "4.0.0".into(),
            seed: 13,
            epochs: 30,
            lr: 0.1,
            l2: vec![1e-6, 1e-5, 1e-4],
            min_df: 2,
            threshold: 0.5,
            max_protected_fpr: 0.02,
            exclude_sources: Vec::new(),
            cache_dir: None,
            leave_one_source_out: false,
            matching: true,
            claim_texts_from: vec!["patroli_corpus".into()],
            max_genuine_match_rate: 0.005,
            source_balance: 0.0,
        }
    }
}

/// Which views a fit may use: the shipped head uses all it was given
/// (`Combined` with matching on, else `Classifier`); the others are the
/// ablations reported beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Views {
    /// Encoder, n-grams and known-claim matches.
    Combined,
    /// Encoder and n-grams: the text alone.
    Classifier,
    EncoderOnly,
    NgramsOnly,
    /// The match features alone.
    MatchesOnly,
}

impl Views {
    fn encoder(self) -> bool {
        matches!(
            self,
            Views::Combined | Views::Classifier | Views::EncoderOnly
        )
    }
    fn ngrams(self) -> bool {
        matches!(
            self,
            Views::Combined | Views::Classifier | Views::NgramsOnly
        )
    }
    fn matches(self) -> bool {
        matches!(self, Views::Combined | Views::MatchesOnly)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldOut {
    pub rows: usize,
    /// The source has one label: scored against the other label's test rows
    /// of the remaining sources.
    pub one_sided: bool,
    pub roc_auc: BTreeMap<Views, Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StackReport {
    pub data_sha: String,
    pub encoder: String,
    pub train_examples: usize,
    pub dev_examples: usize,
    pub l2: f32,
    pub epochs_run: usize,
    /// Similarity at which a claim is shown as a match (with matching on).
    pub match_threshold: Option<f32>,
    pub dev_roc_auc: BTreeMap<Views, Option<f64>>,
    /// The same fits scored on the test split (loaded only with
    /// leave-one-source-out; empty otherwise). Evaluation only: nothing
    /// about the fit depends on it.
    pub test_roc_auc: BTreeMap<Views, Option<f64>>,
    pub platt: (f32, f32),
    pub threshold: ThresholdChoice,
    pub leave_one_source_out: BTreeMap<String, HeldOut>,
    pub seconds: f64,
    pub options: StackOptions,
}

/// One labelled row as the head sees it.
struct Row {
    id: String,
    narrative: String,
    text: String,
    pooled: Vec<f32>,
    /// Sublinear term frequencies, before IDF.
    tf: Vec<(u32, f32)>,
    /// `Neighbours::features` against the archive of the current fit.
    matches: [f32; MATCH_FEATURES],
    hoax: bool,
    protected: bool,
    source: String,
    split: Split,
}

impl Row {
    /// The head's dense input: the pooled state, then the match features
    /// when the head reads them.
    fn dense(&self, with_matches: bool) -> Vec<f32> {
        let mut d = self.pooled.clone();
        if with_matches {
            d.extend_from_slice(&self.matches);
        }
        d
    }

    fn claim(&self, opts: &StackOptions) -> Claim {
        Claim {
            id: self.id.clone(),
            verdict: if self.hoax {
                ClaimVerdict::Hoax
            } else {
                ClaimVerdict::Genuine
            },
            source: self.source.clone(),
            text: opts
                .claim_texts_from
                .contains(&self.source)
                .then(|| self.text.clone()),
            date: None,
            url: None,
        }
    }
}

/// Builds the claim archive from the rows `in_archive` admits and sets every
/// row's match features against it; a row never matches its own narrative
/// (its variants), as a post never matches itself.
fn match_rows(
    rows: &mut [Row],
    in_archive: impl Fn(&Row) -> bool,
    opts: &StackOptions,
) -> Result<ClaimIndex, ModelError> {
    let dim = rows[0].pooled.len();
    let mut index = ClaimIndex::new(dim);
    // Narratives as numbers: the skip test runs once per (row, claim) pair.
    let mut numbers: HashMap<&str, u32> = HashMap::new();
    let narratives: Vec<u32> = rows
        .iter()
        .map(|r| {
            let next = numbers.len() as u32;
            *numbers.entry(r.narrative.as_str()).or_insert(next)
        })
        .collect();
    let mut narrative_of = Vec::new();
    for (r, &n) in rows.iter().zip(&narratives).filter(|(r, _)| in_archive(r)) {
        index.upsert(r.claim(opts), &r.pooled)?;
        narrative_of.push(n);
    }
    let queries: Vec<Vec<f32>> = rows.iter().map(|r| r.pooled.clone()).collect();
    let near = index.nearest(&queries, &|q, c| narratives[q] == narrative_of[c])?;
    for (r, n) in rows.iter_mut().zip(near) {
        r.matches = n.features();
    }
    Ok(index)
}

pub fn stack(opts: &StackOptions) -> Result<StackReport, ModelError> {
    let start = Instant::now();
    let data_sha = data_fingerprint(&opts.data)?;
    let examples: Vec<Example> = load_examples(&opts.data)?
        .into_iter()
        .filter(|e| !opts.exclude_sources.contains(&e.source))
        .filter(|e| opts.leave_one_source_out || e.split() != Split::Test)
        .collect();
    let clf = Classifier::load(&opts.encoder, &InferenceOptions::default())?;
    let cache = opts
        .cache_dir
        .as_deref()
        .map(|d| views_cache_file(d, &opts.encoder))
        .transpose()?;
    let mut rows = encode_rows(&clf, &examples, cache.as_deref())?;
    let count = |split: Split| rows.iter().filter(|r| r.split == split).count();
    if count(Split::Train) == 0 || count(Split::Dev) == 0 {
        return Err(ModelError::Data(
            "stacking needs train and dev rows (dev sets the threshold)".into(),
        ));
    }
    let archive = if opts.matching {
        Some(match_rows(&mut rows, |r| r.split == Split::Train, opts)?)
    } else {
        None
    };
    let of = |split: Split| -> Vec<&Row> { rows.iter().filter(|r| r.split == split).collect() };
    let (train, dev) = (of(Split::Train), of(Split::Dev));
    let (shipped, ablations) = views_of(opts);

    let mut best: Option<(f64, f32, Fit)> = None;
    for &l2 in &opts.l2 {
        let fit = fit(&train, &dev, shipped, l2, opts);
        let auc = fit.dev_auc.unwrap_or(0.0);
        tracing::info!(
            l2,
            dev_roc_auc = auc,
            epochs = fit.epochs,
            "stacked head fitted"
        );
        if best.as_ref().is_none_or(|b| auc > b.0) {
            best = Some((auc, l2, fit));
        }
    }
    let (_, l2, mut fit) = best.expect("at least one l2");
    let dev_logits: Vec<f32> = dev.iter().map(|r| fit.head.logit_of(r)).collect();
    let labels: Vec<bool> = dev.iter().map(|r| r.hoax).collect();
    fit.head.platt = platt(&dev_logits, &labels);
    let dev_scores: Vec<f32> = dev_logits.iter().map(|&z| fit.head.calibrated(z)).collect();
    let protected: Vec<bool> = dev.iter().map(|r| r.protected).collect();
    let threshold = choose_threshold(
        &dev_scores,
        &labels,
        &protected,
        opts.max_protected_fpr,
        opts.threshold,
    );
    let test = of(Split::Test);
    let test_auc = |head: &StackedHead| -> Option<f64> {
        let scores: Vec<f32> = test.iter().map(|r| head.logit_of(r)).collect();
        let labels: Vec<bool> = test.iter().map(|r| r.hoax).collect();
        roc_auc(&scores, &labels)
    };
    let (mut dev_roc_auc, mut test_roc_auc) = (BTreeMap::new(), BTreeMap::new());
    dev_roc_auc.insert(shipped, fit.dev_auc);
    test_roc_auc.insert(shipped, test_auc(&fit.head));
    for &v in &ablations {
        let f = self::fit(&train, &dev, v, l2, opts);
        dev_roc_auc.insert(v, f.dev_auc);
        test_roc_auc.insert(v, test_auc(&f.head));
    }
    test_roc_auc.retain(|_, auc| auc.is_some());
    let match_threshold = archive.as_ref().map(|_| {
        let genuine_best_hoax: Vec<f32> = dev
            .iter()
            .filter(|r| !r.hoax)
            .map(|r| r.matches[0])
            .collect();
        match_threshold(genuine_best_hoax, opts.max_genuine_match_rate)
    });
    write_model(
        opts,
        &fit.head,
        threshold.threshold,
        &data_sha,
        archive.as_ref().zip(match_threshold),
    )?;
    let (train_examples, dev_examples) = (train.len(), dev.len());

    let mut loso = BTreeMap::new();
    if opts.leave_one_source_out {
        let sources: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r.source.clone()).collect();
        for s in &sources {
            let s = s.as_str();
            if opts.matching {
                match_rows(
                    &mut rows,
                    |r| r.split == Split::Train && r.source != s,
                    opts,
                )?;
            }
            let held = held_out(&rows, s);
            let mut roc = BTreeMap::new();
            for v in std::iter::once(shipped).chain(ablations.iter().copied()) {
                let others = |split| -> Vec<&Row> {
                    rows.iter()
                        .filter(|r| r.split == split && r.source != s)
                        .collect()
                };
                let f = self::fit(&others(Split::Train), &others(Split::Dev), v, l2, opts);
                let scores: Vec<f32> = held.iter().map(|r| f.head.logit_of(r)).collect();
                let labels: Vec<bool> = held.iter().map(|r| r.hoax).collect();
                roc.insert(v, roc_auc(&scores, &labels));
            }
            let one_sided = !rows
                .iter()
                .filter(|r| r.source == s)
                .any(|r| r.hoax != held[0].hoax);
            tracing::info!(source = s, ?roc, "held out");
            loso.insert(
                s.to_string(),
                HeldOut {
                    rows: held.len(),
                    one_sided,
                    roc_auc: roc,
                },
            );
        }
    }

    let report = StackReport {
        data_sha,
        encoder: opts.encoder.display().to_string(),
        train_examples,
        dev_examples,
        match_threshold,
        l2,
        epochs_run: fit.epochs,
        dev_roc_auc,
        test_roc_auc,
        platt: fit.head.platt,
        threshold,
        leave_one_source_out: loso,
        seconds: start.elapsed().as_secs_f64(),
        options: opts.clone(),
    };
    let path = opts.out.join("stack_report.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("report") + "\n",
    )
    .map_err(|e| ModelError::io(&path, e))?;
    Ok(report)
}

/// The view the shipped head uses and the ablations measured beside it.
fn views_of(opts: &StackOptions) -> (Views, Vec<Views>) {
    if opts.matching {
        (
            Views::Combined,
            vec![
                Views::Classifier,
                Views::EncoderOnly,
                Views::NgramsOnly,
                Views::MatchesOnly,
            ],
        )
    } else {
        (
            Views::Classifier,
            vec![Views::EncoderOnly, Views::NgramsOnly],
        )
    }
}

/// The lowest similarity at which at most `rate` of the genuine items' best
/// hoax similarities (`best`) reach it.
fn match_threshold(mut best: Vec<f32>, rate: f64) -> f32 {
    best.sort_by(|a, b| b.total_cmp(a));
    let allowed = (rate * best.len() as f64).floor() as usize;
    best.get(allowed).map_or(0.0, |&s| next_up(s))
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}

/// All rows of `source`; a one-label source gets the other label's test
/// rows of the remaining sources, as `models/data/baseline.py` does.
fn held_out<'a>(rows: &'a [Row], source: &str) -> Vec<&'a Row> {
    let mut held: Vec<&Row> = rows.iter().filter(|r| r.source == source).collect();
    let labels: std::collections::BTreeSet<bool> = held.iter().map(|r| r.hoax).collect();
    if labels.len() == 1 {
        let other = !held[0].hoax;
        held.extend(
            rows.iter()
                .filter(|r| r.source != source && r.split == Split::Test && r.hoax == other),
        );
    }
    held
}

/// Copies the encoder's weights and spec into `opts.out` with the head added.
fn write_model(
    opts: &StackOptions,
    head: &StackedHead,
    threshold: f32,
    data_sha: &str,
    archive: Option<(&ClaimIndex, f32)>,
) -> Result<(), ModelError> {
    let mut spec = ModelSpec::load(&opts.encoder)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    let (from, to) = (opts.encoder.join(WEIGHTS_FILE), opts.out.join(WEIGHTS_FILE));
    if from != to {
        std::fs::copy(&from, &to).map_err(|e| ModelError::io(&to, e))?;
    }
    head.save(&opts.out.join(STACK_FILE))?;
    // The base stays where the encoder's spec points, seen from the new directory.
    let base = opts.encoder.join(&spec.base_dir);
    spec.base_dir = crate::train::relative_path(&opts.out, &base)?;
    spec.name = opts.name.clone();
    spec.version = opts.version.clone();
    spec.threshold = threshold;
    spec.data_sha = Some(data_sha.to_string());
    spec.stack = Some(STACK_FILE.to_string());
    spec.claims = match archive {
        Some((index, match_threshold)) => {
            index.save(&opts.out, CLAIMS_FILE)?;
            Some(ClaimsSpec {
                archive: CLAIMS_FILE.to_string(),
                match_threshold,
            })
        }
        None => None,
    };
    spec.save(&opts.out)
}

/// Standardised dense and TF-IDF sparse features of one row.
type Features = (Vec<f32>, Vec<(u32, f32)>);

struct Fit {
    head: StackedHead,
    dev_auc: Option<f64>,
    epochs: usize,
}

impl StackedHead {
    fn logit_of(&self, r: &Row) -> f32 {
        let with_matches = self.w_dense.len() > r.pooled.len();
        self.logit(&r.dense(with_matches), &tfidf(&self.idf, &r.tf).0)
    }
}

/// Logistic regression by per-row Adagrad over `train`, classes weighted
/// equally, early-stopped on dev log-loss. A view left out has zero
/// weights (n-grams: zero IDF; encoder: unit-free zero weights).
fn fit(train: &[&Row], dev: &[&Row], views: Views, l2: f32, opts: &StackOptions) -> Fit {
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
    let row_w = source_weights(train, opts.source_balance);

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
        let logits: Vec<f32> = dev.iter().map(|r| head.logit_of(r)).collect();
        let loss = log_loss(&logits, &dev_labels);
        if best.as_ref().is_none_or(|b| loss < b.0) {
            best = Some((loss, epoch, head.clone()));
        } else if best.as_ref().is_some_and(|b| epoch - b.1 >= 2) {
            break;
        }
    }
    let (_, _, head) = best.expect("at least one epoch");
    let logits: Vec<f32> = dev.iter().map(|r| head.logit_of(r)).collect();
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

/// Runs the encoder over every example (or reads its output from the cache).
fn encode_rows(
    clf: &Classifier,
    examples: &[Example],
    cache: Option<&Path>,
) -> Result<Vec<Row>, ModelError> {
    let toks = examples
        .iter()
        .map(|e| clf.tokenize(&e.text))
        .collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<u64> = toks.iter().map(|t| crate::cache::ids_key(&t.ids)).collect();
    let mut known: HashMap<u64, Vec<f32>> = match cache {
        Some(f) if f.exists() => read_views(f)?,
        _ => HashMap::new(),
    };
    let missing = crate::cache::missing(&keys, &known);
    tracing::info!(
        rows = examples.len(),
        to_encode = missing.len(),
        "encoder outputs"
    );
    let mut writer = match cache {
        Some(f) => {
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .map_err(|e| ModelError::io(f, e))?;
            Some(BufWriter::new(file))
        }
        None => None,
    };
    let lens: Vec<usize> = missing.iter().map(|&i| toks[i].ids.len()).collect();
    let batches = token_budget_batches(&lens);
    let started = Instant::now();
    for (n, batch) in batches.iter().enumerate() {
        let items: Vec<_> = batch.iter().map(|&j| &toks[missing[j]]).collect();
        for (pooled, &j) in clf.pooled(&items)?.into_iter().zip(batch) {
            let key = keys[missing[j]];
            if let Some(w) = writer.as_mut() {
                write_view(w, key, &pooled)
                    .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
            }
            known.insert(key, pooled);
        }
        if n % 20 == 19 {
            if let Some(w) = writer.as_mut() {
                w.flush()
                    .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
            }
            tracing::info!(
                batch = n + 1,
                of = batches.len(),
                secs = started.elapsed().as_secs(),
                "encoding"
            );
        }
    }
    if let Some(mut w) = writer {
        w.flush()
            .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
    }
    Ok(examples
        .iter()
        .zip(&toks)
        .zip(&keys)
        .map(|((e, t), k)| {
            let pooled = &known[k];
            let words = clf.read_words(t);
            Row {
                id: e.id.clone(),
                narrative: e.narrative.clone(),
                text: e.text.clone(),
                pooled: pooled.clone(),
                tf: term_frequencies(words.iter().map(String::as_str)),
                matches: [0.0; MATCH_FEATURES],
                hoax: e.hoax(),
                protected: e.protected(),
                source: e.source.clone(),
                split: e.split(),
            }
        })
        .collect())
}

/// One cache per encoder: named by a hash of its spec and weight file size.
fn views_cache_file(dir: &Path, model_dir: &Path) -> Result<PathBuf, ModelError> {
    let spec = crate::spec::SPEC_FILE;
    let h = crate::cache::model_key(model_dir, &[spec, WEIGHTS_FILE], spec)?;
    Ok(dir.join(format!("views-{h:016x}.bin")))
}

fn write_view(w: &mut impl Write, key: u64, pooled: &[f32]) -> std::io::Result<()> {
    w.write_all(&key.to_le_bytes())?;
    w.write_all(&(pooled.len() as u32).to_le_bytes())?;
    for x in pooled {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Reads every whole record; a torn last record (an interrupted run) is
/// ignored and recomputed.
fn read_views(path: &Path) -> Result<HashMap<u64, Vec<f32>>, ModelError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| ModelError::io(path, e))?;
    let mut out = HashMap::new();
    let mut at = 0usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    while at + 12 <= bytes.len() {
        let key = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let dims = u32_at(at + 8) as usize;
        let end = at + 12 + 4 * dims;
        if end > bytes.len() {
            break;
        }
        let pooled = (0..dims)
            .map(|d| f32::from_bits(u32_at(at + 12 + 4 * d)))
            .collect();
        out.insert(key, pooled);
        at = end;
    }
    Ok(out)
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

    #[test]
    fn a_torn_cache_record_is_dropped_and_whole_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("views.bin");
        let mut buf = Vec::new();
        write_view(&mut buf, 7, &[1.0, 2.0]).unwrap();
        write_view(&mut buf, 9, &[3.0, 4.0]).unwrap();
        buf.truncate(buf.len() - 3);
        std::fs::write(&path, &buf).unwrap();
        let views = read_views(&path).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[&7], vec![1.0, 2.0]);
    }
}
