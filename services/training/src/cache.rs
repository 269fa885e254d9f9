//! Lower-layer activations for training, computed once and optionally kept
//! on disk: the frozen layers are most of an epoch's cost, and re-runs (other
//! seeds, learning rates, held-out sources) reuse them.
//!
//! A cache file holds the unpadded hidden states of every text it has seen,
//! keyed by the text's token ids, for one base encoder and one layer depth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::ModelError;
use patroli_inference::bert::{starts, Packed};
use patroli_inference::fnv::{fnv1a, FNV_OFFSET};
use patroli_inference::text::TextEncoder;
use patroli_inference::{network::Network, token_budget_batches};

/// The cache file for the base in `base_dir` cut after `lower` layers: named
/// by a hash of the base's config, its tokenizer and weight file sizes.
pub(crate) fn cache_file(dir: &Path, base_dir: &Path, lower: usize) -> Result<PathBuf, ModelError> {
    let h = model_key(
        base_dir,
        &["config.json", "tokenizer.json", "model.safetensors"],
        &["config.json"],
    )?;
    Ok(dir.join(format!("lower-{lower}-{h:016x}.safetensors")))
}

/// Names a model directory's version for a cache: the sizes of its `sized`
/// files (weights too big to hash on every run) and the bytes of `read`.
pub(crate) fn model_key(
    model_dir: &Path,
    sized: &[&str],
    read: &[&str],
) -> Result<u64, ModelError> {
    let mut h = FNV_OFFSET;
    for name in sized {
        let p = model_dir.join(name);
        let meta = std::fs::metadata(&p).map_err(|e| ModelError::io(&p, e))?;
        h = fnv1a(h, meta.len().to_le_bytes());
    }
    for name in read {
        let p = model_dir.join(name);
        h = fnv1a(h, std::fs::read(&p).map_err(|e| ModelError::io(&p, e))?);
    }
    Ok(h)
}

/// Indices of the texts whose key `known` lacks, each key once.
pub(crate) fn missing<V>(keys: &[u64], known: &HashMap<u64, V>) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    (0..keys.len())
        .filter(|&i| !known.contains_key(&keys[i]) && seen.insert(keys[i]))
        .collect()
}

pub(crate) fn ids_key(ids: &[u32]) -> u64 {
    fnv1a(FNV_OFFSET, ids.iter().flat_map(|i| i.to_le_bytes()))
}

/// Hidden states [len, H] after `lower` layers for each of `texts`, read
/// from `file` where present and computed (then added to `file`) otherwise.
pub(crate) fn lower_states(
    net: &Network,
    text: &TextEncoder,
    texts: &[&str],
    lower: usize,
    file: Option<&Path>,
) -> Result<Vec<Tensor>, ModelError> {
    let ids = texts
        .iter()
        .map(|t| Ok(text.encode(t)?.ids))
        .collect::<Result<Vec<_>, ModelError>>()?;
    let keys: Vec<u64> = ids.iter().map(|i| ids_key(i)).collect();
    let mut known = match file {
        Some(f) if f.exists() => load(f)?,
        _ => HashMap::new(),
    };
    let missing = missing(&keys, &known);
    tracing::info!(
        texts = texts.len(),
        cached = texts.len() - missing.len(),
        to_compute = missing.len(),
        "lower-layer states"
    );
    let lens: Vec<usize> = missing.iter().map(|&i| ids[i].len()).collect();
    let batches = token_budget_batches(&lens);
    for (n, batch) in batches.iter().enumerate() {
        let rows: Vec<&[u32]> = batch.iter().map(|&j| ids[missing[j]].as_slice()).collect();
        let packed = Packed::new(&rows)?;
        let hidden = net.lower(&packed, lower)?;
        for ((&j, start), len) in batch.iter().zip(starts(&packed.lens)).zip(&packed.lens) {
            known.insert(keys[missing[j]], hidden.narrow(0, start, *len)?.copy()?);
        }
        if n % 50 == 49 {
            tracing::info!(batch = n + 1, of = batches.len(), "caching lower layers");
        }
    }
    if let Some(f) = file.filter(|_| !missing.is_empty()) {
        save(f, &known)?;
    }
    Ok(keys.iter().map(|k| known[k].clone()).collect())
}

fn load(path: &Path) -> Result<HashMap<u64, Tensor>, ModelError> {
    let t = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
    let get = |n: &str| {
        t.get(n)
            .ok_or_else(|| ModelError::Format(format!("{}: no tensor {n}", path.display())))
    };
    let hidden = get("hidden")?;
    let keys = get("keys")?.to_vec1::<i64>()?;
    let lens = get("lens")?.to_vec1::<i64>()?;
    let mut out = HashMap::with_capacity(keys.len());
    let mut at = 0usize;
    for (k, l) in keys.into_iter().zip(lens) {
        let l = l as usize;
        out.insert(k as u64, hidden.narrow(0, at, l)?);
        at += l;
    }
    Ok(out)
}

fn save(path: &Path, states: &HashMap<u64, Tensor>) -> Result<(), ModelError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    let mut keys: Vec<u64> = states.keys().copied().collect();
    keys.sort_unstable();
    let rows: Vec<&Tensor> = keys.iter().map(|k| &states[k]).collect();
    let lens = rows
        .iter()
        .map(|t| Ok(t.dim(0)? as i64))
        .collect::<Result<Vec<_>, candle_core::Error>>()?;
    let n = keys.len();
    let mut out = HashMap::new();
    out.insert(
        "hidden".to_string(),
        Tensor::cat(&rows, 0)?.to_dtype(DType::F32)?,
    );
    out.insert(
        "keys".to_string(),
        Tensor::from_vec(
            keys.into_iter().map(|k| k as i64).collect(),
            n,
            &Device::Cpu,
        )?,
    );
    out.insert("lens".to_string(), Tensor::from_vec(lens, n, &Device::Cpu)?);
    // Written aside and renamed: an interrupted run leaves the old cache intact.
    let tmp = path.with_extension("partial");
    candle_core::safetensors::save(&out, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}
