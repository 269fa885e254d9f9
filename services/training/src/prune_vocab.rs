//! Vocabulary pruning: which base pieces a model keeps (see
//! `patroli_inference::vocab` for what a pruned vocabulary is and how
//! inference reads it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use patroli_inference::{Classifier, InferenceOptions, ModelError, ModelSpec, VOCAB_FILE};
use serde_json::Value;

use crate::data::{load_examples, Split};

/// Prunes `model_dir`'s vocabulary (see the module comment), keeping the
/// `top` most probable pieces beyond those the train split of `data` and
/// the `unlabelled` texts use; writes `vocab_ids.json` and points the spec
/// at it. Returns the kept count.
pub fn prune_vocab(
    model_dir: &Path,
    data: &[PathBuf],
    unlabelled: &[String],
    top: usize,
) -> Result<usize, ModelError> {
    let mut spec = ModelSpec::load(model_dir)?;
    if spec.vocab.is_some() {
        return Err(ModelError::Format(format!(
            "{}: the vocabulary is already pruned",
            model_dir.display()
        )));
    }
    let clf = Classifier::load(model_dir, &InferenceOptions::default())?;
    let mut keep = BTreeSet::new();
    for e in load_examples(data)?
        .iter()
        .filter(|e| e.split() == Split::Train)
    {
        keep.extend(clf.all_piece_ids(&e.text)?);
    }
    for text in unlabelled {
        keep.extend(clf.all_piece_ids(text)?);
    }
    let base_dir = spec.resolve_base_dir(model_dir);
    let path = base_dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
    let vocab = json["model"]["vocab"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let specials = json["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_u64());
    keep.extend(specials.map(|id| id as u32));
    keep.extend(json["model"]["unk_id"].as_u64().map(|id| id as u32));
    keep.extend([spec.bos_id, spec.eos_id, spec.pad_id]);
    keep.extend(
        vocab
            .iter()
            .enumerate()
            .filter(|(_, p)| p[0].as_str().is_some_and(|s| s.chars().count() == 1))
            .map(|(id, _)| id as u32),
    );
    let mut rest: Vec<(f64, u32)> = vocab
        .iter()
        .enumerate()
        .filter(|(id, _)| !keep.contains(&(*id as u32)))
        .map(|(id, p)| (p[1].as_f64().unwrap_or(f64::NEG_INFINITY), id as u32))
        .collect();
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keep.extend(rest.iter().take(top).map(|&(_, id)| id));
    let keep: Vec<u32> = keep.into_iter().collect();
    let out = model_dir.join(VOCAB_FILE);
    let text = serde_json::to_string(&keep).expect("ids serialise");
    std::fs::write(&out, text + "\n").map_err(|e| ModelError::io(&out, e))?;
    spec.vocab = Some(VOCAB_FILE.into());
    spec.save(model_dir)?;
    Ok(keep.len())
}
