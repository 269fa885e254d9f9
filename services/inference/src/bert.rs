//! size: one encoder (embeddings, attention, layers, pooling) whose parts training swaps one by one.
//!
//! A plain BERT encoder over candle tensors. Written out (rather than using
//! `candle_transformers::models::bert::BertModel`, which loads the same
//! weights) because training needs to run the lower and upper layers
//! separately and to swap fine-tuned top layers in, which that type hides.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::int8::Int8Linear;
use crate::kernels::{Attention, GeluErf};
use crate::ModelError;

/// The subset of a Hugging Face `BertConfig` this encoder needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
}

impl BertConfig {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
        if cfg.hidden_act != "gelu" {
            return Err(ModelError::Format(format!(
                "{}: hidden_act {:?} unsupported (only erf gelu)",
                path.display(),
                cfg.hidden_act
            )));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(ModelError::Format(format!(
                "{}: hidden_size not divisible by heads",
                path.display()
            )));
        }
        Ok(cfg)
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let mut v = serde_json::to_value(self).expect("config serialises");
        // Extra keys so Hugging Face tooling recognises the directory.
        v["model_type"] = "bert".into();
        v["architectures"] = serde_json::json!(["BertModel"]);
        v["position_embedding_type"] = "absolute".into();
        let text = serde_json::to_string_pretty(&v).expect("json");
        std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
    }
}

pub struct Linear {
    pub w: Tensor,
    pub b: Tensor,
}

impl Linear {
    /// x: [.., in] -> [.., out]. Folded to one 2-D matmul: a broadcast
    /// weight makes candle copy it per batch row.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let (last, lead) = dims.split_last().expect("rank >= 1");
        let rows: usize = lead.iter().product();
        let y = x
            .reshape((rows, *last))?
            .matmul(&self.w.t()?)?
            .broadcast_add(&self.b)?;
        let mut out = lead.to_vec();
        out.push(self.w.dim(0)?);
        y.reshape(out)
    }
}

pub struct LayerNorm {
    pub w: Tensor,
    pub b: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor, differentiable: bool) -> candle_core::Result<Tensor> {
        if differentiable {
            // The fused kernel has no backward pass.
            candle_nn::ops::layer_norm_slow(x, &self.w, &self.b, self.eps as f32)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.w, &self.b, self.eps as f32)
        }
    }
}

pub struct Layer {
    proj: Projections,
    aln: LayerNorm,
    oln: LayerNorm,
}

/// A layer's projections: as loaded, or as `prepare_for_inference` made them.
enum Projections {
    /// The six f32 matrices as the weights file holds them: what training
    /// runs and copies.
    Separate(Box<F32Projections>),
    /// f32 inference: query, key and value joined into one matrix; the six
    /// kept for copying, the other three stored transposed.
    F32 {
        qkv: Linear,
        own: Box<F32Projections>,
    },
    /// Int8 inference: all four quantised (`crate::int8`) and the f32
    /// weights released (about 85 MB for a 12-layer e5-small), so such a
    /// layer cannot be trained or copied from.
    Int8(Box<Int8Projections>),
}

struct F32Projections {
    q: Linear,
    k: Linear,
    v: Linear,
    ao: Linear,
    fi: Linear,
    fo: Linear,
}

impl F32Projections {
    /// The attention output and the two feed-forward projections.
    fn after_attention(&self) -> [Proj<'_>; 3] {
        [
            Proj::F32(&self.ao),
            Proj::F32(&self.fi),
            Proj::F32(&self.fo),
        ]
    }
}

struct Int8Projections {
    qkv: Int8Linear,
    ao: Int8Linear,
    fi: Int8Linear,
    fo: Int8Linear,
}

/// One of the inference path's projections, whichever form it is in.
enum Proj<'a> {
    F32(&'a Linear),
    Int8(&'a Int8Linear),
}

impl Proj<'_> {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::F32(p) => p.forward(x),
            Proj::Int8(p) => p.forward(x),
        }
    }
}

/// Hugging Face suffixes of one layer's tensors, in a fixed order.
pub const LAYER_TENSORS: [&str; 16] = [
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
];

impl Layer {
    /// Builds a layer from tensors named `prefix + LAYER_TENSORS[i]`.
    pub fn from_map(
        map: &HashMap<String, Tensor>,
        prefix: &str,
        eps: f64,
    ) -> Result<Self, ModelError> {
        let get = |s: &str| -> Result<Tensor, ModelError> {
            let name = format!("{prefix}{s}");
            map.get(&name)
                .cloned()
                .ok_or_else(|| ModelError::Format(format!("weights lack tensor {name}")))
        };
        let lin = |w: &str, b: &str| -> Result<Linear, ModelError> {
            Ok(Linear {
                w: get(w)?,
                b: get(b)?,
            })
        };
        let ln = |w: &str, b: &str| -> Result<LayerNorm, ModelError> {
            Ok(LayerNorm {
                w: get(w)?,
                b: get(b)?,
                eps,
            })
        };
        let t = LAYER_TENSORS;
        Ok(Self {
            proj: Projections::Separate(Box::new(F32Projections {
                q: lin(t[0], t[1])?,
                k: lin(t[2], t[3])?,
                v: lin(t[4], t[5])?,
                ao: lin(t[6], t[7])?,
                fi: lin(t[10], t[11])?,
                fo: lin(t[12], t[13])?,
            })),
            aln: ln(t[8], t[9])?,
            oln: ln(t[14], t[15])?,
        })
    }

    fn f32(&self) -> candle_core::Result<&F32Projections> {
        match &self.proj {
            Projections::Separate(p) | Projections::F32 { own: p, .. } => Ok(p),
            Projections::Int8(_) => Err(candle_core::Error::Msg(
                "this layer runs in int8 and kept no f32 weights: load the model with int8 off \
                 to train or copy from it"
                    .into(),
            )),
        }
    }

    /// The layer's tensors in `LAYER_TENSORS` order.
    pub fn tensors(&self) -> candle_core::Result<[&Tensor; 16]> {
        let p = self.f32()?;
        Ok([
            &p.q.w,
            &p.q.b,
            &p.k.w,
            &p.k.b,
            &p.v.w,
            &p.v.b,
            &p.ao.w,
            &p.ao.b,
            &self.aln.w,
            &self.aln.b,
            &p.fi.w,
            &p.fi.b,
            &p.fo.w,
            &p.fo.b,
            &self.oln.w,
            &self.oln.b,
        ])
    }

    /// Readies the layer for the inference path: joins the query, key and
    /// value projections into one matrix (one GEMM three times as wide
    /// instead of three) and stores every matrix transposed, so the GEMM's
    /// packing reads rows (docs/performance.md); or, with `int8` on a CPU
    /// that runs it, quantises the four projections instead.
    pub fn prepare_for_inference(self, int8: bool) -> candle_core::Result<Self> {
        let Projections::Separate(mut p) = self.proj else {
            candle_core::bail!("a layer is prepared for inference once");
        };
        let qkv_w = Tensor::cat(&[&p.q.w, &p.k.w, &p.v.w], 0)?;
        let qkv_b = Tensor::cat(&[&p.q.b, &p.k.b, &p.v.b], 0)?;
        let proj = if int8 && Int8Linear::supported() {
            Projections::Int8(Box::new(Int8Projections {
                qkv: Int8Linear::new(&qkv_w, &qkv_b)?,
                ao: Int8Linear::new(&p.ao.w, &p.ao.b)?,
                fi: Int8Linear::new(&p.fi.w, &p.fi.b)?,
                fo: Int8Linear::new(&p.fo.w, &p.fo.b)?,
            }))
        } else {
            let flip = |w: &Tensor| -> candle_core::Result<Tensor> { w.t()?.contiguous()?.t() };
            p.ao.w = flip(&p.ao.w)?;
            p.fi.w = flip(&p.fi.w)?;
            p.fo.w = flip(&p.fo.w)?;
            Projections::F32 {
                qkv: Linear {
                    w: flip(&qkv_w)?,
                    b: qkv_b,
                },
                own: p,
            }
        };
        Ok(Self {
            proj,
            aln: self.aln,
            oln: self.oln,
        })
    }

    /// Inference: x is `[T, H]`, posts laid end to end (`Packed`), post `i`
    /// having `lens[i]` tokens. No padding is computed anywhere.
    pub fn forward_packed(
        &self,
        x: &Tensor,
        lens: &[usize],
        heads: usize,
    ) -> candle_core::Result<Tensor> {
        let (qkv, [ao, fi, fo]) = match &self.proj {
            Projections::Int8(p) => (
                p.qkv.forward(x)?,
                [Proj::Int8(&p.ao), Proj::Int8(&p.fi), Proj::Int8(&p.fo)],
            ),
            Projections::F32 { qkv, own } => (qkv.forward(x)?, own.after_attention()),
            Projections::Separate(p) => (
                Tensor::cat(&[p.q.forward(x)?, p.k.forward(x)?, p.v.forward(x)?], 1)?,
                p.after_attention(),
            ),
        };
        let ctx = qkv.apply_op1_no_bwd(&Attention {
            heads,
            lens: lens.to_vec(),
        })?;
        let x = self.aln.forward(&(ao.forward(&ctx)? + x)?, false)?;
        let mid = fi.forward(&x)?;
        mid.inplace_op1(&GeluErf)?;
        self.oln.forward(&(fo.forward(&mid)? + x)?, false)
    }

    /// Training, with candle's differentiable ops: x is `[B, S, H]` padded,
    /// `additive` the mask `[B, 1, 1, S]` (`additive_mask`).
    pub fn forward_padded(
        &self,
        x: &Tensor,
        additive: &Tensor,
        heads: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let hd = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, hd))?.transpose(1, 2)?.contiguous()
        };
        let p = self.f32()?;
        let q = split(p.q.forward(x)?)?;
        let k = split(p.k.forward(x)?)?;
        let v = split(p.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(additive)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))?;
        let x = self.aln.forward(&(p.ao.forward(&ctx)? + x)?, true)?;
        let mid = p.fi.forward(&x)?.gelu_erf()?;
        self.oln.forward(&(p.fo.forward(&mid)? + x)?, true)
    }
}

/// Embedding tables and the frozen lower part of the encoder.
pub struct Embeddings {
    word: Tensor,
    pos: Tensor,
    type0: Tensor,
    ln: LayerNorm,
}

impl Embeddings {
    pub fn from_map(map: &HashMap<String, Tensor>, eps: f64) -> Result<Self, ModelError> {
        let get = |s: &str| -> Result<Tensor, ModelError> {
            map.get(s)
                .cloned()
                .ok_or_else(|| ModelError::Format(format!("weights lack tensor {s}")))
        };
        Ok(Self {
            word: get("embeddings.word_embeddings.weight")?,
            pos: get("embeddings.position_embeddings.weight")?,
            type0: get("embeddings.token_type_embeddings.weight")?.get(0)?,
            ln: LayerNorm {
                w: get("embeddings.LayerNorm.weight")?,
                b: get("embeddings.LayerNorm.bias")?,
                eps,
            },
        })
    }

    /// Token ids and their positions, both u32 of one shape `[..]`, to
    /// `[.., H]`. Positions count from 0 within each post, like e5's
    /// BertModel.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.word.dim(1)?);
        // The table may be kept in f16 (inference): only the looked-up rows widen.
        let words = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .to_dtype(DType::F32)?;
        let pos = self.pos.index_select(&positions.flatten_all()?, 0)?;
        let x = (words + pos)?.broadcast_add(&self.type0)?.reshape(shape)?;
        self.ln.forward(&x, false)
    }
}

/// A batch laid end to end for the inference path: token `t` of every post
/// in one `[T]` run, so no pass ever computes a padding row and a batch
/// costs the sum of its lengths, not posts x longest.
pub struct Packed {
    pub ids: Tensor,
    pub positions: Tensor,
    /// Tokens per post, in batch order.
    pub lens: Vec<usize>,
}

impl Packed {
    pub fn new(batch: &[&[u32]]) -> candle_core::Result<Self> {
        let total = batch.iter().map(|t| t.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        for t in batch {
            ids.extend_from_slice(t);
            positions.extend(0..t.len() as u32);
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, total, &Device::Cpu)?,
            positions: Tensor::from_vec(positions, total, &Device::Cpu)?,
            lens: batch.iter().map(|t| t.len()).collect(),
        })
    }
}

/// Each post's first row in a packed `[T, ..]` tensor, from its lengths.
pub fn starts(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |at, &len| {
            let start = *at;
            *at += len;
            Some(start)
        })
        .collect()
}

/// Mean of each post's rows of a packed `[T, H]`: `[B, H]`.
pub fn packed_mean(hidden: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
    let rows = starts(lens)
        .into_iter()
        .zip(lens)
        .map(|(start, &len)| hidden.narrow(0, start, len)?.mean_keepdim(0))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&rows, 0)
}

/// Position ids `[B, S]` of a padded batch: 0..S on every row.
pub fn padded_positions(b: usize, s: usize) -> candle_core::Result<Tensor> {
    Tensor::arange(0u32, s as u32, &Device::Cpu)?
        .unsqueeze(0)?
        .broadcast_as((b, s))?
        .contiguous()
}

/// Additive attention mask [B, 1, 1, S] from a 0/1 mask [B, S].
pub fn additive_mask(mask01: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s) = mask01.dims2()?;
    // A large finite negative keeps softmax free of inf - inf.
    ((mask01.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, s))
}

/// Mean of hidden states over real tokens: [B, S, H] x [B, S] -> [B, H].
pub fn mean_pool(hidden: &Tensor, mask01: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask01.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?;
    sum.broadcast_div(&count)
}
