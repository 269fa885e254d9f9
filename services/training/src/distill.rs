//! size: one training loop; teacher targets, student initialisation and the loop share its state.
//!
//! `patroli train --teacher DIR --student-layers N`: a shallower encoder
//! taught to reproduce a teacher model's pooled output, so every view built
//! on that output (the category head, the stacked head's dense block, claim
//! matching) carries over at a fraction of the cost.
//!
//! The student shares the teacher's tokenizer and (frozen) embeddings; its
//! layers start as copies of evenly spaced teacher layers, first and last
//! included, and learn by mean squared error against the teacher's pooled
//! vector of each training text. The teacher's vectors come from the same
//! append-only cache the stacked head reads, so they are computed once. Only
//! the train split is read for learning; the dev split picks the epoch.
//! Last, the student's vocabulary is pruned to what Indonesian posts use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::{data_files, data_fingerprint, jsonl_records, load_examples, Split};
use crate::prune_vocab::prune_vocab;
use crate::stack_rows::{pooled_vectors, views_cache_file};
use crate::train::relative_path;
use crate::train_ops::{build_layers, top_forward, top_pooled};
use patroli_inference::bert::{padded_positions, Packed};
use patroli_inference::bert::{BertConfig, LAYER_TENSORS};
use patroli_inference::spec::{ModelSpec, WEIGHTS_FILE};
use patroli_inference::text::Tokenized;
use patroli_inference::weights_file::load_safetensors;
use patroli_inference::{token_budget_batches, Classifier};
use patroli_inference::{InferenceOptions, ModelError};

pub const DISTILL_REPORT_FILE: &str = "distill_report.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DistillOptions {
    /// Labelled JSONL files or folders; only their train-split texts teach.
    pub data: Vec<PathBuf>,
    /// Unlabelled JSONL files or folders (records with a `text`, e.g. posts
    /// exported from `posts.raw.v1`): every text teaches too, beside the
    /// train split's. Labels are never read, so no evaluation split leaks.
    #[serde(default)]
    pub unlabelled: Vec<PathBuf>,
    /// The model directory whose encoder is distilled.
    pub teacher: PathBuf,
    pub out: PathBuf,
    pub name: String,
    pub version: String,
    /// Student depth.
    pub layers: usize,
    /// Continue from this student's layers (a directory this wrote) rather
    /// than from copies of the teacher's.
    #[serde(default)]
    pub init: Option<PathBuf>,
    pub epochs: usize,
    /// Peak learning rate (AdamW; 5% warm-up, then linear decay to 0).
    pub lr: f64,
    pub seed: u64,
    /// Dev texts scored after each epoch (a fixed, seeded sample).
    pub max_dev: usize,
    /// Keeps the teacher's vectors between runs.
    pub cache_dir: Option<PathBuf>,
    /// The student's vocabulary is pruned (`vocab.rs`) to the pieces its
    /// training texts use plus this many of the base's most probable others.
    pub keep_top_pieces: usize,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("models/data/build/all.jsonl")],
            unlabelled: Vec::new(),
            teacher: PathBuf::from(patroli_inference::DEFAULT_MODEL_DIR),
            out: PathBuf::from("models/patroli-student"),
            name: "patroli-student".into(),
            version: "0.1.0".into(),
            layers: 4,
            init: None,
            epochs: 3,
            lr: 2e-4,
            seed: 13,
            max_dev: 3000,
            cache_dir: None,
            keep_top_pieces: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DistillEpoch {
    pub epoch: usize,
    /// Mean squared error per value against the teacher's pooled vector.
    pub train_mse: f64,
    pub dev_mse: f64,
    /// Mean cosine similarity of student and teacher vectors on dev.
    pub dev_cosine: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DistillReport {
    pub data_sha: String,
    pub teacher: String,
    /// The teacher layer each student layer started from (before `init`,
    /// when the run continued an earlier student).
    pub initialised_from: Vec<usize>,
    /// Texts the student learnt from: the train split's and the unlabelled.
    pub train_texts: usize,
    /// Of those, the ones from `options.unlabelled`.
    #[serde(default)]
    pub unlabelled_texts: usize,
    pub dev_texts: usize,
    pub epochs: Vec<DistillEpoch>,
    pub best_epoch: usize,
    /// Base token ids the student keeps.
    pub vocabulary: usize,
    pub seconds: f64,
    pub options: DistillOptions,
}

/// The `text` of every record in the unlabelled files, in file order.
fn unlabelled_texts(paths: &[PathBuf]) -> Result<Vec<String>, ModelError> {
    #[derive(Deserialize)]
    struct Unlabelled {
        text: String,
    }
    let mut texts = Vec::new();
    for file in data_files(paths)? {
        texts.extend(
            jsonl_records::<Unlabelled>(&file)?
                .into_iter()
                .map(|(_, record)| record.text),
        );
    }
    Ok(texts)
}

/// `layers` indices spread evenly over `0..depth`, first and last included.
pub(crate) fn spread_layers(depth: usize, layers: usize) -> Vec<usize> {
    match layers {
        0 => Vec::new(),
        1 => vec![depth - 1],
        _ => (0..layers)
            .map(|i| ((i * (depth - 1)) as f64 / (layers - 1) as f64).round() as usize)
            .collect(),
    }
}

/// Trains a student of `opts.layers` layers and writes it as a model
/// directory (`encoder_layers` set; no stacked head: `patroli stack` on it
/// makes the shipped model).
pub fn distill(opts: &DistillOptions) -> Result<DistillReport, ModelError> {
    let started = Instant::now();
    // In f32 whatever its spec says: the student starts from copies of the
    // teacher's layers, and learns the exact vectors, not the quantised ones.
    let teacher = Classifier::load(
        &opts.teacher,
        &InferenceOptions {
            int8: Some(false),
            ..InferenceOptions::default()
        },
    )?;
    let spec = teacher.spec().clone();
    let base_dir = spec.resolve_base_dir(&opts.teacher);
    let cfg = BertConfig::load(&base_dir.join("config.json"))?;
    let net = teacher.network();
    let depth = net.layers.len();
    if opts.layers == 0 || opts.layers >= depth {
        return Err(ModelError::Format(format!(
            "a student needs at least one layer and fewer than its teacher's {depth}, not {}",
            opts.layers
        )));
    }
    let examples = load_examples(&opts.data)?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let tokenized = |split: Split| -> Result<Vec<Tokenized>, ModelError> {
        examples
            .iter()
            .filter(|e| e.split() == split)
            .map(|e| teacher.tokenize(&e.text))
            .collect()
    };
    let mut train = tokenized(Split::Train)?;
    let unlabelled = unlabelled_texts(&opts.unlabelled)?;
    for text in &unlabelled {
        train.push(teacher.tokenize(text)?);
    }
    let mut dev = tokenized(Split::Dev)?;
    dev.shuffle(&mut rng);
    dev.truncate(opts.max_dev);
    if train.is_empty() || dev.is_empty() {
        return Err(ModelError::Format(
            "distillation needs texts in both the train and the dev split".into(),
        ));
    }
    let cache = opts
        .cache_dir
        .as_deref()
        .map(|d| views_cache_file(d, &opts.teacher))
        .transpose()?;
    let train_targets = pooled_vectors(&teacher, &train, cache.as_deref())?;
    let dev_targets = pooled_vectors(&teacher, &dev, cache.as_deref())?;

    let taken = spread_layers(depth, opts.layers);
    let start: Vec<Vec<Tensor>> = match &opts.init {
        None => taken
            .iter()
            .map(|&l| {
                net.layers[l]
                    .tensors()
                    .map(|t| t.into_iter().cloned().collect())
            })
            .collect::<candle_core::Result<_>>()?,
        Some(dir) => {
            let weights = load_safetensors(&dir.join(WEIGHTS_FILE))?;
            (0..opts.layers)
                .map(|l| {
                    LAYER_TENSORS
                        .iter()
                        .map(|s| {
                            let name = format!("top.{l}.{s}");
                            weights.get(&name).cloned().ok_or_else(|| {
                                ModelError::Format(format!("{}: lacks {name}", dir.display()))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()?
        }
    };
    let vars: Vec<Vec<Var>> = start
        .iter()
        .map(|tensors| {
            tensors
                .iter()
                .map(|t| Var::from_tensor(&t.copy()?))
                .collect::<candle_core::Result<Vec<_>>>()
        })
        .collect::<candle_core::Result<_>>()?;
    let mut opt = AdamW::new(
        vars.iter().flatten().cloned().collect(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let eps = cfg.layer_norm_eps;
    let batches_per_epoch = token_budget_batches(&lens(&train)).len();
    let total_steps = (batches_per_epoch * opts.epochs).max(1);
    let warmup = (total_steps / 20).max(1);
    let mut step = 0usize;
    let mut epochs = Vec::new();
    let mut best: Option<(f64, usize, Vec<Vec<Tensor>>)> = None;
    for epoch in 1..=opts.epochs {
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let order_lens: Vec<usize> = order.iter().map(|&i| train[i].ids.len()).collect();
        let mut batches = token_budget_batches(&order_lens);
        batches.shuffle(&mut rng);
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for (n, batch) in batches.iter().enumerate() {
            let rows: Vec<usize> = batch.iter().map(|&j| order[j]).collect();
            let lr = opts.lr
                * if step < warmup {
                    (step + 1) as f64 / warmup as f64
                } else {
                    (total_steps - step) as f64 / (total_steps - warmup).max(1) as f64
                };
            opt.set_learning_rate(lr);
            let layers = build_layers(&vars, 0, eps, false)?;
            let loss = batch_mse(&teacher, &layers, &train, &train_targets, &rows)?;
            opt.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * rows.len() as f64;
            loss_n += rows.len();
            step += 1;
            if n % 50 == 49 {
                tracing::info!(
                    epoch,
                    batch = n + 1,
                    of = batches.len(),
                    mse = loss_sum / loss_n as f64,
                    secs = epoch_start.elapsed().as_secs(),
                    "distilling"
                );
            }
        }
        let layers = build_layers(&vars, 0, eps, true)?;
        let (dev_mse, dev_cosine) = dev_fit(&teacher, &layers, &dev, &dev_targets)?;
        let log = DistillEpoch {
            epoch,
            train_mse: loss_sum / loss_n.max(1) as f64,
            dev_mse,
            dev_cosine,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        tracing::info!(?log, "epoch done");
        epochs.push(log);
        if best.as_ref().is_none_or(|(m, _, _)| dev_mse < *m) {
            let snap = vars
                .iter()
                .map(|vs| vs.iter().map(|v| v.as_tensor().copy()).collect())
                .collect::<candle_core::Result<_>>()?;
            best = Some((dev_mse, epoch, snap));
        }
    }
    let (_, best_epoch, snap) = best.expect("at least one epoch");
    let data_sha = data_fingerprint(&[opts.data.as_slice(), &opts.unlabelled].concat())?;
    save_student(opts, &spec, &base_dir, &snap, &data_sha)?;
    let vocabulary = prune_vocab(&opts.out, &opts.data, &unlabelled, opts.keep_top_pieces)?;
    let report = DistillReport {
        data_sha,
        teacher: format!("{} {}", spec.name, spec.version),
        initialised_from: taken,
        train_texts: train.len(),
        unlabelled_texts: unlabelled.len(),
        dev_texts: dev.len(),
        epochs,
        best_epoch,
        vocabulary,
        seconds: started.elapsed().as_secs_f64(),
        options: opts.clone(),
    };
    patroli_inference::write_json(&opts.out.join(DISTILL_REPORT_FILE), &report)?;
    Ok(report)
}

fn lens(toks: &[Tokenized]) -> Vec<usize> {
    toks.iter().map(|t| t.ids.len()).collect()
}

/// Mean squared error of the student's pooled vectors of `rows` against
/// the teacher's.
fn batch_mse(
    teacher: &Classifier,
    layers: &[patroli_inference::bert::Layer],
    toks: &[Tokenized],
    targets: &[Vec<f32>],
    rows: &[usize],
) -> Result<Tensor, ModelError> {
    let net = teacher.network();
    let ids: Vec<&[u32]> = rows.iter().map(|&i| toks[i].ids.as_slice()).collect();
    let (ids, mask) = net.pad(&ids)?;
    let (b, s) = ids.dims2()?;
    let x = net.emb.forward(&ids, &padded_positions(b, s)?)?;
    let pooled = top_forward(layers, &x, &mask, net.heads)?;
    let h = pooled.dim(1)?;
    let want: Vec<f32> = rows
        .iter()
        .flat_map(|&i| targets[i].iter().copied())
        .collect();
    let want = Tensor::from_vec(want, (rows.len(), h), pooled.device())?;
    Ok((pooled - want)?.sqr()?.mean_all()?)
}

/// Dev mean squared error and mean cosine similarity to the teacher.
fn dev_fit(
    teacher: &Classifier,
    layers: &[patroli_inference::bert::Layer],
    dev: &[Tokenized],
    targets: &[Vec<f32>],
) -> Result<(f64, f64), ModelError> {
    let net = teacher.network();
    let (mut se, mut cos, mut values) = (0.0f64, 0.0f64, 0usize);
    for batch in token_budget_batches(&lens(dev)) {
        let ids: Vec<&[u32]> = batch.iter().map(|&i| dev[i].ids.as_slice()).collect();
        let packed = Packed::new(&ids)?;
        let x = net.emb.forward(&packed.ids, &packed.positions)?;
        let pooled = top_pooled(layers, x, &packed.lens, net.heads)?.to_vec2::<f32>()?;
        for (got, &i) in pooled.iter().zip(&batch) {
            let want = &targets[i];
            let dot: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            cos += f64::from(dot / (norm(got) * norm(want)).max(1e-12));
            se += got
                .iter()
                .zip(want)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>();
            values += got.len();
        }
    }
    Ok((se / values as f64, cos / dev.len() as f64))
}

fn save_student(
    opts: &DistillOptions,
    teacher_spec: &ModelSpec,
    base_dir: &Path,
    layers: &[Vec<Tensor>],
    data_sha: &str,
) -> Result<(), ModelError> {
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (l, tensors) in layers.iter().enumerate() {
        for (suffix, t) in LAYER_TENSORS.iter().zip(tensors) {
            out.insert(format!("top.{l}.{suffix}"), t.clone());
        }
    }
    // The category head reads the pooled vector the student reproduces.
    let teacher_weights = load_safetensors(&opts.teacher.join(WEIGHTS_FILE))?;
    for name in ["head.weight", "head.bias"] {
        let t = teacher_weights.get(name).ok_or_else(|| {
            ModelError::Format(format!("{}: lacks {name}", opts.teacher.display()))
        })?;
        out.insert(name.to_string(), t.clone());
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    candle_core::safetensors::save(&out, opts.out.join(WEIGHTS_FILE))?;
    let spec = ModelSpec {
        name: opts.name.clone(),
        version: opts.version.clone(),
        base_dir: relative_path(&opts.out, base_dir)?,
        finetuned_layers: opts.layers,
        encoder_layers: Some(opts.layers),
        data_sha: Some(data_sha.to_string()),
        stack: None,
        claims: None,
        ..teacher_spec.clone()
    };
    spec.save(&opts.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_layers_spread_over_the_teacher_first_and_last_included() {
        assert_eq!(spread_layers(12, 4), vec![0, 4, 7, 11]);
        assert_eq!(spread_layers(12, 6), vec![0, 2, 4, 7, 9, 11]);
        assert_eq!(spread_layers(12, 1), vec![11]);
        assert_eq!(spread_layers(2, 2), vec![0, 1]);
    }
}
