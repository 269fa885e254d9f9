//! The labelled corpus (`models/data/corpus/*.jsonl`, format in
//! `models/data/TAXONOMY.md`) and its deterministic narrative split.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Head output order: the six hoax categories, then the five others.
pub const CATEGORIES: [&str; 11] = [
    "ballot_fraud",
    "fake_official",
    "procedure_misinfo",
    "fabricated_quote",
    "sara_provocation",
    "other_hoax",
    "election_news",
    "official_info",
    "fact_check",
    "satire",
    "non_election",
];
pub const DISINFO_CATEGORIES: [&str; 6] = [
    "ballot_fraud",
    "fake_official",
    "procedure_misinfo",
    "fabricated_quote",
    "sara_provocation",
    "other_hoax",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub text: String,
    pub disinformation: u8,
    pub category: String,
    pub narrative: String,
    #[serde(default)]
    pub style: String,
}

impl Example {
    pub fn category_index(&self) -> usize {
        CATEGORIES
            .iter()
            .position(|c| *c == self.category)
            .expect("validated on load")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "dev" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            _ => Err(format!("unknown split {s:?} (train, dev, test)")),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        })
    }
}

/// 70/15/15 by a stable hash (FNV-1a 64) of the normalised narrative slug,
/// so every variant of a story lands in the same split.
pub fn split_of(narrative: &str) -> Split {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in narrative.trim().to_lowercase().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 100 {
        0..70 => Split::Train,
        70..85 => Split::Dev,
        _ => Split::Test,
    }
}

/// Reads examples from JSONL files or directories of them (sorted, so the
/// order is deterministic). Malformed or inconsistent records are errors:
/// silently dropping labels would skew training and evaluation.
pub fn load_examples(paths: &[PathBuf]) -> Result<Vec<Example>, ModelError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ModelError::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        read_file(&f, &mut out)?;
    }
    Ok(out)
}

fn read_file(path: &Path, out: &mut Vec<Example>) -> Result<(), ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let ex: Example =
            serde_json::from_str(line).map_err(|e| ModelError::Data(format!("{}: {e}", at())))?;
        let Some(ci) = CATEGORIES.iter().position(|c| *c == ex.category) else {
            return Err(ModelError::Data(format!(
                "{}: unknown category {:?}",
                at(),
                ex.category
            )));
        };
        if u8::from(ci < DISINFO_CATEGORIES.len()) != ex.disinformation {
            return Err(ModelError::Data(format!(
                "{}: disinformation={} contradicts category {}",
                at(),
                ex.disinformation,
                ex.category
            )));
        }
        out.push(ex);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_normalised() {
        let s = split_of("surat-suara-tercoblos-malaysia");
        for _ in 0..3 {
            assert_eq!(split_of("surat-suara-tercoblos-malaysia"), s);
        }
        assert_eq!(split_of("  Surat-Suara-Tercoblos-Malaysia "), s);
        // Pinned values: changing the hash would silently reshuffle test data.
        assert_eq!(split_of(""), Split::Train);
        let counts = (0..3000).fold([0usize; 3], |mut acc, i| {
            acc[split_of(&format!("narrative-{i}")) as usize] += 1;
            acc
        });
        assert!((1950..2250).contains(&counts[0]), "{counts:?}");
        assert!((330..570).contains(&counts[1]), "{counts:?}");
        assert!((330..570).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn loader_rejects_inconsistent_labels() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jsonl");
        std::fs::write(
            &f,
            "{\"id\":\"a-1\",\"text\":\"x\",\"disinformation\":1,\"category\":\"satire\",\"narrative\":\"n\"}\n",
        )
        .unwrap();
        let err = load_examples(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("a.jsonl:1"), "{err}");
        std::fs::write(
            &f,
            "{\"id\":\"a-1\",\"text\":\"x\",\"disinformation\":0,\"category\":\"satire\",\"narrative\":\"n\"}\n\n",
        )
        .unwrap();
        assert_eq!(load_examples(&[f]).unwrap().len(), 1);
    }
}
