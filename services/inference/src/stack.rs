//! The stacked head: one logistic regression over two views of a post, the
//! encoder's (its mean-pooled final hidden states) and the character n-grams
//! of the words it read.
//!
//! Why: the encoder, fine-tuned on what two CPU cores allow, and a
//! char-n-gram model each miss what the other catches (spelling variants,
//! names and scam vocabulary vs paraphrase and context); one linear layer
//! over both, trained on every labelled row, beats either alone on every
//! held-out source we measured (MODEL_CARD.md of the first model using it).
//! It costs a hash per character n-gram and one dot product per post.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::ngram::{word_buckets, BUCKETS};
use crate::ModelError;

/// Sparse n-gram features from term frequencies (`term_frequencies`):
/// TF-IDF, L2-normalised, sorted by bucket, and the norm divided by (which
/// `StackedHead::word_push` needs).
pub fn tfidf(idf: &[f32], tf: &[(u32, f32)]) -> (Vec<(u32, f32)>, f32) {
    let mut x: Vec<(u32, f32)> = tf
        .iter()
        .map(|&(b, v)| (b, v * idf[b as usize]))
        .filter(|&(_, v)| v != 0.0)
        .collect();
    let norm = x.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        x.iter_mut().for_each(|(_, v)| *v /= norm);
    }
    (x, norm)
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackedHead {
    /// Per bucket; 0 for n-grams too rare in training to weigh.
    pub idf: Vec<f32>,
    pub w_sparse: Vec<f32>,
    /// Weights on the standardised pooled hidden state.
    pub w_dense: Vec<f32>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub bias: f32,
    /// Platt scaling fitted on dev: score = sigmoid(a * logit + b).
    pub platt: (f32, f32),
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl StackedHead {
    pub fn logit(&self, pooled: &[f32], sparse: &[(u32, f32)]) -> f32 {
        let d: f32 = pooled
            .iter()
            .zip(&self.mean)
            .zip(&self.std)
            .zip(&self.w_dense)
            .map(|(((x, m), s), w)| w * (x - m) / s)
            .sum();
        let s: f32 = sparse
            .iter()
            .map(|&(b, v)| self.w_sparse[b as usize] * v)
            .sum();
        d + s + self.bias
    }

    pub fn calibrated(&self, logit: f32) -> f32 {
        sigmoid(self.platt.0 * logit + self.platt.1)
    }

    /// Each pooled dimension's weight in the logit: a token's push is this
    /// dotted with its final hidden state, over the token count.
    pub fn pooled_weights(&self, hidden: usize) -> Vec<f32> {
        self.w_dense[..hidden]
            .iter()
            .zip(&self.std)
            .map(|(w, s)| w / s)
            .collect()
    }

    /// A word's n-grams' push on the logit in a text whose n-gram vector had
    /// norm `norm` before normalising (`tfidf`; first order: repeats within
    /// the text are not discounted).
    pub fn word_push(&self, word: &str, norm: f32) -> f32 {
        if norm == 0.0 {
            return 0.0;
        }
        word_buckets(word)
            .into_iter()
            .map(|b| self.w_sparse[b as usize] * self.idf[b as usize])
            .sum::<f32>()
            / norm
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let dev = Device::Cpu;
        let v = |x: &[f32]| Tensor::from_slice(x, x.len(), &dev);
        let mut t = HashMap::new();
        t.insert("idf".to_string(), v(&self.idf)?);
        t.insert("w_sparse".to_string(), v(&self.w_sparse)?);
        t.insert("w_dense".to_string(), v(&self.w_dense)?);
        t.insert("mean".to_string(), v(&self.mean)?);
        t.insert("std".to_string(), v(&self.std)?);
        t.insert(
            "scalars".to_string(),
            v(&[self.bias, self.platt.0, self.platt.1])?,
        );
        candle_core::safetensors::save(&t, path)?;
        Ok(())
    }

    /// Loads a head whose dense input has `hidden` values (the pooled
    /// state, then any match features).
    pub fn load(path: &Path, hidden: usize) -> Result<Self, ModelError> {
        let t = crate::weights_file::load_safetensors(path)?;
        let get = |n: &str, len: usize| -> Result<Vec<f32>, ModelError> {
            let v = t
                .get(n)
                .ok_or_else(|| ModelError::Format(format!("{}: no tensor {n}", path.display())))?
                .to_vec1::<f32>()?;
            if v.len() != len {
                return Err(ModelError::Format(format!(
                    "{}: {n} has {} values, expected {len}",
                    path.display(),
                    v.len()
                )));
            }
            Ok(v)
        };
        let scalars = get("scalars", 3)?;
        let std = get("std", hidden)?;
        if std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return Err(ModelError::Format(format!(
                "{}: std must be positive",
                path.display()
            )));
        }
        Ok(Self {
            idf: get("idf", BUCKETS)?,
            w_sparse: get("w_sparse", BUCKETS)?,
            w_dense: get("w_dense", hidden)?,
            mean: get("mean", hidden)?,
            std,
            bias: scalars[0],
            platt: (scalars[1], scalars[2]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngram::term_frequencies;

    fn head() -> StackedHead {
        let mut idf = vec![0.0; BUCKETS];
        let mut w_sparse = vec![0.0; BUCKETS];
        for b in word_buckets("hoaks") {
            idf[b as usize] = 2.0;
            w_sparse[b as usize] = 0.5;
        }
        StackedHead {
            idf,
            w_sparse,
            w_dense: vec![1.0, 0.0],
            mean: vec![0.5, 0.0],
            std: vec![0.5, 1.0],
            bias: -1.0,
            platt: (1.0, 0.0),
        }
    }

    #[test]
    fn logit_sums_standardised_dense_sparse_and_bias() {
        let h = head();
        let dense = [1.5, 7.0];
        assert_eq!(h.logit(&dense, &[]), 2.0 + 0.0 - 1.0);
        let (sparse, norm_before) = tfidf(&h.idf, &term_frequencies(["hoaks", "kpu"]));
        let norm: f32 = sparse.iter().map(|(_, v)| v * v).sum::<f32>();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        // Only "hoaks" has weight: its grams are all of the vector.
        let expected = 1.0 + 0.5 * sparse.iter().map(|(_, v)| v).sum::<f32>();
        assert!((h.logit(&dense, &sparse) - expected).abs() < 1e-5);
        let push = h.word_push("hoaks", norm_before);
        assert!((push - 0.5 * sparse.iter().map(|(_, v)| v).sum::<f32>()).abs() < 1e-4);
        assert_eq!(h.word_push("kpu", 1.0), 0.0);
    }

    #[test]
    fn saves_and_loads_exactly_and_refuses_a_wrong_width() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stack.safetensors");
        let h = head();
        h.save(&path).unwrap();
        assert_eq!(StackedHead::load(&path, 2).unwrap(), h);
        let err = StackedHead::load(&path, 3).unwrap_err().to_string();
        assert!(err.contains("std has 2 values, expected 3"), "{err}");
    }
}
