//! `patroli eval`: metrics of a model directory on labelled data, written
//! into the model directory as eval_report.json and eval_report.md.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{load_examples, split_of, Split, CATEGORIES};
use crate::metrics::{
    average_precision, binary_counts, expected_calibration_error, roc_auc, BinaryCounts,
};
use crate::{Classifier, InferenceOptions, ModelError};

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
pub struct EvalReport {
    pub model: String,
    pub version: String,
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
    /// Rows: true category, columns: predicted (argmax), in `categories` order.
    pub category_confusion: Vec<Vec<usize>>,
    pub categories: Vec<String>,
    pub per_category: Vec<CategoryRow>,
}

/// Scores the examples of `data` (restricted to `split` if given) with the
/// model in `model_dir` and writes the report files there.
pub fn evaluate(
    model_dir: &Path,
    data: &[PathBuf],
    split: Option<Split>,
) -> Result<EvalReport, ModelError> {
    let clf = Classifier::load(model_dir, &InferenceOptions::default())?;
    let examples: Vec<_> = load_examples(data)?
        .into_iter()
        .filter(|e| split.is_none_or(|s| split_of(&e.narrative) == s))
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
    let truth: Vec<usize> = examples.iter().map(|e| e.category_index()).collect();
    let labels: Vec<bool> = examples.iter().map(|e| e.disinformation == 1).collect();
    let info = clf.info();
    let report = build_report(
        &info.name,
        &info.version,
        split.map_or("all".to_string(), |s| s.to_string()),
        info.threshold,
        &scores,
        &labels,
        &truth,
        &predicted,
    );
    write_report(model_dir, &report)?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    model: &str,
    version: &str,
    split: String,
    threshold: f32,
    scores: &[f32],
    labels: &[bool],
    truth: &[usize],
    predicted: &[usize],
) -> EvalReport {
    let k = CATEGORIES.len();
    let mut cm = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        cm[t][p] += 1;
    }
    let counts = binary_counts(scores, labels, threshold);
    let per_category = (0..k)
        .map(|c| {
            let idx: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == c).collect();
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
        category_confusion: cm,
        categories: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        per_category,
    }
}

fn write_report(model_dir: &Path, r: &EvalReport) -> Result<(), ModelError> {
    let json = model_dir.join("eval_report.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(r).expect("report serialises") + "\n",
    )
    .map_err(|e| ModelError::io(&json, e))?;
    let md = model_dir.join("eval_report.md");
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
             | accuracy | {:.4} |\n| ECE (10 bins) | {:.4} |\n\n\
             Confusion at the threshold: TP {} · FP {} · FN {} · TN {}\n\n\
             | category | hoax | n | mean score | binary acc. | cat. precision | cat. recall | cat. F1 |\n\
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
            c.tp,
            c.fp,
            c.fn_,
            c.tn
        );
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
        // Two ballot_fraud (0) hoaxes, one fact_check (8), one satire (9).
        let scores = [0.9, 0.3, 0.6, 0.1];
        let labels = [true, true, false, false];
        let truth = [0, 0, 8, 9];
        let predicted = [0, 8, 0, 9];
        let r = build_report(
            "m",
            "1",
            "test".into(),
            0.5,
            &scores,
            &labels,
            &truth,
            &predicted,
        );
        assert_eq!(
            r.confusion,
            BinaryCounts {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
        assert_eq!(r.roc_auc, Some(0.75));
        assert_eq!(r.category_confusion[0][0], 1);
        assert_eq!(r.category_confusion[0][8], 1);
        assert_eq!(r.category_confusion[8][0], 1);
        let bf = &r.per_category[0];
        assert_eq!((bf.n, bf.precision, bf.recall), (2, 0.5, 0.5));
        assert!((bf.mean_score - 0.6).abs() < 1e-6);
        assert_eq!(bf.binary_accuracy, 0.5);
        let sat = &r.per_category[9];
        assert_eq!(
            (sat.n, sat.precision, sat.recall, sat.binary_accuracy),
            (1, 1.0, 1.0, 1.0)
        );
        assert!(r.to_markdown().contains("| ballot_fraud | yes | 2 |"));
    }
}
