//! `patroli eval`: metrics of a model directory on labelled data, overall,
//! per source and on genuine news / official items, written into the model
//! directory as `<report>.json` and `<report>.md` (default `eval_report`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{data_fingerprint, load_examples, Split, CATEGORIES};
use crate::metrics::{
    average_precision, binary_counts, expected_calibration_error, roc_auc, BinaryCounts,
};
use patroli_inference::{Classifier, InferenceOptions, ModelError};

const ECE_BINS: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryRow {
    pub category: String,
    pub disinformation: bool,
    pub n: usize,
    /// Mean disinformation score of the category's examples.
    pub mean_score: f64,
    /// Share of the category's examples on the right side of the threshold.
    pub binary_accuracy: f64,
    /// Category-argmax precision / recall / F1.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceRow {
    pub source: String,
    pub n: usize,
    pub positives: usize,
    /// `None` for a source with one label only.
    pub roc_auc: Option<f64>,
    pub mean_score_hoax: Option<f64>,
    pub mean_score_not: Option<f64>,
    /// Share of its hoaxes at or above the threshold.
    pub recall: Option<f64>,
    /// Share of its non-hoaxes at or above the threshold.
    pub fpr: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub model: String,
    pub version: String,
    /// The training data version recorded in the model's spec.
    pub model_data_sha: Option<String>,
    /// `data_fingerprint` of the data evaluated.
    pub data_sha: String,
    /// The split evaluated, or "all".
    pub split: String,
    pub n: usize,
    pub positives: usize,
    pub threshold: f32,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
    /// Expected calibration error, 10 equal-width bins.
    pub ece: f64,
    pub confusion: BinaryCounts,
    /// Genuine news / official items (`Example::protected`) and the share of
    /// them at or above the threshold: would-be takedowns of real journalism.
    pub protected_n: usize,
    pub protected_fpr: f64,
    pub per_source: Vec<SourceRow>,
    /// Over the examples with a category. Rows: true category, columns:
    /// predicted (argmax), in `categories` order.
    pub category_confusion: Vec<Vec<usize>>,
    pub categories: Vec<String>,
    pub per_category: Vec<CategoryRow>,
}

/// Scores the examples of `data` (restricted to `split` if given) with the
/// model in `model_dir` and writes `<report>.json` and `<report>.md` there.
pub fn evaluate(
    model_dir: &Path,
    data: &[PathBuf],
    split: Option<Split>,
    report: &str,
) -> Result<EvalReport, ModelError> {
    let clf = Classifier::load(model_dir, &InferenceOptions::default())?;
    let examples: Vec<_> = load_examples(data)?
        .into_iter()
        .filter(|e| split.is_none_or(|s| e.split() == s))
        .collect();
    if examples.is_empty() {
        return Err(ModelError::Data("no examples to evaluate".into()));
    }
    let mut scores = Vec::with_capacity(examples.len());
    let mut predicted = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(256) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        for p in clf.score(&texts)? {
            scores.push(p.score);
            predicted.push(
                CATEGORIES
                    .iter()
                    .position(|c| *c == p.category)
                    .unwrap_or(0),
            );
        }
    }
    let items: Vec<Item> = examples
        .iter()
        .zip(&predicted)
        .map(|(e, &p)| Item {
            hoax: e.hoax(),
            truth: e.category_index(),
            predicted: p,
            source: &e.source,
            protected: e.protected(),
        })
        .collect();
    let info = clf.info();
    let mut r = build_report(
        &info.name,
        &info.version,
        split.map_or("all".to_string(), |s| s.to_string()),
        info.threshold,
        &scores,
        &items,
    );
    r.model_data_sha = patroli_inference::spec::ModelSpec::load(model_dir)?.data_sha;
    r.data_sha = data_fingerprint(data)?;
    write_report(model_dir, report, &r)?;
    Ok(r)
}

/// What the report needs of one evaluated example.
struct Item<'a> {
    hoax: bool,
    truth: Option<usize>,
    predicted: usize,
    source: &'a str,
    protected: bool,
}

fn mean(xs: impl Iterator<Item = f32>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0f64), |(n, s), x| (n + 1, s + f64::from(x)));
    (n > 0).then(|| sum / n as f64)
}

fn per_source(scores: &[f32], items: &[Item], threshold: f32) -> Vec<SourceRow> {
    let mut sources: Vec<&str> = items.iter().map(|i| i.source).collect();
    sources.sort_unstable();
    sources.dedup();
    sources
        .into_iter()
        .map(|src| {
            let idx: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].source == src)
                .collect();
            let s: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
            let l: Vec<bool> = idx.iter().map(|&i| items[i].hoax).collect();
            let side = |hoax: bool| {
                s.iter()
                    .zip(&l)
                    .filter(move |(_, &y)| y == hoax)
                    .map(|(x, _)| *x)
            };
            let above = |hoax: bool| mean(side(hoax).map(|x| f32::from(u8::from(x >= threshold))));
            SourceRow {
                source: src.to_string(),
                n: idx.len(),
                positives: l.iter().filter(|&&y| y).count(),
                roc_auc: roc_auc(&s, &l),
                mean_score_hoax: mean(side(true)),
                mean_score_not: mean(side(false)),
                recall: above(true),
                fpr: above(false),
            }
        })
        .collect()
}

fn build_report(
    model: &str,
    version: &str,
    split: String,
    threshold: f32,
    scores: &[f32],
    items: &[Item],
) -> EvalReport {
    let k = CATEGORIES.len();
    let mut cm = vec![vec![0usize; k]; k];
    for it in items {
        if let Some(t) = it.truth {
            cm[t][it.predicted] += 1;
        }
    }
    let labels: Vec<bool> = items.iter().map(|i| i.hoax).collect();
    let labels = labels.as_slice();
    let truth: Vec<Option<usize>> = items.iter().map(|i| i.truth).collect();
    let protected: Vec<f32> = scores
        .iter()
        .zip(items)
        .filter(|(_, i)| i.protected)
        .map(|(s, _)| *s)
        .collect();
    let counts = binary_counts(scores, labels, threshold);
    let per_category = (0..k)
        .map(|c| {
            let idx: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == Some(c)).collect();
            let n = idx.len();
            let mean_score = if n == 0 {
                0.0
            } else {
                idx.iter().map(|&i| f64::from(scores[i])).sum::<f64>() / n as f64
            };
            let right = idx
                .iter()
                .filter(|&&i| (scores[i] >= threshold) == labels[i])
                .count();
            let tp = cm[c][c];
            let col: usize = (0..k).map(|r| cm[r][c]).sum();
            let c_counts = BinaryCounts {
                tp,
                fp: col - tp,
                fn_: n - tp,
                tn: 0,
            };
            CategoryRow {
                category: CATEGORIES[c].to_string(),
                disinformation: c < crate::data::DISINFO_CATEGORIES.len(),
                n,
                mean_score,
                binary_accuracy: if n == 0 { 0.0 } else { right as f64 / n as f64 },
                precision: c_counts.precision(),
                recall: c_counts.recall(),
                f1: c_counts.f1(),
            }
        })
        .collect();
    EvalReport {
        model: model.to_string(),
        version: version.to_string(),
        model_data_sha: None,
        data_sha: String::new(),
        split,
        n: scores.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        threshold,
        roc_auc: roc_auc(scores, labels),
        pr_auc: average_precision(scores, labels),
        precision: counts.precision(),
        recall: counts.recall(),
        f1: counts.f1(),
        accuracy: counts.accuracy(),
        ece: expected_calibration_error(scores, labels, ECE_BINS),
        confusion: counts,
        protected_n: protected.len(),
        protected_fpr: mean(
            protected
                .iter()
                .map(|&x| f32::from(u8::from(x >= threshold))),
        )
        .unwrap_or(0.0),
        per_source: per_source(scores, items, threshold),
        category_confusion: cm,
        categories: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        per_category,
    }
}

fn write_report(model_dir: &Path, name: &str, r: &EvalReport) -> Result<(), ModelError> {
    patroli_inference::write_json(&model_dir.join(format!("{name}.json")), r)?;
    let md = model_dir.join(format!("{name}.md"));
    std::fs::write(&md, r.to_markdown()).map_err(|e| ModelError::io(&md, e))
}

fn opt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.4}"))
}

impl EvalReport {
    pub fn to_markdown(&self) -> String {
        let c = &self.confusion;
        let mut s = format!(
            "# Evaluation: {} {} on split `{}`\n\n\
             | metric | value |\n|---|---|\n\
             | examples (hoax) | {} ({}) |\n| ROC-AUC | {} |\n| PR-AUC (average precision) | {} |\n\
             | threshold | {:.3} |\n| precision | {:.4} |\n| recall | {:.4} |\n| F1 | {:.4} |\n\
             | accuracy | {:.4} |\n| ECE (10 bins) | {:.4} |\n\
             | genuine news / official items | {} |\n\
             | their false-positive rate at the threshold | {:.4} |\n\n\
             Confusion at the threshold: TP {} · FP {} · FN {} · TN {}\n\n\
             | source | n | hoax | ROC-AUC | mean score hoax | mean score not | recall | FPR |\n\
             |---|---|---|---|---|---|---|---|\n",
            self.model,
            self.version,
            self.split,
            self.n,
            self.positives,
            opt(self.roc_auc),
            opt(self.pr_auc),
            self.threshold,
            self.precision,
            self.recall,
            self.f1,
            self.accuracy,
            self.ece,
            self.protected_n,
            self.protected_fpr,
            c.tp,
            c.fp,
            c.fn_,
            c.tn
        );
        for r in &self.per_source {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.source,
                r.n,
                r.positives,
                opt(r.roc_auc),
                opt(r.mean_score_hoax),
                opt(r.mean_score_not),
                opt(r.recall),
                opt(r.fpr)
            );
        }
        if self.per_category.iter().all(|r| r.n == 0) {
            return s;
        }
        s += "\n| category | hoax | n | mean score | binary acc. | cat. precision | cat. recall | cat. F1 |\n\
              |---|---|---|---|---|---|---|---|\n";
        for r in &self.per_category {
            s += &format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                r.category,
                if r.disinformation { "yes" } else { "no" },
                r.n,
                r.mean_score,
                r.binary_accuracy,
                r.precision,
                r.recall,
                r.f1
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_tables_by_hand() {
        // Two ballot_fraud (0) hoaxes, one fact_check (8), one satire (9),
        // one uncategorised genuine news item from another source.
        let scores = [0.9, 0.3, 0.6, 0.1, 0.7];
        let rows = [
            (true, Some(0), 0, "c", false),
            (true, Some(0), 8, "c", false),
            (false, Some(8), 0, "c", false),
            (false, Some(9), 9, "c", false),
            (false, None, 6, "news", true),
        ];
        let items: Vec<Item> = rows
            .iter()
            .map(|&(hoax, truth, predicted, source, protected)| Item {
                hoax,
                truth,
                predicted,
                source,
                protected,
            })
            .collect();
        let r = build_report("m", "1", "test".into(), 0.5, &scores, &items);
        assert_eq!(
            r.confusion,
            BinaryCounts {
                tp: 1,
                fp: 2,
                fn_: 1,
                tn: 1
            }
        );
        // Positives 0.9 and 0.3 outrank 3 and 1 of the negatives 0.6, 0.1, 0.7.
        assert_eq!(r.roc_auc, Some(4.0 / 6.0));
        assert_eq!((r.protected_n, r.protected_fpr), (1, 1.0));
        assert_eq!(r.category_confusion[0][0], 1);
        assert_eq!(r.category_confusion[0][8], 1);
        assert_eq!(r.category_confusion[8][0], 1);
        assert_eq!(r.category_confusion.iter().flatten().sum::<usize>(), 4);
        let bf = &r.per_category[0];
        assert_eq!((bf.n, bf.precision, bf.recall), (2, 0.5, 0.5));
        assert!((bf.mean_score - 0.6).abs() < 1e-6);
        assert_eq!(bf.binary_accuracy, 0.5);
        let sat = &r.per_category[9];
        assert_eq!(
            (sat.n, sat.precision, sat.recall, sat.binary_accuracy),
            (1, 1.0, 1.0, 1.0)
        );
        let c = &r.per_source[0];
        assert_eq!((c.source.as_str(), c.n, c.positives), ("c", 4, 2));
        assert_eq!(c.roc_auc, Some(0.75));
        assert_eq!((c.recall, c.fpr), (Some(0.5), Some(0.5)));
        let news = &r.per_source[1];
        assert_eq!(
            (news.roc_auc, news.fpr, news.recall),
            (None, Some(1.0), None)
        );
        let md = r.to_markdown();
        assert!(md.contains("| ballot_fraud | yes | 2 |"), "{md}");
        assert!(
            md.contains("| news | 1 | 0 | n/a | n/a | 0.7000 | n/a | 1.0000 |"),
            "{md}"
        );
        assert!(
            md.contains("| their false-positive rate at the threshold | 1.0000 |"),
            "{md}"
        );
    }
}
