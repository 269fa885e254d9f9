//! Text to token ids: prefix, SentencePiece via `tokenizer.json`, truncation.

use std::path::Path;
use std::str::FromStr;

use tokenizers::Tokenizer;

use crate::ModelError;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Bytes of input kept before tokenising: far more than any `max_len` can
/// use (a piece covers at least one character), and it bounds the cost of
/// megabyte-sized posts.
const BYTES_PER_TOKEN_CAP: usize = 16;

pub struct TextEncoder {
    tokenizer: Tokenizer,
    prefix: String,
    bos: u32,
    eos: u32,
    pub max_len: usize,
    /// Words the prefix occupies, skipped when naming reason tokens.
    prefix_words: usize,
}

/// One text as the encoder sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenized {
    /// `<s> pieces.. </s>`, at most `max_len` long.
    pub ids: Vec<u32>,
    /// SentencePiece strings aligned with `ids` ("" for the specials).
    pub pieces: Vec<String>,
    /// The middle pieces truncation cut out of `pieces` (empty when none
    /// was): the n-gram view reads the whole text, only the encoder's
    /// attention has a length limit.
    pub cut: Vec<String>,
}

impl Tokenized {
    /// Tokens fed to the encoder (after truncation, incl. specials).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl TextEncoder {
    /// `vocab`: the base token ids a pruned model keeps, ascending (see
    /// `ModelSpec::vocab`); the tokenizer then knows only those pieces and
    /// numbers them 0, 1, ...
    pub fn load(
        path: &Path,
        vocab: Option<&[u32]>,
        prefix: &str,
        bos: u32,
        eos: u32,
        max_len: usize,
    ) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::MissingFile(path.to_path_buf()));
        }
        let tokenizer = match vocab {
            None => Tokenizer::from_file(path),
            Some(keep) => {
                let json = crate::vocab::pruned_tokenizer_json(path, keep)?;
                Tokenizer::from_str(&json)
            }
        }
        .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self {
            tokenizer,
            prefix: prefix.to_string(),
            bos,
            eos,
            max_len: max_len.max(3),
            prefix_words: prefix.split_whitespace().count(),
        })
    }

    /// Every piece id of `text` with the prefix, untruncated.
    pub fn all_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let input = format!("{}{}", self.prefix, text.trim());
        Ok(self
            .tokenizer
            .encode(input.as_str(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Long texts keep their head and tail (3:1): fact checks often quote
    /// a hoax at length and only conclude "tidak benar" at the end.
    pub fn encode(&self, text: &str) -> Result<Tokenized, ModelError> {
        // Edge whitespace carries nothing and would cost tokens ("▁" pieces).
        let text = text.trim();
        let cap = self.max_len * BYTES_PER_TOKEN_CAP;
        let clipped;
        let text = if text.len() > cap {
            let head = floor_boundary(text, cap * 3 / 4);
            let tail = ceil_boundary(text, text.len() - cap / 4);
            clipped = format!("{} {}", &text[..head], &text[tail..]);
            clipped.as_str()
        } else {
            text
        };
        let input = format!("{}{}", self.prefix, text);
        let enc = self
            .tokenizer
            .encode(input.as_str(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let (ids_all, toks_all) = (enc.get_ids(), enc.get_tokens());
        let n = ids_all.len();
        let budget = self.max_len - 2;
        let (head, tail) = if n > budget {
            (budget - budget / 4, budget / 4)
        } else {
            (n, 0)
        };
        let keep: Vec<usize> = (0..head).chain(n - tail..n).collect();
        let cut = toks_all[head..n - tail].to_vec();
        let mut ids = Vec::with_capacity(keep.len() + 2);
        let mut pieces = Vec::with_capacity(keep.len() + 2);
        ids.push(self.bos);
        pieces.push(String::new());
        for i in keep {
            ids.push(ids_all[i]);
            pieces.push(toks_all[i].clone());
        }
        ids.push(self.eos);
        pieces.push(String::new());
        Ok(Tokenized { ids, pieces, cut })
    }

    /// Groups pieces into words ("▁" starts a word) with summed weights,
    /// skipping the prefix and words without letters or digits.
    pub fn words(&self, pieces: &[String], weights: &[f32]) -> Vec<(String, f32)> {
        self.grouped(pieces, weights)
            .into_iter()
            // Reviewers read "SEBARKAN", not "SEBARKAN!!!".
            .map(|(s, w)| {
                (
                    s.trim_matches(|c: char| !c.is_alphanumeric()).to_string(),
                    w,
                )
            })
            .filter(|(s, _)| !s.is_empty())
            .collect()
    }

    /// The words of the whole text (`pieces` with the `cut` middle put
    /// back), punctuation kept ("SEBARKAN!!!"), prefix skipped: the
    /// character n-gram view's input.
    pub fn raw_words(&self, item: &Tokenized) -> Vec<String> {
        let mut pieces = item.pieces.clone();
        if !item.cut.is_empty() {
            // Before the kept tail (a quarter of the budget) and `</s>`.
            let at = pieces.len() - 1 - (self.max_len - 2) / 4;
            pieces.splice(at..at, item.cut.iter().cloned());
        }
        self.grouped(&pieces, &vec![0.0; pieces.len()])
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn grouped(&self, pieces: &[String], weights: &[f32]) -> Vec<(String, f32)> {
        let mut words: Vec<(String, f32)> = Vec::new();
        for (p, &w) in pieces.iter().zip(weights) {
            if p.is_empty() {
                continue;
            }
            match p.strip_prefix('\u{2581}') {
                Some(rest) => words.push((rest.to_string(), w)),
                None => match words.last_mut() {
                    Some(last) => {
                        last.0.push_str(p);
                        last.1 += w;
                    }
                    None => words.push((p.clone(), w)),
                },
            }
        }
        words.into_iter().skip(self.prefix_words).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_keep_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        patroli_training::build_tiny_model(dir.path(), 1).unwrap();
        let enc = TextEncoder::load(
            &dir.path().join("base/tokenizer.json"),
            None,
            "query: ",
            0,
            2,
            10,
        )
        .unwrap();
        let text = format!("  kpu {} hoaks  ", "yang ".repeat(500));
        let t = enc.encode(&text).unwrap();
        assert_eq!(t.ids.len(), 10);
        assert_eq!((t.ids[0], t.ids[9]), (0, 2));
        let p: Vec<&str> = t.pieces.iter().map(String::as_str).collect();
        assert_eq!(p[1..4], ["\u{2581}query", ":", "\u{2581}kpu"]);
        assert_eq!(p[8], "\u{2581}hoaks");
        let words = enc.words(&t.pieces, &[1.0; 10]);
        assert_eq!(words.first().map(|w| w.0.as_str()), Some("kpu"));
        assert!(enc.encode("").unwrap().ids.len() >= 2);
    }
}
