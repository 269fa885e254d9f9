//! The heads on top of the encoder: the category head (a hoax-mass score
//! with per-token attributions) and the stacked head (pooled vector, known-
//! claim match features and word n-grams), one batch at a time.

use candle_core::{DType, Device, Tensor, D};

use crate::bert::{packed_mean, starts, Packed};
use crate::claims::ClaimMatch;
use crate::classifier::{Classifier, Prediction};
use crate::ngram::term_frequencies;
use crate::stack::{tfidf, StackedHead};
use crate::text::Tokenized;
use crate::ModelError;

/// One batch through the encoder and the category head.
pub(crate) struct Forward {
    /// Final hidden states, packed `[T, H]`.
    pub hidden: Tensor,
    pub pooled: Tensor,
    /// Temperature-scaled category probabilities per post.
    pub probs: Vec<Vec<f32>>,
    /// Token count per post (the mean pool's divisor).
    pub lens: Vec<usize>,
    /// Each post's first row of `hidden`.
    pub starts: Vec<usize>,
}

impl Classifier {
    pub(crate) fn forward(&self, items: &[&Tokenized]) -> Result<Forward, ModelError> {
        let id_refs: Vec<&[u32]> = items.iter().map(|t| t.ids.as_slice()).collect();
        let batch = Packed::new(&id_refs)?;
        let hidden = self.net.lower(&batch, self.net.layers.len())?;
        let pooled = packed_mean(&hidden, &batch.lens)?;
        let logits = self.head.forward(&pooled)?;
        let probs = candle_nn::ops::softmax(&(logits / self.spec.temperature as f64)?, D::Minus1)?
            .to_vec2::<f32>()?;
        Ok(Forward {
            hidden,
            pooled,
            probs,
            starts: starts(&batch.lens),
            lens: batch.lens,
        })
    }

    pub(crate) fn hoax_mass(&self, probs: &[f32]) -> f32 {
        probs
            .iter()
            .zip(&self.disinfo)
            .filter(|(_, &d)| d)
            .map(|(p, _)| p)
            .sum::<f32>()
            .clamp(0.0, 1.0)
    }

    pub(crate) fn score_batch(&self, items: &[&Tokenized]) -> Result<Vec<Prediction>, ModelError> {
        let f = self.forward(items)?;
        match &self.stack {
            None => self.score_by_categories(items, &f),
            Some(stack) => self.score_stacked(stack, items, &f),
        }
    }

    fn score_by_categories(
        &self,
        items: &[&Tokenized],
        f: &Forward,
    ) -> Result<Vec<Prediction>, ModelError> {
        // Per-token logits without the bias: pooled logits are their mean plus the bias.
        let token_logits = self
            .head
            .forward(&f.hidden)?
            .broadcast_sub(&self.head.b)?
            .to_vec2::<f32>()?;
        let mut preds = Vec::with_capacity(items.len());
        for (i, (item, p)) in items.iter().zip(&f.probs).enumerate() {
            let score = self.hoax_mass(p);
            // d score / d logit_c = p_c (1[c is hoax] - score) / T.
            let grad: Vec<f32> = p
                .iter()
                .zip(&self.disinfo)
                .map(|(p, &d)| p * (f32::from(u8::from(d)) - score) / self.spec.temperature)
                .collect();
            let pushes: Vec<f32> = token_logits[f.starts[i]..][..f.lens[i]]
                .iter()
                .map(|tl| tl.iter().zip(&grad).map(|(a, g)| a * g).sum())
                .collect();
            let words = self.text.words(&item.pieces, &pushes);
            preds.push(self.prediction(score, p.clone(), words));
        }
        Ok(preds)
    }

    /// The stacked head's score; categories keep the category head's shares
    /// within each side (hoax / not), rescaled to the stacked score. A
    /// word's push is its tokens' share of the pooled logit term plus its
    /// n-grams' share of the n-gram term.
    fn score_stacked(
        &self,
        stack: &StackedHead,
        items: &[&Tokenized],
        f: &Forward,
    ) -> Result<Vec<Prediction>, ModelError> {
        let h = f.pooled.dim(1)?;
        let w = Tensor::from_vec(stack.pooled_weights(h), (h, 1), &Device::Cpu)?;
        let token_push = f
            .hidden
            .to_dtype(DType::F32)?
            .matmul(&w)?
            .squeeze(1)?
            .to_vec1::<f32>()?;
        let pooled = f.pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let (near, mut shown) = match &self.claims {
            Some(c) => {
                let index = c.snapshot();
                let near = index.nearest(&pooled, &|_, _| false)?;
                let shown: Vec<Vec<ClaimMatch>> = near
                    .iter()
                    .map(|n| index.shown(n, c.match_threshold))
                    .collect();
                (Some(near), shown)
            }
            None => (None, vec![Vec::new(); items.len()]),
        };
        let mut preds = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = f.lens[i] as f32;
            let pushes: Vec<f32> = token_push[f.starts[i]..][..f.lens[i]]
                .iter()
                .map(|p| p / n)
                .collect();
            let raw = self.read_words(item);
            let (sparse, norm) = tfidf(
                &stack.idf,
                &term_frequencies(raw.iter().map(String::as_str)),
            );
            let mut words = self.text.words(&item.pieces, &pushes);
            let base = self.hoax_mass(&f.probs[i]);
            let mut dense = pooled[i].clone();
            if let Some(near) = &near {
                dense.extend_from_slice(&near[i].features());
            }
            let score = stack.calibrated(stack.logit(&dense, &sparse));
            for (word, push) in &mut words {
                *push += stack.word_push(word, norm);
            }
            let probs = rescale(&f.probs[i], &self.disinfo, base, score);
            let mut p = self.prediction(score, probs, words);
            p.matches = std::mem::take(&mut shown[i]);
            preds.push(p);
        }
        Ok(preds)
    }
}

/// Category probabilities whose hoax mass was `from`, rescaled so that it
/// is `to` while each side keeps its internal shares (equal shares for a
/// side the category head gave nothing).
fn rescale(probs: &[f32], disinfo: &[bool], from: f32, to: f32) -> Vec<f32> {
    let side_size = |d: bool| disinfo.iter().filter(|&&x| x == d).count() as f32;
    probs
        .iter()
        .zip(disinfo)
        .map(|(&p, &d)| {
            let (side_from, side_to) = if d {
                (from, to)
            } else {
                (1.0 - from, 1.0 - to)
            };
            if side_from > 0.0 {
                p * side_to / side_from
            } else {
                side_to / side_size(d)
            }
        })
        .collect()
}

#[cfg(test)]
mod rescale_tests {
    #[test]
    fn rescaling_keeps_shares_and_sums_to_one() {
        let disinfo = [true, true, false];
        let r = super::rescale(&[0.3, 0.1, 0.6], &disinfo, 0.4, 0.8);
        let expected = [0.6, 0.2, 0.2];
        assert!(
            r.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{r:?}"
        );
        let r = super::rescale(&[0.0, 0.0, 1.0], &disinfo, 0.0, 0.5);
        assert_eq!(r, vec![0.25, 0.25, 0.5]);
    }
}
