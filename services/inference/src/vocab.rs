//! A pruned vocabulary. The base tokenizer knows 250,002 pieces of about a
//! hundred languages; loaded, its piece trie holds ~280 MB and the f16
//! embedding table 190 MB, most of it for scripts Indonesian posts never
//! use. A model may instead keep a list of base token ids (`vocab_ids.json`,
//! ascending): the tokenizer then knows only those pieces, numbered in list
//! order, and only their embedding rows are read.
//!
//! A text whose every piece is kept segments exactly as before (the best
//! segmentation over fewer pieces is the same one when all its pieces
//! remain), so the list holds every piece of the train split's texts, every
//! one-character piece (any text still segments, with no new unknown
//! tokens) and the special tokens, plus the base's most probable remaining
//! pieces for words the training data lacks.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::ModelError;

pub const VOCAB_FILE: &str = "vocab_ids.json";

/// Reads a model's kept ids; they must ascend (so the special tokens at the
/// front keep their ids).
pub fn read_vocab(path: &Path) -> Result<Vec<u32>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let ids: Vec<u32> = serde_json::from_str(&text)
        .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
    if ids.is_empty() || ids.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ModelError::Format(format!(
            "{}: token ids must be non-empty and strictly ascending",
            path.display()
        )));
    }
    Ok(ids)
}

/// The base `tokenizer.json` rewritten to know only `keep` (ascending base
/// ids), piece `keep[i]` becoming id `i`. Unigram tokenizers only.
pub fn pruned_tokenizer_json(path: &Path, keep: &[u32]) -> Result<String, ModelError> {
    let bad = |what: String| ModelError::Format(format!("{}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let mut json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let new_id: HashMap<u64, u64> = keep
        .iter()
        .enumerate()
        .map(|(new, &old)| (u64::from(old), new as u64))
        .collect();
    let remap = |v: &mut Value, what: &str| -> Result<(), ModelError> {
        let old = v
            .as_u64()
            .ok_or_else(|| bad(format!("{what} is not an id")))?;
        let new = new_id
            .get(&old)
            .ok_or_else(|| bad(format!("{what} (id {old}) is not among the kept ids")))?;
        *v = Value::from(*new);
        Ok(())
    };
    let model = &mut json["model"];
    if model["type"] != "Unigram" {
        return Err(bad("only Unigram tokenizers can be pruned".into()));
    }
    let vocab = model["vocab"]
        .as_array_mut()
        .ok_or_else(|| bad("model.vocab is not a list".into()))?;
    let kept = keep
        .iter()
        .map(|&old| {
            vocab
                .get_mut(old as usize)
                .map(Value::take)
                .ok_or_else(|| bad(format!("kept id {old} is past the vocabulary's end")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    *vocab = kept;
    if let Some(unk) = model.get_mut("unk_id").filter(|v| !v.is_null()) {
        remap(unk, "the unknown token")?;
    }
    // `get_mut`, not indexing: indexing a missing key for writing adds it.
    if let Some(added) = json.get_mut("added_tokens").and_then(Value::as_array_mut) {
        added.retain(|t| t["id"].as_u64().is_some_and(|id| new_id.contains_key(&id)));
        for t in added {
            remap(&mut t["id"], "an added token")?;
        }
    }
    if let Some(specials) = json
        .get_mut("post_processor")
        .and_then(|p| p.get_mut("special_tokens"))
        .and_then(Value::as_object_mut)
    {
        for special in specials.values_mut() {
            for id in special["ids"].as_array_mut().into_iter().flatten() {
                remap(id, "a post-processor token")?;
            }
        }
    }
    Ok(json.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_tokenizer() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        patroli_training::build_tiny_model(dir.path(), 1).unwrap();
        let path = dir.path().join("base/tokenizer.json");
        (dir, path)
    }

    #[test]
    fn kept_pieces_are_renumbered_in_order_and_the_rest_are_gone() {
        let (_dir, path) = tiny_tokenizer();
        let full: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keep = [0, 1, 2, 3, 7, 9];
        let pruned: Value =
            serde_json::from_str(&pruned_tokenizer_json(&path, &keep).unwrap()).unwrap();
        let vocab = pruned["model"]["vocab"].as_array().unwrap();
        assert_eq!(vocab.len(), keep.len());
        assert_eq!(vocab[4], full["model"]["vocab"][7]);
        assert_eq!(vocab[5], full["model"]["vocab"][9]);
        assert_eq!(pruned["model"]["unk_id"], 3);
        assert!(pruned.get("post_processor").is_none_or(Value::is_null));
    }

    #[test]
    fn dropping_the_unknown_token_or_unsorted_ids_is_a_clear_error() {
        let (dir, path) = tiny_tokenizer();
        let err = pruned_tokenizer_json(&path, &[0, 1, 2, 7])
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("the unknown token (id 3) is not among the kept ids"),
            "{err}"
        );
        let ids = dir.path().join(VOCAB_FILE);
        std::fs::write(&ids, "[0, 2, 1]").unwrap();
        let err = read_vocab(&ids).unwrap_err().to_string();
        assert!(
            err.ends_with("token ids must be non-empty and strictly ascending"),
            "{err}"
        );
    }
}
