//! The tensor pieces of training: padding cached states, the top layers'
//! forward pass, the loss, scores and temperature.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::data::CATEGORIES;
use crate::train::Cached;
use crate::ModelError;
use patroli_inference::bert::{
    additive_mask, mean_pool, packed_mean, Layer, Linear, LAYER_TENSORS,
};
use patroli_inference::token_budget_batches;

pub(crate) fn build_layers(
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
pub(crate) fn pad_hidden(items: &[&Cached], h: usize) -> Result<(Tensor, Tensor), ModelError> {
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

/// The training pass: padded `[B, S, H]` states through `layers` with
/// candle's differentiable ops, mean-pooled over real tokens.
pub(crate) fn top_forward(
    layers: &[Layer],
    x: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> Result<Tensor, ModelError> {
    let additive = additive_mask(mask)?;
    let mut x = x.clone();
    for l in layers {
        x = l.forward_padded(&x, &additive, heads)?;
    }
    Ok(mean_pool(&x, mask)?)
}

/// The inference pass of packed `[T, H]` states (post `i` having `lens[i]`
/// rows) through `layers`, mean-pooled per post: `[B, H]`.
pub(crate) fn top_pooled(
    layers: &[Layer],
    x: Tensor,
    lens: &[usize],
    heads: usize,
) -> Result<Tensor, ModelError> {
    let mut x = x;
    for l in layers {
        x = l.forward_packed(&x, lens, heads)?;
    }
    Ok(packed_mean(&x, lens)?)
}

pub(crate) fn dev_logits(
    layers: &[Layer],
    head: &Linear,
    dev: &[Cached],
    heads: usize,
) -> Result<Tensor, ModelError> {
    let lens: Vec<usize> = dev
        .iter()
        .map(|c| c.hidden.dim(0))
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Option<Tensor>> = vec![None; dev.len()];
    for batch in token_budget_batches(&lens) {
        let states: Vec<&Tensor> = batch.iter().map(|&i| &dev[i].hidden).collect();
        let batch_lens: Vec<usize> = batch.iter().map(|&i| lens[i]).collect();
        let pooled = top_pooled(layers, Tensor::cat(&states, 0)?, &batch_lens, heads)?;
        let logits = head.forward(&pooled)?;
        for (r, &i) in batch.iter().enumerate() {
            rows[i] = Some(logits.get(r)?);
        }
    }
    let rows: Vec<Tensor> = rows.into_iter().map(|r| r.expect("all dev rows")).collect();
    Ok(Tensor::stack(&rows, 0)?)
}

/// Inverse-frequency category weights over the examples that have a
/// category, square-rooted so rare categories count more without a handful
/// of examples dominating; mean weight 1 over those examples.
pub(crate) fn class_weights(train: &[Cached]) -> Vec<f32> {
    let mut counts = vec![0usize; CATEGORIES.len()];
    for c in train.iter().filter_map(|c| c.category) {
        counts[c] += 1;
    }
    let n: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&n| n > 0).count().max(1);
    let raw: Vec<f32> = counts
        .iter()
        .map(|&k| {
            if k == 0 {
                0.0
            } else {
                (n as f32 / (present * k) as f32).sqrt()
            }
        })
        .collect();
    let mean = counts
        .iter()
        .zip(&raw)
        .map(|(&k, w)| k as f32 * w)
        .sum::<f32>()
        / n.max(1) as f32;
    raw.iter().map(|w| w / mean.max(1e-6)).collect()
}

/// Binary log-loss of the hoax probability mass (the score the model is
/// judged on) plus, for examples with a category, the category
/// cross-entropy; weighted by source and, when given, by category.
pub(crate) fn loss_fn(
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
        let mut w = 1.0;
        if let Some(cat) = it.category {
            onehot[i * c + cat] = 1.0;
            w = class_w.map_or(1.0, |cw| cw[cat]);
        }
        weights.push(w * class_w.map_or(1.0, |_| it.weight));
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

pub(crate) fn hoax_scores(
    logits: &Tensor,
    hoax_mask: &Tensor,
    t: f64,
) -> Result<Vec<f32>, ModelError> {
    Ok(candle_nn::ops::softmax(&(logits / t)?, D::Minus1)?
        .broadcast_mul(hoax_mask)?
        .sum(1)?
        .to_vec1::<f32>()?)
}

/// The temperature minimising the dev binary log-loss of the score,
/// searched on a grid (one parameter, a few hundred examples: a grid is
/// exact enough and cannot diverge).
pub(crate) fn fit_temperature(
    logits: &Tensor,
    dev: &[Cached],
    hoax_mask: &Tensor,
) -> Result<f32, ModelError> {
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
