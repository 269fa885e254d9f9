//! `patroli train`: fine-tunes the top encoder layers and an 11-way head on
//! the corpus train split, early-stops and calibrates on the dev split, never
//! reads the test split.
//!
//! The frozen lower layers run once per example (their outputs are cached),
//! so each epoch only costs the top layers' forward and backward passes.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::bert::{
    additive_mask, load_safetensors, mean_pool, BertConfig, Layer, Linear, LAYER_TENSORS,
};
use crate::classifier::{token_budget_batches, Network};
use crate::data::{load_examples, split_of, Example, Split, CATEGORIES, DISINFO_CATEGORIES};
use crate::spec::{ModelSpec, WEIGHTS_FILE};
use crate::text::TextEncoder;
use crate::ModelError;

const PREFIX: &str = "query: ";
const DROPOUT: f32 = 0.1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub threshold: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("models/data/corpus")],
            out: PathBuf::from("models/patroli-id-v1"),
            base_dir: PathBuf::from("models/base/multilingual-e5-small"),
            name: "patroli-id-v1".into(),
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
    pub train_examples: usize,
    pub dev_examples: usize,
    /// Test-split examples present in the data and left untouched.
    pub test_examples_held_out: usize,
    pub best_epoch: usize,
    pub epochs: Vec<EpochLog>,
    pub temperature: f32,
    pub seconds: f64,
    pub options: TrainOptions,
}

/// The best epoch so far: (dev loss, epoch, top layers' tensors, head w, head b).
type Snapshot = (f64, usize, Vec<Vec<Tensor>>, Tensor, Tensor);

struct Cached {
    hidden: Tensor,
    category: usize,
    hoax: bool,
}

/// Trains a model directory per `opts` and returns what happened.
pub fn train(opts: &TrainOptions) -> Result<TrainReport, ModelError> {
    let start = Instant::now();
    let examples = load_examples(&opts.data)?;
    let (mut train_ex, mut dev_ex, mut held_out) = (Vec::new(), Vec::new(), 0);
    for e in examples {
        match split_of(&e.narrative) {
            Split::Train => train_ex.push(e),
            Split::Dev => dev_ex.push(e),
            Split::Test => held_out += 1,
        }
    }
    if train_ex.is_empty() {
        return Err(ModelError::Data(
            "no training examples in the train split".into(),
        ));
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
    let text = TextEncoder::load(&tok_path, PREFIX, bos, eos, max_len)?;
    let n_layers = cfg.num_hidden_layers;
    let k = opts.finetune_layers.min(n_layers);
    let lower = n_layers - k;
    let net = Network::assemble(&cfg, &base, &HashMap::new(), 0, pad)?;

    tracing::info!(
        train = train_ex.len(),
        dev = dev_ex.len(),
        held_out,
        "caching lower layers"
    );
    let train_c = cache(&net, &text, &train_ex, lower)?;
    let dev_c = cache(&net, &text, &dev_ex, lower)?;
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
            let pooled = top_forward(&layers, &x, &mask, heads, true)?;
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
            let logits = dev_logits(&frozen, &head, &dev_c, heads, h)?;
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
                    l.tensors()
                        .map(|t| t.copy())
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            best = Some((metric, epoch, snap, head.w.copy()?, head.b.copy()?));
        } else if best.as_ref().is_some_and(|b| epoch - b.1 >= opts.patience) {
            break;
        }
    }
    let (_, best_epoch, snap, hw, hb) = best.expect("at least one epoch");
    let head = Linear { w: hw, b: hb };
    let temperature = if dev_c.is_empty() {
        1.0
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
        let logits = dev_logits(&layers, &head, &dev_c, heads, h)?;
        fit_temperature(&logits, &dev_c, &hoax_mask)?
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
        threshold: opts.threshold,
        temperature,
        categories: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        disinformation_categories: DISINFO_CATEGORIES.iter().map(|s| s.to_string()).collect(),
        finetuned_layers: k,
        bos_id: bos,
        eos_id: eos,
        pad_id: pad,
    };
    spec.save(&opts.out)?;
    let report = TrainReport {
        train_examples: train_c.len(),
        dev_examples: dev_c.len(),
        test_examples_held_out: held_out,
        best_epoch,
        epochs: log,
        temperature,
        seconds: start.elapsed().as_secs_f64(),
        options: opts.clone(),
    };
    let path = opts.out.join("train_report.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("report") + "\n",
    )
    .map_err(|e| ModelError::io(&path, e))?;
    Ok(report)
}

/// Runs the frozen layers once per example and keeps each output unpadded.
fn cache(
    net: &Network,
    text: &TextEncoder,
    examples: &[Example],
    lower: usize,
) -> Result<Vec<Cached>, ModelError> {
    let toks = examples
        .iter()
        .map(|e| text.encode(&e.text))
        .collect::<Result<Vec<_>, _>>()?;
    let lens: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
    let mut out: Vec<Option<Cached>> = (0..examples.len()).map(|_| None).collect();
    for batch in token_budget_batches(&lens) {
        let ids: Vec<&[u32]> = batch.iter().map(|&i| toks[i].ids.as_slice()).collect();
        let (ids_t, mask) = net.pad(&ids)?;
        let hidden = net.lower(&ids_t, &mask, lower)?;
        for (row, &i) in batch.iter().enumerate() {
            out[i] = Some(Cached {
                hidden: hidden.get(row)?.narrow(0, 0, lens[i])?.copy()?,
                category: examples[i].category_index(),
                hoax: examples[i].disinformation == 1,
            });
        }
    }
    Ok(out
        .into_iter()
        .map(|c| c.expect("every example cached"))
        .collect())
}

fn build_layers(
    vars: &[Vec<Var>],
    lower: usize,
    eps: f64,
    detach: bool,
) -> Result<Vec<Layer>, ModelError> {
    vars.iter()
        .enumerate()
        .map(|(i, vs)| {
            let prefix = format!("top.{}.", lower + i);
            let map: HashMap<String, Tensor> = LAYER_TENSORS
                .iter()
                .zip(vs)
                .map(|(s, v)| {
                    let t = if detach {
                        v.as_tensor().detach()
                    } else {
                        v.as_tensor().clone()
                    };
                    (format!("{prefix}{s}"), t)
                })
                .collect();
            Layer::from_map(&map, &prefix, eps)
        })
        .collect()
}

/// Zero-pads cached hidden states to [B, S, H] with a 0/1 mask [B, S].
fn pad_hidden(items: &[&Cached], h: usize) -> Result<(Tensor, Tensor), ModelError> {
    let s = items
        .iter()
        .map(|c| c.hidden.dim(0))
        .collect::<Result<Vec<_>, _>>()?;
    let max = s.iter().copied().max().unwrap_or(0);
    let mut rows = Vec::with_capacity(items.len());
    let mut mask = Vec::with_capacity(items.len() * max);
    for (c, &len) in items.iter().zip(&s) {
        let row = if len < max {
            Tensor::cat(
                &[
                    &c.hidden,
                    &Tensor::zeros((max - len, h), DType::F32, &Device::Cpu)?,
                ],
                0,
            )?
        } else {
            c.hidden.clone()
        };
        rows.push(row);
        mask.extend(std::iter::repeat_n(1u32, len));
        mask.extend(std::iter::repeat_n(0u32, max - len));
    }
    Ok((
        Tensor::stack(&rows, 0)?,
        Tensor::from_vec(mask, (items.len(), max), &Device::Cpu)?,
    ))
}

fn top_forward(
    layers: &[Layer],
    x: &Tensor,
    mask: &Tensor,
    heads: usize,
    differentiable: bool,
) -> Result<Tensor, ModelError> {
    let amask = additive_mask(mask)?;
    let mut x = x.clone();
    for l in layers {
        x = l.forward(&x, &amask, heads, differentiable)?;
    }
    Ok(mean_pool(&x, mask)?)
}

fn dev_logits(
    layers: &[Layer],
    head: &Linear,
    dev: &[Cached],
    heads: usize,
    h: usize,
) -> Result<Tensor, ModelError> {
    let lens: Vec<usize> = dev
        .iter()
        .map(|c| c.hidden.dim(0))
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Option<Tensor>> = vec![None; dev.len()];
    for batch in token_budget_batches(&lens) {
        let items: Vec<&Cached> = batch.iter().map(|&i| &dev[i]).collect();
        let (x, mask) = pad_hidden(&items, h)?;
        let pooled = top_forward(layers, &x, &mask, heads, false)?;
        let logits = head.forward(&pooled)?;
        for (r, &i) in batch.iter().enumerate() {
            rows[i] = Some(logits.get(r)?);
        }
    }
    let rows: Vec<Tensor> = rows.into_iter().map(|r| r.expect("all dev rows")).collect();
    Ok(Tensor::stack(&rows, 0)?)
}

/// Inverse-frequency category weights, square-rooted so rare categories
/// count more without a handful of examples dominating; mean weight 1.
fn class_weights(train: &[Cached]) -> Vec<f32> {
    let mut counts = vec![0usize; CATEGORIES.len()];
    for c in train {
        counts[c.category] += 1;
    }
    let present = counts.iter().filter(|&&n| n > 0).count().max(1);
    let raw: Vec<f32> = counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                (train.len() as f32 / (present * n) as f32).sqrt()
            }
        })
        .collect();
    let mean = train.iter().map(|c| raw[c.category]).sum::<f32>() / train.len().max(1) as f32;
    raw.iter().map(|w| w / mean.max(1e-6)).collect()
}

/// Category cross-entropy plus the binary log-loss of the hoax probability
/// mass (the score the model is judged on), optionally class-weighted.
fn loss_fn(
    logits: &Tensor,
    items: &[&Cached],
    hoax_mask: &Tensor,
    class_w: Option<&[f32]>,
) -> Result<Tensor, ModelError> {
    let (b, c) = logits.dims2()?;
    let mut onehot = vec![0f32; b * c];
    let mut weights = Vec::with_capacity(b);
    let mut y = Vec::with_capacity(b);
    for (i, it) in items.iter().enumerate() {
        onehot[i * c + it.category] = 1.0;
        weights.push(class_w.map_or(1.0, |w| w[it.category]));
        y.push(f32::from(u8::from(it.hoax)));
    }
    let dev = &Device::Cpu;
    let onehot = Tensor::from_vec(onehot, (b, c), dev)?;
    let w = Tensor::from_vec(weights, b, dev)?;
    let y = Tensor::from_vec(y, b, dev)?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let ce = (logp * onehot)?.sum(1)?.neg()?;
    let s = candle_nn::ops::softmax(logits, D::Minus1)?
        .broadcast_mul(hoax_mask)?
        .sum(1)?
        .clamp(1e-6f32, 1.0 - 1e-6)?;
    let bce = ((&y * s.log()?)? + ((1.0 - &y)? * (1.0 - &s)?.log()?)?)?.neg()?;
    let per = (ce + bce)?;
    Ok(((per * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?)
}

fn hoax_scores(logits: &Tensor, hoax_mask: &Tensor, t: f64) -> Result<Vec<f32>, ModelError> {
    Ok(candle_nn::ops::softmax(&(logits / t)?, D::Minus1)?
        .broadcast_mul(hoax_mask)?
        .sum(1)?
        .to_vec1::<f32>()?)
}

/// The temperature minimising the dev binary log-loss of the score,
/// searched on a grid (one parameter, a few hundred examples: a grid is
/// exact enough and cannot diverge).
fn fit_temperature(logits: &Tensor, dev: &[Cached], hoax_mask: &Tensor) -> Result<f32, ModelError> {
    let mut best = (f64::INFINITY, 1.0f32);
    for i in 0..=90 {
        let t = 0.5 + 0.05 * i as f32;
        let scores = hoax_scores(logits, hoax_mask, f64::from(t))?;
        let nll: f64 = scores
            .iter()
            .zip(dev)
            .map(|(&s, d)| {
                let s = f64::from(s).clamp(1e-7, 1.0 - 1e-7);
                if d.hoax {
                    -s.ln()
                } else {
                    -(1.0 - s).ln()
                }
            })
            .sum();
        if nll < best.0 {
            best = (nll, t);
        }
    }
    Ok(best.1)
}

/// `to` relative to the directory `from` (both may be relative to the
/// working directory), with '/' separators.
fn relative_path(from: &Path, to: &Path) -> Result<String, ModelError> {
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
