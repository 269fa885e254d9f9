//! Inference: load a model directory and score posts in token-budget
//! batches laid end to end (`Packed`: no padding is computed).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::RwLock;

use candle_core::{DType, Device, Tensor, D};

use crate::bert::{
    load_rows, load_safetensors, load_safetensors_as, packed_mean, starts, BertConfig, Embeddings,
    Layer, Linear, Packed,
};
use crate::claims::{Claim, ClaimIndex, MATCH_FEATURES};
use crate::int8::Int8Linear;
use crate::ngram::term_frequencies;
use crate::spec::{ModelSpec, WEIGHTS_FILE};
use crate::stack::{tfidf, StackedHead};
use crate::text::{TextEncoder, Tokenized};
use crate::vocab::read_vocab;
use crate::ModelError;
use patroli_contracts::MatchedClaim;

const TOP_TOKENS: usize = 5;

/// How big one forward pass may be. Inference packs a batch end to end, so
/// its cost is the sum of its posts' tokens; this is the one rule every
/// batcher (offline scoring, training, the classifier service) follows.
/// (Training pads, but over length-sorted batches, where padding is small.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    pub max_posts: usize,
    /// Tokens per forward pass, summed over its posts.
    pub max_tokens: usize,
}

impl TokenBudget {
    /// Larger batches stop paying off on CPU beyond a few thousand tokens
    /// and only add latency and memory.
    pub const DEFAULT: TokenBudget = TokenBudget {
        max_posts: 32,
        max_tokens: 2048,
    };

    /// Whether `posts` posts of `tokens` tokens in all fit one pass. A
    /// single post always fits, so an oversized one cannot block a queue.
    pub fn fits(&self, posts: usize, tokens: usize) -> bool {
        posts <= 1 || (posts <= self.max_posts && tokens <= self.max_tokens)
    }
}

impl Default for TokenBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, Default)]
pub struct InferenceOptions {
    /// Token limit incl. special tokens; longer texts are truncated. 0 means
    /// the model's own `max_len`.
    pub max_len: usize,
    /// Compute threads (process-wide, see `Classifier::load`); `None` sizes
    /// them from the CPU quota.
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
    pub matches: Vec<MatchedClaim>,
}

/// The claim archive a model reads, changed while it runs (`claims.v1`).
struct Claims {
    index: RwLock<ClaimIndex>,
    match_threshold: f32,
}

/// The encoder; shared by inference and training.
pub(crate) struct Network {
    pub emb: Embeddings,
    pub layers: Vec<Layer>,
    pub heads: usize,
    pub pad_id: u32,
}

/// Where the base encoder's layers come from.
#[derive(Clone, Copy)]
pub(crate) enum BaseLayers<'a> {
    /// In the map of base tensors handed to `Network::assemble`.
    InMap,
    /// Read from this weights file one layer at a time as the network is
    /// assembled: an int8 encoder then never holds all its f32 layers at
    /// once (each is freed once quantised), which lowers the loading peak.
    File(&'a Path),
}

impl Network {
    /// Base encoder (embeddings from `base`, layers as `base_layers` says)
    /// with its top `finetuned` layers taken from `trained` (names
    /// `top.<layer>.<hf suffix>`).
    pub fn assemble(
        cfg: &BertConfig,
        base: &HashMap<String, Tensor>,
        base_layers: BaseLayers<'_>,
        trained: &HashMap<String, Tensor>,
        finetuned: usize,
        pad_id: u32,
        int8: bool,
    ) -> Result<Self, ModelError> {
        let n = cfg.num_hidden_layers;
        if finetuned > n {
            return Err(ModelError::Format(format!(
                "{finetuned} fine-tuned layers but the encoder has {n}"
            )));
        }
        let eps = cfg.layer_norm_eps;
        if int8 && !Int8Linear::supported() {
            // An operator sizing pods from the model card's int8 figures
            // needs to know this node runs about three times slower.
            tracing::warn!(
                "this CPU lacks AVX-512 VNNI: the model's int8 projections run in f32 \
                 (same weights, about 3x slower; see the model card)"
            );
        }
        let layers = (0..n)
            .map(|l| {
                let layer = if l >= n - finetuned {
                    Layer::from_map(trained, &format!("top.{l}."), eps)?
                } else {
                    let prefix = format!("encoder.layer.{l}.");
                    match base_layers {
                        BaseLayers::InMap => Layer::from_map(base, &prefix, eps)?,
                        BaseLayers::File(path) => {
                            let this_layer = load_safetensors_as(path, |name| {
                                name.starts_with(&prefix).then_some(DType::F32)
                            })?;
                            Layer::from_map(&this_layer, &prefix, eps)?
                        }
                    }
                };
                Ok(layer.prepare_for_inference(int8)?)
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            emb: Embeddings::from_map(base, eps)?,
            layers,
            heads: cfg.num_attention_heads,
            pad_id,
        })
    }

    /// Pads a batch for the training path: ids [B, S] and a 0/1 mask [B, S].
    pub fn pad(&self, batch: &[&[u32]]) -> Result<(Tensor, Tensor), ModelError> {
        let s = batch.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * s);
        let mut mask = Vec::with_capacity(batch.len() * s);
        for t in batch {
            ids.extend_from_slice(t);
            ids.extend(std::iter::repeat_n(self.pad_id, s - t.len()));
            mask.extend(std::iter::repeat_n(1u32, t.len()));
            mask.extend(std::iter::repeat_n(0u32, s - t.len()));
        }
        let dev = Device::Cpu;
        Ok((
            Tensor::from_vec(ids, (batch.len(), s), &dev)?,
            Tensor::from_vec(mask, (batch.len(), s), &dev)?,
        ))
    }

    /// Hidden states `[T, H]` of a packed batch after layers `[0, upto)`.
    pub fn lower(&self, batch: &Packed, upto: usize) -> Result<Tensor, ModelError> {
        let mut x = self.emb.forward(&batch.ids, &batch.positions)?;
        for layer in &self.layers[..upto] {
            x = layer.forward_packed(&x, &batch.lens, self.heads)?;
        }
        Ok(x)
    }
}

/// One batch through the encoder and the category head.
struct Forward {
    /// Final hidden states, packed `[T, H]`.
    hidden: Tensor,
    pooled: Tensor,
    /// Temperature-scaled category probabilities per post.
    probs: Vec<Vec<f32>>,
    /// Token count per post (the mean pool's divisor).
    lens: Vec<usize>,
    /// Each post's first row of `hidden`.
    starts: Vec<usize>,
}

pub struct Classifier {
    net: Network,
    head: Linear,
    stack: Option<StackedHead>,
    claims: Option<Claims>,
    text: TextEncoder,
    spec: ModelSpec,
    info: ModelInfo,
    disinfo: Vec<bool>,
}

impl Classifier {
    /// Loads `model_dir` (see `ModelSpec`) and its base encoder. Sets the
    /// process-wide compute thread count (`RAYON_NUM_THREADS`, which candle's
    /// matmuls read) to `opts.threads` or the CPU quota, unless already set.
    pub fn load(model_dir: &Path, opts: &InferenceOptions) -> Result<Self, ModelError> {
        configure_threads(opts.threads);
        let spec = ModelSpec::load(model_dir)?;
        let base_dir = spec.resolve_base_dir(model_dir);
        let mut cfg = BertConfig::load(&base_dir.join("config.json"))?;
        if let Some(layers) = spec.encoder_layers {
            cfg.num_hidden_layers = layers;
        }
        let vocab = spec
            .vocab
            .as_ref()
            .map(|f| read_vocab(&model_dir.join(f)))
            .transpose()?;
        let weights = base_dir.join("model.safetensors");
        let mut base = load_safetensors_as(&weights, |name| {
            if vocab.is_some() && name == WORD_EMBEDDINGS {
                return None;
            }
            embedding_dtype(name)
        })?;
        if let Some(keep) = &vocab {
            let rows = load_rows(&weights, WORD_EMBEDDINGS, keep, DType::F16)?;
            base.insert(WORD_EMBEDDINGS.to_string(), rows);
        }
        let trained = load_safetensors(&model_dir.join(WEIGHTS_FILE))?;
        let net = Network::assemble(
            &cfg,
            &base,
            BaseLayers::File(&weights),
            &trained,
            spec.finetuned_layers,
            spec.pad_id,
            opts.int8.unwrap_or(spec.int8),
        )?;
        let head = load_head(&trained, cfg.hidden_size, spec.categories.len())?;
        // The weights file's tensors (the f32 layers an int8 encoder has
        // quantised) go before the claim archive loads: a lower loading peak.
        drop((base, trained));
        let claims = match (&spec.claims, &spec.stack) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ModelError::Format(format!(
                    "{}: a claim archive needs a stacked head to read it",
                    model_dir.display()
                )))
            }
            (Some(c), Some(_)) => {
                let mut index = ClaimIndex::load(model_dir, &c.archive)?;
                if index.dim() != cfg.hidden_size {
                    return Err(ModelError::Format(format!(
                        "{}: claim vectors have {} values, the encoder {}",
                        model_dir.display(),
                        index.dim(),
                        cfg.hidden_size
                    )));
                }
                index.prepare()?;
                Some(Claims {
                    index: RwLock::new(index),
                    match_threshold: c.match_threshold,
                })
            }
        };
        let dense_width = cfg.hidden_size + if claims.is_some() { MATCH_FEATURES } else { 0 };
        let stack = spec
            .stack
            .as_ref()
            .map(|f| StackedHead::load(&model_dir.join(f), dense_width))
            .transpose()?;
        let max_len = match opts.max_len {
            0 => spec.max_len,
            n => n,
        }
        .min(cfg.max_position_embeddings);
        let text = TextEncoder::load(
            &base_dir.join("tokenizer.json"),
            vocab.as_deref(),
            &spec.text_prefix,
            spec.bos_id,
            spec.eos_id,
            max_len,
        )?;
        let info = ModelInfo {
            name: spec.name.clone(),
            version: spec.version.clone(),
            threshold: spec.threshold,
            categories: spec.categories.clone(),
        };
        let disinfo = spec
            .categories
            .iter()
            .map(|c| spec.disinformation_categories.contains(c))
            .collect();
        Ok(Self {
            net,
            head,
            stack,
            claims,
            text,
            spec,
            info,
            disinfo,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Tokens fed to the encoder for `text` (after truncation, incl. specials).
    pub fn token_count(&self, text: &str) -> usize {
        self.text.encode(text).map(|t| t.ids.len()).unwrap_or(2)
    }

    pub(crate) fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub(crate) fn network(&self) -> &Network {
        &self.net
    }

    /// Every piece id of `text`, untruncated (which pieces a text uses).
    pub(crate) fn all_piece_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
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
        self.score_batch(items)
    }

    pub fn score(&self, texts: &[&str]) -> Result<Vec<Prediction>, ModelError> {
        let toks = texts
            .iter()
            .map(|t| self.text.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        in_batches(&toks, |items| self.score_batch(items))
    }

    fn forward(&self, items: &[&Tokenized]) -> Result<Forward, ModelError> {
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

    fn hoax_mass(&self, probs: &[f32]) -> f32 {
        probs
            .iter()
            .zip(&self.disinfo)
            .filter(|(_, &d)| d)
            .map(|(p, _)| p)
            .sum::<f32>()
            .clamp(0.0, 1.0)
    }

    /// Adds claims to the archive (or replaces those of the same id),
    /// embedding each claim's text with this model's encoder; returns the
    /// archive's size. A model without an archive refuses.
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
        let mut index = archive.index.write().expect("claim index lock");
        for (c, v) in claims.into_iter().zip(vectors) {
            index.upsert(c, &v)?;
        }
        index.prepare()?;
        Ok(index.len())
    }

    /// Removes claims from the archive (the search matrix is rebuilt once);
    /// returns how many were there.
    pub fn remove_claims(&self, ids: &[String]) -> Result<usize, ModelError> {
        let mut index = self.archive()?.index.write().expect("claim index lock");
        let removed = ids.iter().filter(|id| index.remove(id)).count();
        index.prepare()?;
        Ok(removed)
    }

    /// Claims in the archive; `None` for a model without one.
    pub fn claim_count(&self) -> Option<usize> {
        self.claims
            .as_ref()
            .map(|c| c.index.read().expect("claim index lock").len())
    }

    fn archive(&self) -> Result<&Claims, ModelError> {
        self.claims.as_ref().ok_or_else(|| {
            ModelError::Format(format!("model {} has no claim archive", self.info.name))
        })
    }

    /// The mean-pooled final hidden states of each post: the stacked
    /// head's encoder view (training reads it).
    pub(crate) fn pooled(&self, items: &[&Tokenized]) -> Result<Vec<Vec<f32>>, ModelError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .forward(items)?
            .pooled
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?)
    }

    /// The words the n-gram view reads (punctuation kept).
    pub(crate) fn read_words(&self, item: &Tokenized) -> Vec<String> {
        self.text.raw_words(item)
    }

    fn score_batch(&self, items: &[&Tokenized]) -> Result<Vec<Prediction>, ModelError> {
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
                let index = c.index.read().expect("claim index lock");
                let near = index.nearest(&pooled, &|_, _| false)?;
                let shown: Vec<Vec<MatchedClaim>> = near
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

    fn prediction(&self, score: f32, probs: Vec<f32>, mut words: Vec<(String, f32)>) -> Prediction {
        let label = score >= self.spec.threshold;
        // Words supporting the decision first: up for a hoax label, down otherwise.
        let side = if label { 1.0 } else { -1.0 };
        words.sort_by(|a, b| (side * b.1).total_cmp(&(side * a.1)));
        let mut top_tokens: Vec<String> = Vec::new();
        for (w, _) in words {
            if top_tokens.len() == TOP_TOKENS {
                break;
            }
            if !top_tokens
                .iter()
                .any(|t| t.to_lowercase() == w.to_lowercase())
            {
                top_tokens.push(w);
            }
        }
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        Prediction {
            score,
            label,
            category: self.spec.categories[best].clone(),
            categories: self.spec.categories.iter().cloned().zip(probs).collect(),
            top_tokens,
            matches: Vec::new(),
        }
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

/// `f`'s outputs for `toks`, run in token-budget batches, in input order.
fn in_batches<T>(
    toks: &[Tokenized],
    mut f: impl FnMut(&[&Tokenized]) -> Result<Vec<T>, ModelError>,
) -> Result<Vec<T>, ModelError> {
    let mut out: Vec<Option<T>> = toks.iter().map(|_| None).collect();
    for batch in token_budget_batches(&toks.iter().map(|t| t.ids.len()).collect::<Vec<_>>()) {
        let items: Vec<&Tokenized> = batch.iter().map(|&i| &toks[i]).collect();
        for (&i, x) in batch.iter().zip(f(&items)?) {
            out[i] = Some(x);
        }
    }
    Ok(out
        .into_iter()
        .map(|x| x.expect("every input is in one batch"))
        .collect())
}

/// Groups item indices into batches of similar length (so that training,
/// which pads, pads little): sorted by length, cut when the next item would
/// exceed the default [`TokenBudget`].
pub(crate) fn token_budget_batches(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for i in order {
        if !cur.is_empty() && !TokenBudget::DEFAULT.fits(cur.len() + 1, tokens + lens[i]) {
            batches.push(std::mem::take(&mut cur));
            tokens = 0;
        }
        cur.push(i);
        tokens += lens[i];
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

fn configure_threads(threads: Option<usize>) {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() && threads.is_none() {
        return;
    }
    let n = threads.unwrap_or_else(crate::cpu_threads_from_quota).max(1);
    // Read by candle on every matmul; this crate sets it only here, at load time.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

pub(crate) fn load_head(
    trained: &HashMap<String, Tensor>,
    hidden: usize,
    classes: usize,
) -> Result<Linear, ModelError> {
    let get = |s: &str| {
        trained
            .get(s)
            .cloned()
            .ok_or_else(|| ModelError::Format(format!("weights lack {s}")))
    };
    let head = Linear {
        w: get("head.weight")?,
        b: get("head.bias")?,
    };
    if head.w.dims() != [classes, hidden] || head.b.dims() != [classes] {
        return Err(ModelError::Format(format!(
            "head is {:?}, expected [{classes}, {hidden}] for the categories and encoder",
            head.w.dims()
        )));
    }
    Ok(head)
}

/// Which base tensors inference reads up front, and how: the embeddings,
/// the word embeddings in f16 (a quarter of a million rows, of which a
/// batch reads a few dozen; f16 halves the largest allocation at a relative
/// error of 5e-4, which the first layer norm absorbs). The layers below the
/// fine-tuned (or student) ones are read one by one as the network is
/// assembled (`BaseLayers::File`); nothing unused (the pooler) is read.
const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

fn embedding_dtype(name: &str) -> Option<DType> {
    if name == WORD_EMBEDDINGS {
        return Some(DType::F16);
    }
    name.starts_with("embeddings.").then_some(DType::F32)
}

/// The base encoder alone (no fine-tuned layers), e.g. to check it against
/// reference embeddings.
pub struct BaseEncoder {
    net: Network,
    text: TextEncoder,
}

impl BaseEncoder {
    /// Loads `base_dir` (config.json, model.safetensors, tokenizer.json);
    /// texts get `prefix` and `<s>`=`bos`, `</s>`=`eos`.
    pub fn load(base_dir: &Path, prefix: &str, bos: u32, eos: u32) -> Result<Self, ModelError> {
        let cfg = BertConfig::load(&base_dir.join("config.json"))?;
        let base = load_safetensors(&base_dir.join("model.safetensors"))?;
        let net = Network::assemble(
            &cfg,
            &base,
            BaseLayers::InMap,
            &HashMap::new(),
            0,
            cfg.pad_token_id as u32,
            false,
        )?;
        let text = TextEncoder::load(
            &base_dir.join("tokenizer.json"),
            None,
            prefix,
            bos,
            eos,
            cfg.max_position_embeddings,
        )?;
        Ok(Self { net, text })
    }

    /// Token ids fed to the encoder.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.text.encode(text)?.ids)
    }

    /// Mean-pooled final hidden states (e5's embedding before L2 normalisation).
    pub fn pooled(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        let tok = self.text.encode(text)?;
        let batch = Packed::new(&[tok.ids.as_slice()])?;
        let h = self.net.lower(&batch, self.net.layers.len())?;
        Ok(packed_mean(&h, &batch.lens)?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_budget_and_cover_all() {
        let lens = vec![10, 1500, 3, 64, 64, 128, 7, 900, 900];
        let batches = token_budget_batches(&lens);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        let sizes: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|&i| lens[i]).collect())
            .collect();
        // Shortest first, each batch as full as the 2048-token budget allows.
        assert_eq!(
            sizes,
            vec![vec![3, 7, 10, 64, 64, 128, 900], vec![900], vec![1500]]
        );
        assert!(token_budget_batches(&[]).is_empty());
    }

    #[test]
    fn an_int8_encoder_keeps_no_f32_weights_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        crate::build_tiny_model(dir.path(), 3).unwrap();
        let load = |int8| {
            Classifier::load(
                dir.path(),
                &InferenceOptions {
                    int8: Some(int8),
                    ..InferenceOptions::default()
                },
            )
            .unwrap()
        };
        assert!(load(false).network().layers[0].tensors().is_ok());
        let int8 = load(true);
        let copied = int8.network().layers[0].tensors().map(|_| ());
        if Int8Linear::supported() {
            assert_eq!(
                copied.unwrap_err().to_string(),
                "this layer runs in int8 and kept no f32 weights: load the model with int8 off \
                 to train or copy from it"
            );
        } else {
            assert!(copied.is_ok(), "without VNNI the layer stays f32");
        }
    }
}
