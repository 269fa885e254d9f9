//! Text to token ids: prefix, SentencePiece via `tokenizer.json`, truncation.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::ModelError;

/// Bytes of input kept before tokenising: far more than any `max_len` can
/// use (a piece covers at least one character), and it bounds the cost of
/// megabyte-sized posts.
const BYTES_PER_TOKEN_CAP: usize = 16;

pub(crate) struct TextEncoder {
    tokenizer: Tokenizer,
    prefix: String,
    bos: u32,
    eos: u32,
    pub max_len: usize,
    /// Words the prefix occupies, skipped when naming reason tokens.
    prefix_words: usize,
}

pub(crate) struct Tokenized {
    /// `<s> pieces.. </s>`, at most `max_len` long.
    pub ids: Vec<u32>,
    /// SentencePiece strings aligned with `ids` ("" for the specials).
    pub pieces: Vec<String>,
}

impl TextEncoder {
    pub fn load(
        path: &Path,
        prefix: &str,
        bos: u32,
        eos: u32,
        max_len: usize,
    ) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::MissingFile(path.to_path_buf()));
        }
        let tokenizer = Tokenizer::from_file(path)
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

    pub fn encode(&self, text: &str) -> Result<Tokenized, ModelError> {
        // Edge whitespace carries nothing and would cost tokens ("▁" pieces).
        let text = text.trim();
        let cap = self.max_len * BYTES_PER_TOKEN_CAP;
        let mut end = text.len().min(cap);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let input = format!("{}{}", self.prefix, &text[..end]);
        let enc = self
            .tokenizer
            .encode(input.as_str(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let keep = enc.get_ids().len().min(self.max_len - 2);
        let mut ids = Vec::with_capacity(keep + 2);
        let mut pieces = Vec::with_capacity(keep + 2);
        ids.push(self.bos);
        pieces.push(String::new());
        ids.extend_from_slice(&enc.get_ids()[..keep]);
        pieces.extend(enc.get_tokens()[..keep].iter().cloned());
        ids.push(self.eos);
        pieces.push(String::new());
        Ok(Tokenized { ids, pieces })
    }

    /// Groups pieces into words ("▁" starts a word) with summed weights,
    /// skipping the prefix and words without letters or digits.
    pub fn words(&self, pieces: &[String], weights: &[f32]) -> Vec<(String, f32)> {
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
        words
            .into_iter()
            .skip(self.prefix_words)
            .filter(|(s, _)| s.chars().any(char::is_alphanumeric))
            .collect()
    }
}
