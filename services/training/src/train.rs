//! size: one training loop with its calibration and dev-chosen threshold, which share its state.
//!
//! `patroli train`: fine-tunes the top encoder layers and an 11-way head on
//! the train split of labelled JSONL (the corpus, public data, reviewers'
//! decisions), early-stops, calibrates and sets the threshold on the dev
//! split, never reads the test split.
//!
//! Examples with a category train the head on it; examples with only the
//! binary label train the hoax probability mass alone. The frozen lower
//! layers run once per example (their outputs are cached, on disk with
//! `cache_dir`), so each epoch only costs the top layers' forward and
//! backward passes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::cache::{cache_file, lower_states};
use crate::data::{
    data_fingerprint, load_examples, Example, Split, CATEGORIES, DISINFO_CATEGORIES,
};
use crate::metrics::{binary_counts, threshold_at_fpr};
use crate::train_ops::{
    build_layers, class_weights, dev_logits, fit_temperature, hoax_scores, loss_fn, pad_hidden,
    top_forward,
};
use crate::ModelError;
use patroli_inference::bert::{BertConfig, Layer, Linear, LAYER_TENSORS};
use patroli_inference::network::{BaseLayers, Network};
use patroli_inference::spec::{ModelSpec, WEIGHTS_FILE};
use patroli_inference::text::TextEncoder;
use patroli_inference::weights_file::load_safetensors;

const PREFIX: &str = "query: ";
const DROPOUT: f32 = 0.1;

/// Missing fields take their defaults, so older reports' options still load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainOptions {
    /// JSONL files or directories of them.
    pub data: Vec<PathBuf>,
    /// Model directory to write.
    pub out: PathBuf,
    /// Base encoder directory (config.json, model.safetensors, tokenizer.json).
    pub base_dir: PathBuf,
    pub name: String,
    pub version: String,
    pub epochs: usize,
    /// Learning rate of the fine-tuned encoder layers.
    pub lr: f64,
    /// Learning rate of the classification head.
    pub head_lr: f64,
    pub batch_size: usize,
    pub seed: u64,
    /// Top encoder layers to fine-tune (0 = head only).
    pub finetune_layers: usize,
    /// Token limit incl. specials.
    pub max_len: usize,
    /// Epochs without dev-loss improvement before stopping.
    pub patience: usize,
    /// Lowest label threshold: the dev-chosen one is never below it.
    pub threshold: f32,
    /// Largest share of dev genuine news / official items (`Example::protected`)
    /// allowed at or above the threshold.
    pub max_protected_fpr: f64,
    /// Loss weight per source (default 1).
    pub source_weights: BTreeMap<String, f32>,
    /// Sources left out entirely (leave-one-source-out runs).
    pub exclude_sources: Vec<String>,
    /// At most this many train examples per (source, label), picked by a
    /// stable hash of the id: sizes a run to the CPU budget.
    pub max_per_source: Option<usize>,
    /// The same cap for dev.
    pub max_dev_per_source: Option<usize>,
    /// Directory keeping lower-layer activations between runs.
    pub cache_dir: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("models/data/corpus")],
            // Set by every caller: no default may point into a shipped model.
            out: PathBuf::new(),
            base_dir: PathBuf::from("models/base/multilingual-e5-small"),
            name: "patroli-id-dev".into(),
            version: "1.0.0".into(),
            epochs: 6,
            lr: 5e-5,
            head_lr: 2e-3,
            batch_size: 16,
            seed: 13,
            finetune_layers: 2,
            max_len: 128,
            patience: 2,
            threshold: 0.5,
            max_protected_fpr: 0.02,
            source_weights: BTreeMap::new(),
            exclude_sources: Vec::new(),
            max_per_source: None,
            max_dev_per_source: None,
            cache_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_loss: Option<f64>,
    pub dev_roc_auc: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainReport {
    /// `data_fingerprint` of the data files read.
    pub data_sha: String,
    pub train_examples: usize,
    /// Train examples per source.
    pub train_per_source: BTreeMap<String, usize>,
    pub dev_examples: usize,
    /// Test-split examples present in the data and left untouched.
    pub test_examples_held_out: usize,
    pub best_epoch: usize,
    pub epochs: Vec<EpochLog>,
    pub temperature: f32,
    /// The label threshold chosen on dev and its effect there.
    pub threshold: ThresholdChoice,
    pub seconds: f64,
    pub options: TrainOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdChoice {
    pub threshold: f32,
    /// Dev genuine news / official items it was chosen on.
    pub dev_protected: usize,
    pub dev_protected_fpr: f64,
    pub dev_precision: f64,
    pub dev_recall: f64,
}

impl std::fmt::Display for ThresholdChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "threshold {:.3} (dev: {} genuine news/official items, FPR {:.4}, precision {:.4}, recall {:.4})",
            self.threshold,
            self.dev_protected,
            self.dev_protected_fpr,
            self.dev_precision,
            self.dev_recall
        )
    }
}

/// The best epoch so far: (dev loss, epoch, top layers' tensors, head w, head b).
type Snapshot = (f64, usize, Vec<Vec<Tensor>>, Tensor, Tensor);

pub(crate) struct Cached {
    pub hidden: Tensor,
    pub category: Option<usize>,
    pub hoax: bool,
    pub protected: bool,
    /// Loss weight: the source's, scaled so both labels weigh the same.
    pub weight: f32,
}

/// Trains a model directory per `opts` and returns what happened.
pub fn train(opts: &TrainOptions) -> Result<TrainReport, ModelError> {
    let start = Instant::now();
    let data_sha = data_fingerprint(&opts.data)?;
    let examples: Vec<Example> = load_examples(&opts.data)?
        .into_iter()
        .filter(|e| !opts.exclude_sources.contains(&e.source))
        .collect();
    let mut held_out = 0;
    let (mut train_ex, mut dev_ex) = (Vec::new(), Vec::new());
    for e in examples {
        match e.split() {
            Split::Train => train_ex.push(e),
            Split::Dev => dev_ex.push(e),
            Split::Test => held_out += 1,
        }
    }
    let train_ex = cap_per_source(train_ex, opts.max_per_source);
    let dev_ex = cap_per_source(dev_ex, opts.max_dev_per_source);
    if train_ex.is_empty() {
        return Err(ModelError::Data(
            "no training examples in the train split".into(),
        ));
    }
    let mut train_per_source = BTreeMap::new();
    for e in &train_ex {
        *train_per_source.entry(e.source.clone()).or_insert(0) += 1;
    }
    let cfg = BertConfig::load(&opts.base_dir.join("config.json"))?;
    let base = load_safetensors(&opts.base_dir.join("model.safetensors"))?;
    let tok_path = opts.base_dir.join("tokenizer.json");
    let probe = tokenizers::Tokenizer::from_file(&tok_path)
        .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
    let special = |s: &str| {
        probe
            .token_to_id(s)
            .ok_or_else(|| ModelError::Tokenizer(format!("no {s} token")))
    };
    let (bos, eos) = (special("<s>")?, special("</s>")?);
    let pad = cfg.pad_token_id as u32;
    let max_len = opts.max_len.min(cfg.max_position_embeddings).max(3);
    let text = TextEncoder::load(&tok_path, None, PREFIX, bos, eos, max_len)?;
    let n_layers = cfg.num_hidden_layers;
    let k = opts.finetune_layers.min(n_layers);
    let lower = n_layers - k;
    let net = Network::assemble(
        &cfg,
        &base,
        BaseLayers::InMap,
        &HashMap::new(),
        0,
        pad,
        false,
    )?;

    tracing::info!(
        train = train_ex.len(),
        dev = dev_ex.len(),
        held_out,
        "caching lower layers"
    );
    let file = opts
        .cache_dir
        .as_deref()
        .map(|d| cache_file(d, &opts.base_dir, lower))
        .transpose()?;
    let train_c = cache(&net, &text, &train_ex, lower, file.as_deref(), opts)?;
    let dev_c = cache(&net, &text, &dev_ex, lower, file.as_deref(), opts)?;
    drop(net);
    tracing::info!(secs = start.elapsed().as_secs_f64(), "lower layers cached");

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let h = cfg.hidden_size;
    let c = CATEGORIES.len();
    let layer_vars: Vec<Vec<Var>> = (lower..n_layers)
        .map(|l| {
            LAYER_TENSORS
                .iter()
                .map(|s| {
                    let name = format!("encoder.layer.{l}.{s}");
                    let t = base
                        .get(&name)
                        .ok_or_else(|| ModelError::Format(format!("base weights lack {name}")))?;
                    Ok(Var::from_tensor(t)?)
                })
                .collect::<Result<Vec<_>, ModelError>>()
        })
        .collect::<Result<_, _>>()?;
    drop(base);
    let bound = (1.0 / h as f32).sqrt();
    let head_w: Vec<f32> = (0..c * h)
        .map(|_| rng.random_range(-bound..bound) * 0.1)
        .collect();
    let head_w = Var::from_tensor(&Tensor::from_vec(head_w, (c, h), &Device::Cpu)?)?;
    let head_b = Var::from_tensor(&Tensor::zeros(c, DType::F32, &Device::Cpu)?)?;

    let class_w = class_weights(&train_c);
    let steps_per_epoch = train_c.len().div_ceil(opts.batch_size.max(1));
    let total_steps = (steps_per_epoch * opts.epochs).max(1);
    let adam = |vars: Vec<Var>, lr: f64| {
        AdamW::new(
            vars,
            ParamsAdamW {
                lr,
                weight_decay: 0.01,
                ..Default::default()
            },
        )
    };
    let mut opt_layers = adam(layer_vars.iter().flatten().cloned().collect(), opts.lr)?;
    let mut opt_head = adam(vec![head_w.clone(), head_b.clone()], opts.head_lr)?;
    let hoax_mask = Tensor::from_vec(
        CATEGORIES
            .iter()
            .map(|c| f32::from(u8::from(DISINFO_CATEGORIES.contains(c))))
            .collect(),
        c,
        &Device::Cpu,
    )?;

    let eps = cfg.layer_norm_eps;
    let heads = cfg.num_attention_heads;
    let mut log = Vec::new();
    let mut best: Option<Snapshot> = None;
    let mut step = 0usize;
    let mut order: Vec<usize> = (0..train_c.len()).collect();
    for epoch in 1..=opts.epochs {
        order.shuffle(&mut rng);
        let layers = build_layers(&layer_vars, lower, eps, false)?;
        let head = Linear {
            w: head_w.as_tensor().clone(),
            b: head_b.as_tensor().clone(),
        };
        let mut loss_sum = 0.0;
        for chunk in order.chunks(opts.batch_size.max(1)) {
            let items: Vec<&Cached> = chunk.iter().map(|&i| &train_c[i]).collect();
            let (x, mask) = pad_hidden(&items, h)?;
            let pooled = top_forward(&layers, &x, &mask, heads)?;
            let keep: Vec<f32> = (0..pooled.elem_count())
                .map(|_| {
                    if rng.random::<f32>() < DROPOUT {
                        0.0
                    } else {
                        1.0 / (1.0 - DROPOUT)
                    }
                })
                .collect();
            let keep = Tensor::from_vec(keep, pooled.shape(), &Device::Cpu)?;
            let pooled = (pooled * keep)?;
            let logits = head.forward(&pooled)?;
            let loss = loss_fn(&logits, &items, &hoax_mask, Some(&class_w))?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * items.len() as f64;
            let frac = 1.0 - step as f64 / total_steps as f64;
            opt_layers.set_learning_rate(opts.lr * frac);
            opt_head.set_learning_rate(opts.head_lr * frac);
            let grads = loss.backward()?;
            opt_layers.step(&grads)?;
            opt_head.step(&grads)?;
            step += 1;
        }
        let frozen = build_layers(&layer_vars, lower, eps, true)?;
        let head = Linear {
            w: head_w.as_tensor().detach(),
            b: head_b.as_tensor().detach(),
        };
        let (dev_loss, dev_auc) = if dev_c.is_empty() {
            (None, None)
        } else {
            let logits = dev_logits(&frozen, &head, &dev_c, heads)?;
            let items: Vec<&Cached> = dev_c.iter().collect();
            let loss = f64::from(loss_fn(&logits, &items, &hoax_mask, None)?.to_scalar::<f32>()?);
            let scores = hoax_scores(&logits, &hoax_mask, 1.0)?;
            let labels: Vec<bool> = dev_c.iter().map(|d| d.hoax).collect();
            (Some(loss), crate::metrics::roc_auc(&scores, &labels))
        };
        let entry = EpochLog {
            epoch,
            train_loss: loss_sum / train_c.len() as f64,
            dev_loss,
            dev_roc_auc: dev_auc,
        };
        tracing::info!(?entry, secs = start.elapsed().as_secs_f64(), "epoch done");
        log.push(entry);
        // Without a dev split the last epoch is kept.
        let metric = dev_loss.unwrap_or(-(epoch as f64));
        if best.as_ref().is_none_or(|b| metric < b.0) {
            let snap = frozen
                .iter()
                .map(|l| {
                    l.tensors().and_then(|ts| {
                        ts.map(|t| t.copy())
                            .into_iter()
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            best = Some((metric, epoch, snap, head.w.copy()?, head.b.copy()?));
        } else if best.as_ref().is_some_and(|b| epoch - b.1 >= opts.patience) {
            break;
        }
    }
    let (_, best_epoch, snap, hw, hb) = best.expect("at least one epoch");
    let head = Linear { w: hw, b: hb };
    let (temperature, threshold) = if dev_c.is_empty() {
        (1.0, no_dev_threshold(opts.threshold))
    } else {
        let mut tensors = HashMap::new();
        for (i, layer) in snap.iter().enumerate() {
            for (s, t) in LAYER_TENSORS.iter().zip(layer) {
                tensors.insert(format!("top.{}.{s}", lower + i), t.clone());
            }
        }
        let layers = (lower..n_layers)
            .map(|l| Layer::from_map(&tensors, &format!("top.{l}."), eps))
            .collect::<Result<Vec<_>, _>>()?;
        let logits = dev_logits(&layers, &head, &dev_c, heads)?;
        let t = fit_temperature(&logits, &dev_c, &hoax_mask)?;
        let scores = hoax_scores(&logits, &hoax_mask, f64::from(t))?;
        let hoax: Vec<bool> = dev_c.iter().map(|d| d.hoax).collect();
        let protected: Vec<bool> = dev_c.iter().map(|d| d.protected).collect();
        let choice = choose_threshold(
            &scores,
            &hoax,
            &protected,
            opts.max_protected_fpr,
            opts.threshold,
        );
        (t, choice)
    };

    let mut out_t: HashMap<String, Tensor> = HashMap::new();
    for (i, layer) in snap.into_iter().enumerate() {
        for (s, t) in LAYER_TENSORS.iter().zip(layer) {
            out_t.insert(format!("top.{}.{s}", lower + i), t);
        }
    }
    out_t.insert("head.weight".into(), head.w);
    out_t.insert("head.bias".into(), head.b);
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    candle_core::safetensors::save(&out_t, opts.out.join(WEIGHTS_FILE))?;
    let spec = ModelSpec {
        name: opts.name.clone(),
        version: opts.version.clone(),
        base_dir: relative_path(&opts.out, &opts.base_dir)?,
        text_prefix: PREFIX.into(),
        max_len,
        threshold: threshold.threshold,
        temperature,
        categories: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        disinformation_categories: DISINFO_CATEGORIES.iter().map(|s| s.to_string()).collect(),
        finetuned_layers: k,
        bos_id: bos,
        eos_id: eos,
        pad_id: pad,
        data_sha: Some(data_sha.clone()),
        stack: None,
        claims: None,
        encoder_layers: None,
        vocab: None,
        int8: false,
    };
    spec.save(&opts.out)?;
    let report = TrainReport {
        data_sha,
        train_examples: train_c.len(),
        train_per_source,
        dev_examples: dev_c.len(),
        test_examples_held_out: held_out,
        best_epoch,
        epochs: log,
        temperature,
        threshold,
        seconds: start.elapsed().as_secs_f64(),
        options: opts.clone(),
    };
    patroli_inference::write_json(&opts.out.join("train_report.json"), &report)?;
    Ok(report)
}

/// Keeps at most `cap` examples per (source, label), chosen by a stable
/// hash of the id so the subset does not depend on file order.
fn cap_per_source(examples: Vec<Example>, cap: Option<usize>) -> Vec<Example> {
    let Some(cap) = cap else {
        return examples;
    };
    let mut groups: BTreeMap<(String, u8), Vec<Example>> = BTreeMap::new();
    for e in examples {
        groups
            .entry((e.source.clone(), e.disinformation))
            .or_default()
            .push(e);
    }
    let mut out = Vec::new();
    for (_, mut g) in groups {
        g.sort_by_key(|e| (crate::data::split_hash(&e.id), e.id.clone()));
        g.truncate(cap);
        out.extend(g);
    }
    out
}

/// Runs the frozen layers once per example (or reads them from the cache
/// file) and keeps each output unpadded.
fn cache(
    net: &Network,
    text: &TextEncoder,
    examples: &[Example],
    lower: usize,
    file: Option<&Path>,
    opts: &TrainOptions,
) -> Result<Vec<Cached>, ModelError> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let states = lower_states(net, text, &texts, lower, file)?;
    let source_w = |e: &Example| opts.source_weights.get(&e.source).copied().unwrap_or(1.0);
    // Each label carries half the total weight, whatever the sources' mix.
    let mut label_w = [0.0f32; 2];
    for e in examples {
        label_w[usize::from(e.hoax())] += source_w(e);
    }
    let total = label_w[0] + label_w[1];
    Ok(states
        .into_iter()
        .zip(examples)
        .map(|(hidden, e)| Cached {
            hidden,
            category: e.category_index(),
            hoax: e.hoax(),
            protected: e.protected(),
            weight: source_w(e) * total / (2.0 * label_w[usize::from(e.hoax())]).max(1e-6),
        })
        .collect())
}

/// The lowest threshold (not below `opts.threshold`) that keeps the dev
/// false-positive rate on genuine news / official items within
/// `opts.max_protected_fpr`.
/// The lowest threshold (never below `floor`) at which at most `max_fpr` of
/// the protected dev items (genuine news / official) score at or above it.
pub(crate) fn choose_threshold(
    scores: &[f32],
    hoax: &[bool],
    protected: &[bool],
    max_fpr: f64,
    floor: f32,
) -> ThresholdChoice {
    let protected: Vec<f32> = scores
        .iter()
        .zip(protected)
        .filter(|(_, &p)| p)
        .map(|(s, _)| *s)
        .collect();
    let t = threshold_at_fpr(&protected, max_fpr).map_or(floor, |t| t.max(floor));
    let all = binary_counts(scores, hoax, t);
    let prot = binary_counts(&protected, &vec![false; protected.len()], t);
    ThresholdChoice {
        threshold: t,
        dev_protected: protected.len(),
        dev_protected_fpr: if protected.is_empty() {
            0.0
        } else {
            prot.fp as f64 / protected.len() as f64
        },
        dev_precision: all.precision(),
        dev_recall: all.recall(),
    }
}

fn no_dev_threshold(t: f32) -> ThresholdChoice {
    ThresholdChoice {
        threshold: t,
        dev_protected: 0,
        dev_protected_fpr: 0.0,
        dev_precision: 0.0,
        dev_recall: 0.0,
    }
}

/// `to` relative to the directory `from` (both may be relative to the
/// working directory), with '/' separators.
pub(crate) fn relative_path(from: &Path, to: &Path) -> Result<String, ModelError> {
    let abs = |p: &Path| -> Result<PathBuf, ModelError> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| ModelError::io(p, e))?
                .join(p)
        };
        // Lexical normalisation: the target dir may not exist yet.
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                c => out.push(c),
            }
        }
        Ok(out)
    };
    let (f, t) = (abs(from)?, abs(to)?);
    let fc: Vec<_> = f.components().collect();
    let tc: Vec<_> = t.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); fc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let r = relative_path(Path::new("/a/models/m"), Path::new("/a/models/base/e5")).unwrap();
        assert_eq!(r, "../base/e5");
        assert_eq!(
            relative_path(Path::new("/a/m"), Path::new("/a/m/base")).unwrap(),
            "base"
        );
        assert_eq!(
            relative_path(Path::new("/a/m/"), Path::new("/a/m/./x/../base")).unwrap(),
            "base"
        );
    }
}
