//! The encoder network: embeddings and layers, the base encoder's below the
//! fine-tuned ones, assembled from weight files; shared by inference and
//! training.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::bert::{BertConfig, Embeddings, Layer, Packed};
use crate::int8::Int8Linear;
use crate::weights_file::load_safetensors_as;
use crate::ModelError;

/// The encoder; shared by inference and training.
pub struct Network {
    pub emb: Embeddings,
    pub layers: Vec<Layer>,
    pub heads: usize,
    pub pad_id: u32,
}

/// Where the base encoder's layers come from.
#[derive(Clone, Copy)]
pub enum BaseLayers<'a> {
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
