//! The rows the stacked head trains on: each labelled example's encoder
//! output (run once, kept in an append-only cache between runs), its
//! n-gram term frequencies, and its match features against the claim
//! archive of the current fit.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use patroli_inference::Verdict;

use crate::data::{Example, Split};
use crate::stack_train::StackOptions;
use crate::ModelError;
use patroli_inference::claims::{Claim, ClaimIndex, MATCH_FEATURES};
use patroli_inference::ngram::term_frequencies;
use patroli_inference::spec::WEIGHTS_FILE;
use patroli_inference::text::Tokenized;
use patroli_inference::{token_budget_batches, Classifier};

/// One labelled row as the head sees it.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) narrative: String,
    pub(crate) text: String,
    pub(crate) pooled: Vec<f32>,
    /// Sublinear term frequencies, before IDF.
    pub(crate) tf: Vec<(u32, f32)>,
    /// `Neighbours::features` against the archive of the current fit.
    pub(crate) matches: [f32; MATCH_FEATURES],
    pub(crate) hoax: bool,
    pub(crate) protected: bool,
    pub(crate) source: String,
    pub(crate) split: Split,
}

impl Row {
    /// The head's dense input: the pooled state, then the match features
    /// when the head reads them.
    pub(crate) fn dense(&self, with_matches: bool) -> Vec<f32> {
        let mut d = self.pooled.clone();
        if with_matches {
            d.extend_from_slice(&self.matches);
        }
        d
    }

    fn claim(&self, opts: &StackOptions) -> Claim {
        Claim {
            id: self.id.clone(),
            verdict: if self.hoax {
                Verdict::Hoax
            } else {
                Verdict::Genuine
            },
            source: self.source.clone(),
            text: opts
                .claim_texts_from
                .contains(&self.source)
                .then(|| self.text.clone()),
            date: None,
            url: None,
        }
    }
}

/// Builds the claim archive from the rows `in_archive` admits and sets every
/// row's match features against it; a row never matches its own narrative
/// (its variants), as a post never matches itself.
pub(crate) fn match_rows(
    rows: &mut [Row],
    in_archive: impl Fn(&Row) -> bool,
    opts: &StackOptions,
) -> Result<ClaimIndex, ModelError> {
    let dim = rows[0].pooled.len();
    let mut index = ClaimIndex::new(dim);
    // Narratives as numbers: the skip test runs once per (row, claim) pair.
    let mut numbers: HashMap<&str, u32> = HashMap::new();
    let narratives: Vec<u32> = rows
        .iter()
        .map(|r| {
            let next = numbers.len() as u32;
            *numbers.entry(r.narrative.as_str()).or_insert(next)
        })
        .collect();
    let mut narrative_of = Vec::new();
    for (r, &n) in rows.iter().zip(&narratives).filter(|(r, _)| in_archive(r)) {
        index.upsert(r.claim(opts), &r.pooled)?;
        narrative_of.push(n);
    }
    let queries: Vec<Vec<f32>> = rows.iter().map(|r| r.pooled.clone()).collect();
    let near = index.nearest(&queries, &|q, c| narratives[q] == narrative_of[c])?;
    for (r, n) in rows.iter_mut().zip(near) {
        r.matches = n.features();
    }
    Ok(index)
}

/// Runs the encoder over every example (or reads its output from the cache).
pub(crate) fn encode_rows(
    clf: &Classifier,
    examples: &[Example],
    cache: Option<&Path>,
) -> Result<Vec<Row>, ModelError> {
    let toks = examples
        .iter()
        .map(|e| clf.tokenize(&e.text))
        .collect::<Result<Vec<_>, _>>()?;
    let pooled = pooled_vectors(clf, &toks, cache)?;
    Ok(examples
        .iter()
        .zip(&toks)
        .zip(pooled)
        .map(|((e, t), pooled)| {
            let words = clf.read_words(t);
            Row {
                id: e.id.clone(),
                narrative: e.narrative.clone(),
                text: e.text.clone(),
                pooled,
                tf: term_frequencies(words.iter().map(String::as_str)),
                matches: [0.0; MATCH_FEATURES],
                hoax: e.hoax(),
                protected: e.protected(),
                source: e.source.clone(),
                split: e.split(),
            }
        })
        .collect())
}

/// The encoder's pooled output for every tokenized text, in input order:
/// read from the append-only `cache` where known, computed (and appended)
/// otherwise. Stacking and distillation (the teacher's targets) share it.
pub(crate) fn pooled_vectors(
    clf: &Classifier,
    toks: &[Tokenized],
    cache: Option<&Path>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let keys: Vec<u64> = toks.iter().map(|t| crate::cache::ids_key(&t.ids)).collect();
    let mut known: HashMap<u64, Vec<f32>> = match cache {
        Some(f) if f.exists() => read_views(f)?,
        _ => HashMap::new(),
    };
    let missing = crate::cache::missing(&keys, &known);
    tracing::info!(
        texts = toks.len(),
        to_encode = missing.len(),
        "encoder outputs"
    );
    let mut writer = match cache {
        Some(f) => {
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .map_err(|e| ModelError::io(f, e))?;
            Some(BufWriter::new(file))
        }
        None => None,
    };
    let lens: Vec<usize> = missing.iter().map(|&i| toks[i].ids.len()).collect();
    let batches = token_budget_batches(&lens);
    let started = Instant::now();
    for (n, batch) in batches.iter().enumerate() {
        let items: Vec<_> = batch.iter().map(|&j| &toks[missing[j]]).collect();
        for (pooled, &j) in clf.pooled(&items)?.into_iter().zip(batch) {
            let key = keys[missing[j]];
            if let Some(w) = writer.as_mut() {
                write_view(w, key, &pooled)
                    .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
            }
            known.insert(key, pooled);
        }
        if n % 20 == 19 {
            if let Some(w) = writer.as_mut() {
                w.flush()
                    .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
            }
            tracing::info!(
                batch = n + 1,
                of = batches.len(),
                secs = started.elapsed().as_secs(),
                "encoding"
            );
        }
    }
    if let Some(mut w) = writer {
        w.flush()
            .map_err(|e| ModelError::io(cache.expect("writer has a file"), e))?;
    }
    Ok(keys.iter().map(|k| known[k].clone()).collect())
}

/// One cache per encoder: named by a hash of its spec and its weights' bytes
/// (a model directory's weights are small: heads, fine-tuned layers or a
/// student; two runs of a student differ in values, not in size).
pub(crate) fn views_cache_file(dir: &Path, model_dir: &Path) -> Result<PathBuf, ModelError> {
    let h = crate::cache::model_key(
        model_dir,
        &[],
        &[patroli_inference::spec::SPEC_FILE, WEIGHTS_FILE],
    )?;
    Ok(dir.join(format!("views-{h:016x}.bin")))
}

fn write_view(w: &mut impl Write, key: u64, pooled: &[f32]) -> std::io::Result<()> {
    w.write_all(&key.to_le_bytes())?;
    w.write_all(&(pooled.len() as u32).to_le_bytes())?;
    for x in pooled {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Reads every whole record; a torn last record (an interrupted run) is
/// ignored and recomputed.
fn read_views(path: &Path) -> Result<HashMap<u64, Vec<f32>>, ModelError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| ModelError::io(path, e))?;
    let mut out = HashMap::new();
    let mut at = 0usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    while at + 12 <= bytes.len() {
        let key = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let dims = u32_at(at + 8) as usize;
        let end = at + 12 + 4 * dims;
        if end > bytes.len() {
            break;
        }
        let pooled = (0..dims)
            .map(|d| f32::from_bits(u32_at(at + 12 + 4 * d)))
            .collect();
        out.insert(key, pooled);
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_cache_record_is_dropped_and_whole_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("views.bin");
        let mut buf = Vec::new();
        write_view(&mut buf, 7, &[1.0, 2.0]).unwrap();
        write_view(&mut buf, 9, &[3.0, 4.0]).unwrap();
        buf.truncate(buf.len() - 3);
        std::fs::write(&path, &buf).unwrap();
        let views = read_views(&path).unwrap();
        assert_eq!(views.len(), 1);
        assert_eq!(views[&7], vec![1.0, 2.0]);
    }
}
