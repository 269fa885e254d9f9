//! Loading a model directory: its spec, the base encoder's weights read
//! as the network is assembled, the heads, the claim archive, the
//! tokenizer, and the compute threads scoring runs on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::archive::ClaimArchive;
use crate::bert::{BertConfig, Linear};
use crate::claims::{ClaimIndex, MATCH_FEATURES};
use crate::classifier::{Classifier, InferenceOptions, ModelInfo};
use crate::network::{BaseLayers, Network};
use crate::spec::{ModelSpec, WEIGHTS_FILE};
use crate::stack::StackedHead;
use crate::text::TextEncoder;
use crate::vocab::read_vocab;
use crate::weights_file::{load_rows, load_safetensors, load_safetensors_as};
use crate::ModelError;

impl Classifier {
    /// Loads `model_dir` (see `ModelSpec`) and its base encoder, and builds
    /// the model's compute threads: `opts.threads`, else
    /// `RAYON_NUM_THREADS`, else the CPU quota. Loading (quantisation) and
    /// every forward pass run on them: candle's GEMM and this crate's
    /// kernels use the rayon pool they are called from. The process
    /// environment is only read, never changed.
    pub fn load(model_dir: &Path, opts: &InferenceOptions) -> Result<Self, ModelError> {
        let threads = opts
            .threads
            .or_else(env_threads)
            .unwrap_or_else(crate::cpu_threads_from_quota);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("patroli-model-{i}"))
            .build()
            .map_err(|e| ModelError::Format(format!("a pool of {threads} compute threads: {e}")))?;
        warn_if_candle_differs(threads);
        let pool = Arc::new(pool);
        let this_pool = Arc::clone(&pool);
        pool.install(|| Self::load_on(model_dir, opts, this_pool))
    }

    fn load_on(
        model_dir: &Path,
        opts: &InferenceOptions,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<Self, ModelError> {
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
                let index = ClaimIndex::load(model_dir, &c.archive)?;
                if index.dim() != cfg.hidden_size {
                    return Err(ModelError::Format(format!(
                        "{}: claim vectors have {} values, the encoder {}",
                        model_dir.display(),
                        index.dim(),
                        cfg.hidden_size
                    )));
                }
                Some(ClaimArchive::new(index, c.match_threshold)?)
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
            pool,
        })
    }
}

pub fn load_head(
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

/// `RAYON_NUM_THREADS`, where set to a positive number (as rayon reads it).
fn env_threads() -> Option<usize> {
    std::env::var("RAYON_NUM_THREADS")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// candle runs element-wise operations on a pool of its own, sized once per
/// process from `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else the
/// physical cores) with no other way to set it. Under a CPU quota smaller
/// than the node, a larger pool spins for CPU time the quota does not give:
/// the operator sets the variable (the Kubernetes manifests do).
fn warn_if_candle_differs(threads: usize) {
    let candle = std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(candle_core::utils::get_num_threads);
    if candle > threads {
        tracing::warn!(
            model_threads = threads,
            candle_threads = candle,
            "candle's element-wise operations will use more threads than the model's \
             {threads}: set CANDLE_NUM_THREADS={threads} in the environment"
        );
    }
}
