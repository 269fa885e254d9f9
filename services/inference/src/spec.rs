//! `patroli.json`: what a model directory contains and how to run it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Overrides where the (uncommitted) base encoder lives.
pub const BASE_DIR_ENV: &str = "PATROLI_BASE_MODEL_DIR";

pub const SPEC_FILE: &str = "patroli.json";
pub const WEIGHTS_FILE: &str = "trained.safetensors";
pub const LABELS_FILE: &str = "labels.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub version: String,
    /// Base encoder directory (config.json, model.safetensors,
    /// tokenizer.json), relative to the model directory.
    pub base_dir: String,
    /// Prepended to every text, as the encoder was pretrained ("query: ").
    pub text_prefix: String,
    /// Token limit (incl. <s> and </s>) the model was trained with.
    pub max_len: usize,
    /// Decision threshold on the calibrated score.
    pub threshold: f32,
    /// Softmax temperature fitted on the dev split.
    pub temperature: f32,
    /// Head output order.
    pub categories: Vec<String>,
    /// The categories whose probabilities sum to the disinformation score.
    pub disinformation_categories: Vec<String>,
    /// Top encoder layers replaced by the fine-tuned copies in `trained.safetensors`.
    pub finetuned_layers: usize,
    pub bos_id: u32,
    pub eos_id: u32,
    pub pad_id: u32,
    /// A distilled student: the encoder runs this many layers, all taken
    /// from `trained.safetensors` (`finetuned_layers` equals it), on the
    /// base's embeddings and tokenizer; absent: the base's own depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_layers: Option<usize>,
    /// A pruned vocabulary (`vocab.rs`): a file in the model directory
    /// listing the base token ids the model keeps; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<String>,
    /// The encoder's projections run in int8 (`int8.rs`) on CPUs with
    /// AVX-512 VNNI, f32 elsewhere; the model card gives both's figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8: bool,
    /// `data_fingerprint` of the training data (absent in models trained
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha: Option<String>,
    /// File of the stacked head (`stack.rs`) that turns the encoder's output
    /// and the text's character n-grams into the score; absent: the score
    /// is the category head's hoax mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The known-claim archive the stacked head reads (`claims.rs`);
    /// absent: no matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimsSpec {
    /// Stem of `<archive>.jsonl` (the claims) and `<archive>.safetensors`
    /// (their vectors), in the model directory.
    pub archive: String,
    /// Similarity at or above which a claim is shown as a match.
    pub match_threshold: f32,
}

impl ModelSpec {
    pub fn load(model_dir: &Path) -> Result<Self, ModelError> {
        let path = model_dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let spec: Self = serde_json::from_str(&text)
            .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
        if spec.categories.is_empty()
            || spec
                .disinformation_categories
                .iter()
                .any(|c| !spec.categories.contains(c))
        {
            return Err(ModelError::Format(format!(
                "{}: disinformation categories must be a subset of a non-empty category list",
                path.display()
            )));
        }
        if spec.max_len < 3 || spec.temperature.is_nan() || spec.temperature <= 0.0 {
            return Err(ModelError::Format(format!(
                "{}: max_len must be >= 3 and temperature > 0",
                path.display()
            )));
        }
        if spec
            .encoder_layers
            .is_some_and(|n| n == 0 || n != spec.finetuned_layers)
        {
            return Err(ModelError::Format(format!(
                "{}: a student's encoder_layers must be > 0 and equal finetuned_layers",
                path.display()
            )));
        }
        Ok(spec)
    }

    /// Writes `patroli.json` and `labels.json`.
    pub fn save(&self, model_dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(model_dir).map_err(|e| ModelError::io(model_dir, e))?;
        crate::write_json(&model_dir.join(SPEC_FILE), self)?;
        let labels: Vec<serde_json::Value> = self
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({
                    "index": i,
                    "category": c,
                    "disinformation": self.disinformation_categories.contains(c),
                })
            })
            .collect();
        crate::write_json(&model_dir.join(LABELS_FILE), &labels)
    }

    /// The base encoder directory: `base_dir` relative to the model
    /// directory, or `$PATROLI_BASE_MODEL_DIR` when set and the base is a
    /// shared one outside the model directory (a base bundled inside, like the
    /// tiny test model's, is never redirected).
    pub fn resolve_base_dir(&self, model_dir: &Path) -> PathBuf {
        let shared = Path::new(&self.base_dir).components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::RootDir
            )
        });
        match std::env::var_os(BASE_DIR_ENV) {
            Some(p) if shared && !p.is_empty() => PathBuf::from(p),
            _ => model_dir.join(&self.base_dir),
        }
    }
}
