//! The base encoder alone, e.g. to check it against reference embeddings.

use std::collections::HashMap;
use std::path::Path;

use candle_core::DType;

use crate::bert::{packed_mean, BertConfig, Packed};
use crate::network::{BaseLayers, Network};
use crate::text::TextEncoder;
use crate::weights_file::load_safetensors;
use crate::ModelError;

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
