//! patroli's election-disinformation model at inference: a pretrained
//! multilingual BERT encoder (multilingual-e5-small) with fine-tuned top
//! layers, an 11-way category head and a stacked head with known-claim
//! matching, run on CPU in candle.
//!
//! The disinformation score is the temperature-calibrated probability mass of
//! the six hoax categories of `models/data/TAXONOMY.md`.
//!
//! What a serving process uses is re-exported at the root: [`Classifier`]
//! (load a model directory, [`Classifier::tokenize`], score a batch formed
//! under a [`TokenBudget`]) and the claim archive it searches. The modules
//! are public too because `patroli-training` builds on the very same
//! encoder, heads and files (one forward pass, one file format); nothing
//! here trains, converts or evaluates.

mod archive;
mod base;
pub mod bert;
mod budget;
pub mod claims;
mod classifier;
mod explain;
pub mod fnv;
mod heads;
mod int8;
mod kernels;
mod load;
mod locate;
pub mod network;
pub mod ngram;
pub mod spec;
pub mod stack;
pub mod text;
pub mod vocab;
pub mod weights_file;

use std::path::{Path, PathBuf};

pub use base::BaseEncoder;
pub use bert::BertConfig;
pub use budget::{in_batches, token_budget_batches, TokenBudget};
pub use claims::{Claim, ClaimIndex, ClaimMatch, Verdict, MATCH_FEATURES};
pub use classifier::{Classifier, InferenceOptions, ModelInfo, Prediction};
pub use locate::{locate_model_dir, HOME_ENV};
pub use spec::{ModelSpec, BASE_DIR_ENV};
pub use text::Tokenized;
pub use vocab::VOCAB_FILE;

/// Whether this CPU runs int8 projections natively (AVX-512 VNNI); without
/// it an int8 model's projections run in f32 (same weights, slower).
pub fn int8_supported() -> bool {
    int8::Int8Linear::supported()
}

/// The shipped model, relative to the repository root (found from any
/// working directory by [`locate_model_dir`]): what every command, the
/// classifier service and the container use unless told otherwise.
pub const DEFAULT_MODEL_DIR: &str = "models/patroli-id-v7";

/// Everything that can go wrong loading, running or training a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("missing file {0} (for the base encoder run models/install-base.sh)")]
    MissingFile(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad model format: {0}")]
    Format(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("bad data: {0}")]
    Data(String),
    #[error("{}", locate::not_found_message(dir, tried))]
    NotFound {
        dir: PathBuf,
        /// Each place looked in, and why it was.
        tried: Vec<(PathBuf, &'static str)>,
    },
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile(path.to_path_buf())
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Writes `value` to `path` as pretty JSON with a final newline: every
/// report and spec file a model directory holds.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(value).expect("reports and specs serialise");
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// CPUs this process may use: the cgroup v2 `cpu.max` or v1 CFS quota
/// (rounded up), capped by the visible CPUs; at least 1.
pub fn cpu_threads_from_quota() -> usize {
    let avail = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let quota = read_cgroup_quota(Path::new("/sys/fs/cgroup"));
    quota.map_or(avail, |q| q.min(avail)).max(1)
}

fn read_cgroup_quota(root: &Path) -> Option<usize> {
    if let Ok(s) = std::fs::read_to_string(root.join("cpu.max")) {
        return parse_cpu_max(&s);
    }
    let quota = std::fs::read_to_string(root.join("cpu/cpu.cfs_quota_us")).ok()?;
    let period = std::fs::read_to_string(root.join("cpu/cpu.cfs_period_us")).ok()?;
    quota_to_cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

/// `cpu.max` holds "max 100000" (no limit) or "<quota> <period>".
fn parse_cpu_max(s: &str) -> Option<usize> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: i64 = it.next()?.parse().ok()?;
    quota_to_cpus(quota.parse().ok()?, period)
}

fn quota_to_cpus(quota: i64, period: i64) -> Option<usize> {
    (quota > 0 && period > 0).then(|| ((quota + period - 1) / period) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(quota_to_cpus(-1, 100000), None);
        assert!(cpu_threads_from_quota() >= 1);
    }
}
