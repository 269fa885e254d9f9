//! `patroli stack`: trains the stacked head (`stack.rs`) on top of a
//! fine-tuned model directory, using every labelled train row (the encoder
//! runs once per row; its outputs are kept in `cache_dir` between runs),
//! calibrates it and sets the threshold on dev, and measures it per held-out
//! source (leave-one-source-out). Never reads the test split for fitting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{data_fingerprint, load_examples, Example, Split};
use crate::metrics::roc_auc;
use crate::stack_fit::{logit_of, platt};
use crate::stack_fold::{fit_fold, match_fold, views_of};
use crate::stack_loso::{leave_one_source_out, mean_held_out_auc, BalanceChoice, HeldOut};
use crate::stack_rows::{encode_rows, views_cache_file, Row};
use crate::train::{choose_threshold, ThresholdChoice};
use crate::ModelError;
use patroli_inference::claims::ClaimIndex;
use patroli_inference::spec::{ClaimsSpec, ModelSpec, WEIGHTS_FILE};
use patroli_inference::stack::StackedHead;
use patroli_inference::{Classifier, InferenceOptions};

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
    /// How far row weights even out source sizes (`source_weights`): 0 weighs
    /// every row alike, 1 every source alike. Given several, each is fitted
    /// and held out source by source, and the one with the best mean
    /// held-out ROC-AUC ships (on a tie, the first listed): the model is
    /// judged on sources it never saw, and pooled dev mostly measures the
    /// largest source.
    #[serde(deserialize_with = "one_or_many")]
    pub source_balance: Vec<f32>,
}

/// `source_balance` was one number before it could be several; recorded
/// options of either form load.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(x) => vec![x],
        OneOrMany::Many(v) => v,
    })
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("models/data/build/all.jsonl")],
            // Set by every caller: no default may point into a shipped model.
            encoder: PathBuf::new(),
            out: PathBuf::new(),
            name: "patroli-id-dev".into(),
            version: "0.0.0".into(),
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
            source_balance: vec![0.0],
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
    pub(crate) fn encoder(self) -> bool {
        matches!(
            self,
            Views::Combined | Views::Classifier | Views::EncoderOnly
        )
    }
    pub(crate) fn ngrams(self) -> bool {
        matches!(
            self,
            Views::Combined | Views::Classifier | Views::NgramsOnly
        )
    }
    pub(crate) fn matches(self) -> bool {
        matches!(self, Views::Combined | Views::MatchesOnly)
    }
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
    /// The shipped source balance, and each tried with its mean held-out
    /// ROC-AUC.
    pub source_balance: f32,
    pub source_balance_choice: Vec<BalanceChoice>,
    /// The shipped source balance's folds.
    pub leave_one_source_out: BTreeMap<String, HeldOut>,
    pub seconds: f64,
    pub options: StackOptions,
}

pub fn stack(opts: &StackOptions) -> Result<StackReport, ModelError> {
    let start = Instant::now();
    if opts.source_balance.is_empty() {
        return Err(ModelError::Data(
            "source_balance needs at least one value".into(),
        ));
    }
    if opts.source_balance.len() > 1 && !opts.leave_one_source_out {
        return Err(ModelError::Data(
            "choosing among several source balances needs leave-one-source-out: \
             they are ranked by their held-out ROC-AUC"
                .into(),
        ));
    }
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
    // The full fold's archive and match features serve every balance; the
    // match threshold reads them before the held-out folds re-set them.
    let archive = match_fold(&mut rows, &|_| true, opts)?;
    let match_threshold = archive.as_ref().map(|_| {
        let genuine_best_hoax: Vec<f32> = rows
            .iter()
            .filter(|r| r.split == Split::Dev && !r.hoax)
            .map(|r| r.matches[0])
            .collect();
        match_threshold(genuine_best_hoax, opts.max_genuine_match_rate)
    });
    let fits: Vec<ShippedFit> = opts
        .source_balance
        .iter()
        .map(|&balance| fit_shipped(&rows, balance, opts))
        .collect();
    let mut held_out = if opts.leave_one_source_out {
        let folds: Vec<(f32, f32)> = opts
            .source_balance
            .iter()
            .zip(&fits)
            .map(|(&balance, fit)| (balance, fit.l2))
            .collect();
        leave_one_source_out(&mut rows, &folds, opts)?
    } else {
        vec![BTreeMap::new(); fits.len()]
    };
    let choice: Vec<BalanceChoice> = opts
        .source_balance
        .iter()
        .zip(&held_out)
        .map(|(&balance, h)| BalanceChoice {
            source_balance: balance,
            mean_held_out_roc_auc: mean_held_out_auc(h, views_of(opts).0),
        })
        .collect();
    // The best mean held-out ROC-AUC; on a tie, the first listed.
    let rank = |c: &BalanceChoice| c.mean_held_out_roc_auc.unwrap_or(f64::NEG_INFINITY);
    let mut chosen = 0;
    for (i, c) in choice.iter().enumerate() {
        tracing::info!(
            balance = c.source_balance,
            mean_held_out_roc_auc = ?c.mean_held_out_roc_auc,
            "source balance"
        );
        if rank(c) > rank(&choice[chosen]) {
            chosen = i;
        }
    }
    let fit = fits.into_iter().nth(chosen).expect("a fit per balance");
    write_model(
        opts,
        &fit.head,
        fit.threshold.threshold,
        &data_sha,
        archive.as_ref().zip(match_threshold),
    )?;
    let report = StackReport {
        data_sha,
        encoder: opts.encoder.display().to_string(),
        train_examples: fit.train_examples,
        dev_examples: fit.dev_examples,
        match_threshold,
        l2: fit.l2,
        epochs_run: fit.epochs_run,
        dev_roc_auc: fit.dev_roc_auc,
        test_roc_auc: fit.test_roc_auc,
        platt: fit.head.platt,
        threshold: fit.threshold,
        source_balance: opts.source_balance[chosen],
        source_balance_choice: choice,
        leave_one_source_out: held_out.swap_remove(chosen),
        seconds: start.elapsed().as_secs_f64(),
        options: opts.clone(),
    };
    patroli_inference::write_json(&opts.out.join("stack_report.json"), &report)?;
    Ok(report)
}

/// One source balance's model: fitted on every source, calibrated and
/// thresholded on dev, scored on test.
struct ShippedFit {
    head: StackedHead,
    threshold: ThresholdChoice,
    l2: f32,
    epochs_run: usize,
    train_examples: usize,
    dev_examples: usize,
    dev_roc_auc: BTreeMap<Views, Option<f64>>,
    test_roc_auc: BTreeMap<Views, Option<f64>>,
}

/// `rows`' match features must be set against the full archive.
fn fit_shipped(rows: &[Row], balance: f32, opts: &StackOptions) -> ShippedFit {
    let fold = fit_fold(rows, &|_| true, &opts.l2, balance, opts);
    let shipped = views_of(opts).0;
    let mut head = fold.shipped.head.clone();
    let of = |split: Split| -> Vec<&Row> { rows.iter().filter(|r| r.split == split).collect() };
    let (train, dev, test) = (of(Split::Train), of(Split::Dev), of(Split::Test));
    let dev_logits: Vec<f32> = dev.iter().map(|r| logit_of(&head, r)).collect();
    let labels: Vec<bool> = dev.iter().map(|r| r.hoax).collect();
    head.platt = platt(&dev_logits, &labels);
    let dev_scores: Vec<f32> = dev_logits.iter().map(|&z| head.calibrated(z)).collect();
    let protected: Vec<bool> = dev.iter().map(|r| r.protected).collect();
    let threshold = choose_threshold(
        &dev_scores,
        &labels,
        &protected,
        opts.max_protected_fpr,
        opts.threshold,
    );
    let test_auc = |head: &StackedHead| -> Option<f64> {
        let scores: Vec<f32> = test.iter().map(|r| logit_of(head, r)).collect();
        let labels: Vec<bool> = test.iter().map(|r| r.hoax).collect();
        roc_auc(&scores, &labels)
    };
    let (mut dev_roc_auc, mut test_roc_auc) = (BTreeMap::new(), BTreeMap::new());
    dev_roc_auc.insert(shipped, fold.shipped.dev_auc);
    test_roc_auc.insert(shipped, test_auc(&head));
    for (&v, f) in &fold.ablations {
        dev_roc_auc.insert(v, f.dev_auc);
        test_roc_auc.insert(v, test_auc(&f.head));
    }
    test_roc_auc.retain(|_, auc| auc.is_some());
    ShippedFit {
        head,
        threshold,
        l2: fold.l2,
        epochs_run: fold.shipped.epochs,
        train_examples: train.len(),
        dev_examples: dev.len(),
        dev_roc_auc,
        test_roc_auc,
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
    // The encoder's own files: its weights and, for a pruned student, its vocabulary.
    for file in std::iter::once(WEIGHTS_FILE).chain(spec.vocab.as_deref()) {
        let (from, to) = (opts.encoder.join(file), opts.out.join(file));
        if from != to {
            std::fs::copy(&from, &to).map_err(|e| ModelError::io(&to, e))?;
        }
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
