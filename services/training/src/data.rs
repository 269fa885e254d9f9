//! The labelled corpus (`models/data/corpus/*.jsonl`, format in
//! `models/data/TAXONOMY.md`) and its deterministic narrative split.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use patroli_inference::fnv::{fnv1a, FNV_OFFSET};

use patroli_contracts::taxonomy::PROTECTED_CATEGORIES;
pub use patroli_contracts::taxonomy::{CATEGORIES, DISINFO_CATEGORIES};
/// Genres whose false positives would be takedowns of genuine journalism or official
/// information: the threshold is set on them, with the protected categories.
const PROTECTED_GENRES: [&str; 2] = ["news", "official"];

/// One labelled text. The corpus carries a category for every example; most
/// public and reviewer data carries only the binary label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub text: String,
    pub disinformation: u8,
    pub category: Option<String>,
    /// Variants of one story share it and so one split.
    pub narrative: String,
    pub style: String,
    /// Where the example came from (the record's `source`, else the name of
    /// the directory holding its file): the unit of per-source weighting and
    /// reporting.
    pub source: String,
    /// Form of the text (`news`, `official`, `fact_check_title`, `post`, ...).
    pub genre: Option<String>,
    /// A split fixed by whoever built the data; otherwise the narrative's.
    pub split: Option<Split>,
}

/// A JSONL record as found: `disinformation` (0/1) or `label` ("hoax"/"not").
#[derive(Deserialize)]
struct Record {
    id: Option<String>,
    text: String,
    disinformation: Option<u8>,
    label: Option<String>,
    category: Option<String>,
    narrative: Option<String>,
    #[serde(default)]
    style: String,
    source: Option<String>,
    genre: Option<String>,
    split: Option<String>,
}

impl Example {
    pub fn category_index(&self) -> Option<usize> {
        let c = self.category.as_deref()?;
        CATEGORIES.iter().position(|k| *k == c)
    }

    pub fn hoax(&self) -> bool {
        self.disinformation == 1
    }

    pub fn split(&self) -> Split {
        self.split.unwrap_or_else(|| split_of(&self.narrative))
    }

    /// Genuine news or official information.
    pub fn protected(&self) -> bool {
        !self.hoax()
            && (self
                .category
                .as_deref()
                .is_some_and(|c| PROTECTED_CATEGORIES.contains(&c))
                || self
                    .genre
                    .as_deref()
                    .is_some_and(|g| PROTECTED_GENRES.contains(&g)))
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
    match split_hash(narrative) % 100 {
        0..70 => Split::Train,
        70..85 => Split::Dev,
        _ => Split::Test,
    }
}

/// FNV-1a 64 of the trimmed, lowercased key.
pub(crate) fn split_hash(key: &str) -> u64 {
    fnv1a(FNV_OFFSET, key.trim().to_lowercase().bytes())
}

/// Reads examples from JSONL files or directories of them (sorted, so the
/// order is deterministic). Malformed or inconsistent records are errors:
/// silently dropping labels would skew training and evaluation.
pub fn load_examples(paths: &[PathBuf]) -> Result<Vec<Example>, ModelError> {
    let mut out = Vec::new();
    for f in data_files(paths)? {
        read_file(&f, &mut out)?;
    }
    Ok(out)
}

/// The JSONL files `paths` name: files as given, directories' `*.jsonl` sorted.
pub fn data_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ModelError> {
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
    Ok(files)
}

fn read_file(path: &Path, out: &mut Vec<Example>) -> Result<(), ModelError> {
    let dir_name = path
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| "data".to_string(), |n| n.to_string_lossy().into_owned());
    for (at, rec) in jsonl_records::<Record>(path)? {
        out.push(example(rec, &at, &dir_name).map_err(|e| ModelError::Data(format!("{at}: {e}")))?);
    }
    Ok(())
}

/// Every non-blank line of a JSONL file as a `T`, with its `path:line`; a
/// line that is not a `T` is a data error naming that place.
pub(crate) fn jsonl_records<T: DeserializeOwned>(
    path: &Path,
) -> Result<Vec<(String, T)>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let at = format!("{}:{}", path.display(), n + 1);
            match serde_json::from_str(line) {
                Ok(record) => Ok((at, record)),
                Err(e) => Err(ModelError::Data(format!("{at}: {e}"))),
            }
        })
        .collect()
}

fn example(rec: Record, at: &str, dir_name: &str) -> Result<Example, String> {
    let from_label = match rec.label.as_deref().map(str::to_lowercase).as_deref() {
        None => None,
        Some("hoax" | "hoaks" | "disinformation" | "1") => Some(1),
        Some("not" | "not_hoax" | "valid" | "0") => Some(0),
        Some(other) => return Err(format!("unknown label {other:?} (hoax or not)")),
    };
    let disinformation = match (rec.disinformation, from_label) {
        (Some(d), _) if d > 1 => return Err(format!("disinformation must be 0 or 1, not {d}")),
        (Some(d), Some(l)) if d != l => {
            return Err(format!("disinformation={d} contradicts label"));
        }
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => return Err("needs `disinformation` (0/1) or `label` (hoax/not)".into()),
    };
    if let Some(c) = &rec.category {
        let Some(ci) = CATEGORIES.iter().position(|k| k == c) else {
            return Err(format!("unknown category {c:?}"));
        };
        if u8::from(ci < DISINFO_CATEGORIES.len()) != disinformation {
            return Err(format!(
                "disinformation={disinformation} contradicts category {c}"
            ));
        }
    }
    let split = rec.split.map(|s| s.parse::<Split>()).transpose()?;
    let id = rec.id.unwrap_or_else(|| at.to_string());
    Ok(Example {
        narrative: rec.narrative.unwrap_or_else(|| id.clone()),
        id,
        text: rec.text,
        disinformation,
        category: rec.category,
        style: rec.style,
        source: rec.source.unwrap_or_else(|| dir_name.to_string()),
        genre: rec.genre,
        split,
    })
}

/// FNV-1a 64 over the data files' paths and bytes, in load order: the data
/// version a model was trained on, recorded in its spec and reports.
pub fn data_fingerprint(paths: &[PathBuf]) -> Result<String, ModelError> {
    let mut h = FNV_OFFSET;
    for f in data_files(paths)? {
        let bytes = std::fs::read(&f).map_err(|e| ModelError::io(&f, e))?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        h = fnv1a(h, name.unwrap_or_default().bytes().chain(bytes));
    }
    Ok(format!("fnv1a64:{h:016x}"))
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

    #[test]
    fn binary_records_without_category() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("reviewers");
        std::fs::create_dir_all(&sub).unwrap();
        let f = sub.join("labels.jsonl");
        std::fs::write(
            &f,
            concat!(
                "{\"text\":\"a\",\"label\":\"hoax\"}\n",
                "{\"id\":\"b\",\"text\":\"b\",\"label\":\"not\",\"genre\":\"news\",\"source\":\"s\",\"split\":\"dev\"}\n",
            ),
        )
        .unwrap();
        let ex = load_examples(std::slice::from_ref(&f)).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!((ex[0].disinformation, ex[0].category.as_deref()), (1, None));
        assert_eq!(ex[0].source, "reviewers");
        assert!(ex[0].id.ends_with("labels.jsonl:1"), "{}", ex[0].id);
        assert!(!ex[0].protected());
        assert_eq!((ex[1].source.as_str(), ex[1].split()), ("s", Split::Dev));
        assert!(ex[1].protected());
        for (line, want) in [
            (
                "{\"text\":\"x\"}",
                "needs `disinformation` (0/1) or `label` (hoax/not)",
            ),
            (
                "{\"text\":\"x\",\"label\":\"maybe\"}",
                "unknown label \"maybe\" (hoax or not)",
            ),
            (
                "{\"text\":\"x\",\"label\":\"not\",\"disinformation\":1}",
                "disinformation=1 contradicts label",
            ),
            (
                "{\"text\":\"x\",\"label\":\"hoax\",\"split\":\"val\"}",
                "unknown split \"val\" (train, dev, test)",
            ),
        ] {
            std::fs::write(&f, format!("{line}\n")).unwrap();
            let err = load_examples(std::slice::from_ref(&f))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("bad data: {}:1: {want}", f.display()));
        }
    }
}
