//! Known-claim matching: an archive of checked claims (hoaxes and genuine
//! items, with their provenance), searched with the encoder's own pooled
//! vector, so a post costs one matrix product against the archive and no
//! second forward pass.
//!
//! Why: a fact-checker first asks whether a post repeats a claim already
//! checked. e5 is a retrieval model; its similarity to the nearest known
//! hoax, against the nearest known genuine item, carries evidence the
//! wording alone does not, and names the claim a reviewer can cite.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Neighbours kept per side (hoax / genuine) for the match features.
const TOP_K: usize = 5;
/// Queries per matrix product: bounds the similarity block to
/// `QUERY_BLOCK * archive size` floats.
const QUERY_BLOCK: usize = 256;
/// Matches listed with a prediction, at most.
const SHOWN_MATCHES: usize = 3;
/// Numbers the stacked head reads from a post's neighbours (`match_features`).
pub const MATCH_FEATURES: usize = 5;

/// What checking a claim found, as a model's archive (`claims.jsonl`)
/// records it. The archive is the model's file, not a wire message: the
/// classifier maps it to and from `claims.v1` (its `ClaimVerdict` has the
/// same two values and spelling, so an archive written from the topic reads
/// back unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Hoax,
    /// Genuine news, official information or a clarification.
    Genuine,
}

/// One checked claim. `text` is absent where the source's licence does not
/// let us redistribute it (the vector and provenance still ship).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub verdict: Verdict,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The nearest claims of one query on each side, best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Neighbours {
    pub hoax: Vec<(usize, f32)>,
    pub genuine: Vec<(usize, f32)>,
}

impl Neighbours {
    /// What the stacked head reads: the best similarity on each side, their
    /// margin and each side's mean over its top five. A side with no claim
    /// counts as similarity 0 (e5 similarities of real text sit far above).
    pub fn features(&self) -> [f32; MATCH_FEATURES] {
        let best = |v: &[(usize, f32)]| v.first().map_or(0.0, |x| x.1);
        let mean = |v: &[(usize, f32)]| v.iter().map(|x| x.1).sum::<f32>() / TOP_K as f32;
        let (h, g) = (best(&self.hoax), best(&self.genuine));
        [h, g, h - g, mean(&self.hoax), mean(&self.genuine)]
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / n).collect()
}

/// A claim a post resembles, and how closely (cosine similarity of the two
/// pooled vectors).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimMatch {
    pub claim: Claim,
    pub similarity: f32,
}

/// Claims and their unit vectors; exact search by one matrix product per
/// block of queries (measured in `docs/claims.md`).
#[derive(Clone)]
pub struct ClaimIndex {
    dim: usize,
    claims: Vec<Claim>,
    by_id: HashMap<String, usize>,
    vectors: Vec<f32>,
    /// `vectors` as a (claims, dim) tensor, rebuilt after changes.
    matrix: Option<Tensor>,
}

impl ClaimIndex {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            claims: Vec::new(),
            by_id: HashMap::new(),
            vectors: Vec::new(),
            matrix: None,
        }
    }

    pub fn len(&self) -> usize {
        self.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Adds `claim` with the pooled vector of its text, or replaces the
    /// claim of the same id (a compacted topic's newer record wins).
    pub fn upsert(&mut self, claim: Claim, pooled: &[f32]) -> Result<(), ModelError> {
        if pooled.len() != self.dim {
            return Err(ModelError::Format(format!(
                "claim {}: vector has {} values, the index {}",
                claim.id,
                pooled.len(),
                self.dim
            )));
        }
        let v = unit(pooled);
        match self.by_id.get(&claim.id) {
            Some(&i) => {
                self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&v);
                self.claims[i] = claim;
            }
            None => {
                self.by_id.insert(claim.id.clone(), self.claims.len());
                self.claims.push(claim);
                self.vectors.extend_from_slice(&v);
            }
        }
        self.matrix = None;
        Ok(())
    }

    /// Removes the claim `id` (a tombstone on the topic); true if it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        let last = self.claims.len() - 1;
        self.claims.swap_remove(i);
        let d = self.dim;
        if i != last {
            self.vectors.copy_within(last * d..(last + 1) * d, i * d);
            self.by_id.insert(self.claims[i].id.clone(), i);
        }
        self.vectors.truncate(last * d);
        self.matrix = None;
        true
    }

    /// The (dim, claims) matrix a block of queries multiplies.
    fn matrix(&self) -> Result<Tensor, ModelError> {
        if let Some(m) = &self.matrix {
            return Ok(m.clone());
        }
        let m = Tensor::from_slice(&self.vectors, (self.claims.len(), self.dim), &Device::Cpu)?;
        Ok(m.t()?.contiguous()?)
    }

    /// Builds the search matrix once after a round of changes; until then
    /// every search builds its own.
    pub fn prepare(&mut self) -> Result<(), ModelError> {
        if !self.is_empty() && self.matrix.is_none() {
            self.matrix = Some(self.matrix()?);
        }
        Ok(())
    }

    /// The nearest claims of each query (pooled vectors, any length scale),
    /// skipping the claims `skip(query, claim)` names.
    pub fn nearest(
        &self,
        queries: &[Vec<f32>],
        skip: &dyn Fn(usize, usize) -> bool,
    ) -> Result<Vec<Neighbours>, ModelError> {
        let mut out = vec![Neighbours::default(); queries.len()];
        if self.is_empty() || queries.is_empty() {
            return Ok(out);
        }
        let dim = self.dim;
        let m = self.matrix()?;
        for (block, chunk) in queries.chunks(QUERY_BLOCK).enumerate() {
            let mut flat = Vec::with_capacity(chunk.len() * dim);
            for q in chunk {
                if q.len() != dim {
                    return Err(ModelError::Format(format!(
                        "query has {} values, the index {dim}",
                        q.len()
                    )));
                }
                flat.extend(unit(q));
            }
            let q = Tensor::from_vec(flat, (chunk.len(), dim), &Device::Cpu)?;
            let sims = q.matmul(&m)?.to_vec2::<f32>()?;
            for (j, row) in sims.iter().enumerate() {
                let qi = block * QUERY_BLOCK + j;
                let n = &mut out[qi];
                for (ci, &s) in row.iter().enumerate() {
                    if skip(qi, ci) {
                        continue;
                    }
                    let side = match self.claims[ci].verdict {
                        Verdict::Hoax => &mut n.hoax,
                        Verdict::Genuine => &mut n.genuine,
                    };
                    keep_top(side, (ci, s));
                }
            }
        }
        Ok(out)
    }

    /// The claims shown with a prediction: those at or above `min_similarity`,
    /// most similar first, at most `SHOWN_MATCHES`.
    pub fn shown(&self, n: &Neighbours, min_similarity: f32) -> Vec<ClaimMatch> {
        let mut all: Vec<(usize, f32)> = n
            .hoax
            .iter()
            .chain(&n.genuine)
            .copied()
            .filter(|&(_, s)| s >= min_similarity)
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(SHOWN_MATCHES);
        all.into_iter()
            .map(|(i, similarity)| ClaimMatch {
                claim: self.claims[i].clone(),
                similarity,
            })
            .collect()
    }
}

impl ClaimIndex {
    /// Writes `<stem>.jsonl` (the claims, in index order) and
    /// `<stem>.safetensors` (the vectors as int8 codes with one scale per
    /// claim: a quarter of f32's size, cosine error about 1e-3).
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), ModelError> {
        let jsonl = dir.join(format!("{stem}.jsonl"));
        let mut lines = String::new();
        for c in &self.claims {
            lines.push_str(&serde_json::to_string(c).expect("a claim serialises"));
            lines.push('\n');
        }
        std::fs::write(&jsonl, lines).map_err(|e| ModelError::io(&jsonl, e))?;
        let (n, d) = (self.claims.len(), self.dim);
        let mut codes = Vec::with_capacity(n * d);
        let mut scales = Vec::with_capacity(n);
        for v in self.vectors.chunks(d.max(1)).take(n) {
            let scale = v.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            scales.push(scale);
            codes.extend(v.iter().map(|x| {
                let q = if scale > 0.0 {
                    (x / scale).round()
                } else {
                    0.0
                };
                (q as i32 + 128) as u8
            }));
        }
        let dev = Device::Cpu;
        let mut t = HashMap::new();
        t.insert("codes".to_string(), Tensor::from_vec(codes, (n, d), &dev)?);
        t.insert("scales".to_string(), Tensor::from_vec(scales, n, &dev)?);
        candle_core::safetensors::save(&t, dir.join(format!("{stem}.safetensors")))?;
        Ok(())
    }

    /// Reads what `save` wrote.
    pub fn load(dir: &Path, stem: &str) -> Result<Self, ModelError> {
        let jsonl = dir.join(format!("{stem}.jsonl"));
        let text = std::fs::read_to_string(&jsonl).map_err(|e| ModelError::io(&jsonl, e))?;
        let claims = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<Claim>(l).map_err(|e| {
                    ModelError::Format(format!("{} line {}: {e}", jsonl.display(), i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = dir.join(format!("{stem}.safetensors"));
        let t = crate::weights_file::load_safetensors(&path)?;
        let get = |n: &str| {
            t.get(n)
                .ok_or_else(|| ModelError::Format(format!("{}: no tensor {n}", path.display())))
        };
        let (codes, scales) = (get("codes")?, get("scales")?.to_vec1::<f32>()?);
        let (n, d) = codes.dims2()?;
        if n != claims.len() || scales.len() != n {
            return Err(ModelError::Format(format!(
                "{}: {n} vectors and {} scales for {} claims",
                path.display(),
                scales.len(),
                claims.len()
            )));
        }
        let mut index = Self::new(d);
        for ((claim, row), scale) in claims.into_iter().zip(codes.to_vec2::<f32>()?).zip(scales) {
            let v: Vec<f32> = row.iter().map(|&c| (c - 128.0) * scale).collect();
            index.upsert(claim, &v)?;
        }
        Ok(index)
    }
}

/// Inserts `x` into the best-first list `top`, keeping `TOP_K`.
fn keep_top(top: &mut Vec<(usize, f32)>, x: (usize, f32)) {
    if top.len() == TOP_K && top[TOP_K - 1].1 >= x.1 {
        return;
    }
    let at = top.partition_point(|y| y.1 >= x.1);
    top.insert(at, x);
    top.truncate(TOP_K);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, verdict: Verdict) -> Claim {
        Claim {
            id: id.into(),
            verdict,
            source: "test".into(),
            text: None,
            date: None,
            url: None,
        }
    }

    #[test]
    fn nearest_finds_each_side_best_first_and_skips() {
        let mut idx = ClaimIndex::new(2);
        idx.upsert(claim("h1", Verdict::Hoax), &[1.0, 0.0]).unwrap();
        idx.upsert(claim("h2", Verdict::Hoax), &[0.0, 1.0]).unwrap();
        idx.upsert(claim("g1", Verdict::Genuine), &[1.0, 1.0])
            .unwrap();
        let n = idx.nearest(&[vec![2.0, 0.1]], &|_, _| false).unwrap();
        assert_eq!(n[0].hoax.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1]);
        assert!((n[0].hoax[0].1 - 2.0 / (4.01f32).sqrt()).abs() < 1e-5);
        assert_eq!(n[0].genuine.len(), 1);
        let skipped = idx.nearest(&[vec![2.0, 0.1]], &|_, c| c == 0).unwrap();
        assert_eq!(skipped[0].hoax.iter().map(|x| x.0).collect::<Vec<_>>(), [1]);
        let f = n[0].features();
        assert_eq!(f[2], f[0] - f[1]);
        assert!((f[3] - (n[0].hoax[0].1 + n[0].hoax[1].1) / TOP_K as f32).abs() < 1e-6);
    }

    #[test]
    fn upsert_replaces_and_remove_keeps_the_rest_findable() {
        let mut idx = ClaimIndex::new(2);
        idx.upsert(claim("a", Verdict::Hoax), &[1.0, 0.0]).unwrap();
        idx.upsert(claim("b", Verdict::Hoax), &[0.0, 1.0]).unwrap();
        idx.upsert(claim("c", Verdict::Genuine), &[-1.0, 0.0])
            .unwrap();
        idx.upsert(claim("a", Verdict::Genuine), &[0.0, -1.0])
            .unwrap();
        assert_eq!(idx.len(), 3);
        assert!(idx.remove("a"));
        assert!(!idx.remove("a"));
        let n = idx.nearest(&[vec![-1.0, 0.0]], &|_, _| false).unwrap();
        let shown = idx.shown(&n[0], 0.5);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].claim.id, "c");
        assert_eq!(shown[0].claim.verdict, Verdict::Genuine);
        let err = idx
            .upsert(claim("d", Verdict::Hoax), &[1.0])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "bad model format: claim d: vector has 1 values, the index 2"
        );
    }

    #[test]
    fn saves_and_loads_within_int8_precision() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = ClaimIndex::new(3);
        let mut c = claim("a", Verdict::Hoax);
        c.text = Some("Surat suara sudah dicoblos".into());
        c.url = Some("https://example.org/a".into());
        idx.upsert(c.clone(), &[0.3, -0.2, 0.9]).unwrap();
        idx.upsert(claim("b", Verdict::Genuine), &[0.0, 1.0, 0.0])
            .unwrap();
        idx.save(dir.path(), "claims").unwrap();
        let back = ClaimIndex::load(dir.path(), "claims").unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.claims[0], c);
        let n = back
            .nearest(&[vec![0.3, -0.2, 0.9]], &|_, _| false)
            .unwrap();
        assert!((n[0].hoax[0].1 - 1.0).abs() < 1e-3, "{:?}", n[0]);
        assert!(n[0].genuine[0].1.abs() < 0.25);
        std::fs::write(dir.path().join("claims.jsonl"), "{\"id\": 1}\n").unwrap();
        let err = ClaimIndex::load(dir.path(), "claims")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("claims.jsonl line 1: invalid type"), "{err}");
    }

    #[test]
    fn keep_top_holds_the_best_five_in_order() {
        let mut top = Vec::new();
        for (i, s) in [0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.3].into_iter().enumerate() {
            keep_top(&mut top, (i, s));
        }
        let sims: Vec<f32> = top.iter().map(|x| x.1).collect();
        assert_eq!(sims, [0.9, 0.8, 0.7, 0.5, 0.3]);
    }
}
