//! A loaded model's serving interface: tokenize, score a batch, explain,
//! and edit the claim archive it searches.

use candle_core::DType;
use std::collections::BTreeMap;

use crate::archive::ClaimArchive;
use crate::bert::Linear;
use crate::budget::in_batches;
use crate::claims::{Claim, ClaimMatch};
use crate::network::Network;
use crate::spec::ModelSpec;
use crate::stack::StackedHead;
use crate::text::{TextEncoder, Tokenized};
use crate::ModelError;

#[derive(Debug, Clone, Default)]
pub struct InferenceOptions {
    /// Token limit incl. special tokens; longer texts are truncated. 0 means
    /// the model's own `max_len`.
    pub max_len: usize,
    /// Compute threads of this model (see `Classifier::load`); `None`: the
    /// `RAYON_NUM_THREADS` environment variable if set, else the CPU quota.
    pub threads: Option<usize>,
    /// Run the encoder's projections in int8 (`int8.rs`, on CPUs with
    /// AVX-512 VNNI) or f32; `None` as the model's spec says. An int8
    /// encoder keeps no f32 weights, so training from one needs `Some(false)`.
    pub int8: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub threshold: f32,
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Calibrated P(disinformation): the summed probability of the hoax categories.
    pub score: f32,
    /// `score >= threshold`.
    pub label: bool,
    /// Most probable category.
    pub category: String,
    pub categories: BTreeMap<String, f32>,
    /// Up to five words of the post that most support the decision: for a
    /// hoax label those pushing the score up most, otherwise those pushing
    /// it down most. A word's push is its share of the head's input (final
    /// hidden states, which mean pooling sums linearly) projected on the
    /// score's gradient with respect to the logits: a first-order
    /// attribution, exact for the linear head, free to compute. Empty only
    /// for texts without letters or digits.
    pub top_tokens: Vec<String>,
    /// Known claims the post resembles at or above the model's match
    /// threshold, most similar first (empty without a claim archive).
    pub matches: Vec<ClaimMatch>,
}

/// A loaded model. Scoring runs on the model's own compute threads (see
/// [`Classifier::load`]); the claim archive is read as a snapshot, so edits
/// never hold scoring up (see `archive.rs`).
pub struct Classifier {
    pub(crate) net: Network,
    pub(crate) head: Linear,
    pub(crate) stack: Option<StackedHead>,
    pub(crate) claims: Option<ClaimArchive>,
    pub(crate) text: TextEncoder,
    pub(crate) spec: ModelSpec,
    pub(crate) info: ModelInfo,
    pub(crate) disinfo: Vec<bool>,
    pub(crate) pool: std::sync::Arc<rayon::ThreadPool>,
}

impl Classifier {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Tokens fed to the encoder for `text` (after truncation, incl. specials).
    pub fn token_count(&self, text: &str) -> usize {
        self.text.encode(text).map(|t| t.ids.len()).unwrap_or(2)
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Every piece id of `text`, untruncated (which pieces a text uses).
    pub fn all_piece_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.text.all_ids(text)
    }

    /// The encoder's input for `text`, to be scored later with
    /// [`Classifier::score_tokenized`] without tokenizing again.
    pub fn tokenize(&self, text: &str) -> Result<Tokenized, ModelError> {
        self.text.encode(text)
    }

    /// Scores posts tokenized by [`Classifier::tokenize`] in one forward
    /// pass: the caller formed the batch (see [`TokenBudget`]).
    pub fn score_tokenized(&self, items: &[&Tokenized]) -> Result<Vec<Prediction>, ModelError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| self.score_batch(items))
    }

    pub fn score(&self, texts: &[&str]) -> Result<Vec<Prediction>, ModelError> {
        let toks = texts
            .iter()
            .map(|t| self.text.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.pool
            .install(|| in_batches(&toks, |items| self.score_batch(items)))
    }

    /// The compute threads scoring runs on.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Adds claims to the archive (or replaces those of the same id),
    /// embedding each claim's text with this model's encoder; returns the
    /// archive's size. A model without an archive refuses. Posts scored
    /// meanwhile see the archive before or after the whole change.
    pub fn upsert_claims(&self, claims: Vec<Claim>) -> Result<usize, ModelError> {
        let archive = self.archive()?;
        let toks = claims
            .iter()
            .map(|c| match &c.text {
                Some(t) if !t.trim().is_empty() => self.text.encode(t),
                _ => Err(ModelError::Data(format!(
                    "claim {} has no text to match",
                    c.id
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vectors = in_batches(&toks, |items| self.pooled(items))?;
        archive.edit(|index| {
            for (c, v) in claims.into_iter().zip(vectors) {
                index.upsert(c, &v)?;
            }
            Ok(index.len())
        })
    }

    /// Removes claims from the archive (the search matrix is rebuilt once);
    /// returns how many were there.
    pub fn remove_claims(&self, ids: &[String]) -> Result<usize, ModelError> {
        self.archive()?
            .edit(|index| Ok(ids.iter().filter(|id| index.remove(id)).count()))
    }

    /// Claims in the archive; `None` for a model without one.
    pub fn claim_count(&self) -> Option<usize> {
        self.claims.as_ref().map(|c| c.snapshot().len())
    }

    fn archive(&self) -> Result<&ClaimArchive, ModelError> {
        self.claims.as_ref().ok_or_else(|| {
            ModelError::Format(format!("model {} has no claim archive", self.info.name))
        })
    }

    /// The mean-pooled final hidden states of each post: the stacked
    /// head's encoder view (training reads it).
    pub fn pooled(&self, items: &[&Tokenized]) -> Result<Vec<Vec<f32>>, ModelError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            Ok(self
                .forward(items)?
                .pooled
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?)
        })
    }

    /// The words the n-gram view reads (punctuation kept).
    pub fn read_words(&self, item: &Tokenized) -> Vec<String> {
        self.text.raw_words(item)
    }
}
