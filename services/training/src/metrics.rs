//! Binary classification metrics on (score, label) pairs.

use serde::{Deserialize, Serialize};

/// ROC-AUC as the Mann-Whitney statistic: the probability that a random
/// positive outscores a random negative, ties counting one half. `None`
/// without both classes.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// Average precision (area under the precision-recall curve, step-wise):
/// sum over distinct thresholds of (recall gain) x precision, tied scores
/// entering together. `None` without positives.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0usize);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let new_tp = order[i..=j].iter().filter(|&&k| labels[k]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += (new_tp as f64 / pos as f64) * (tp as f64 / seen as f64);
        i = j + 1;
    }
    Some(ap)
}

/// Expected calibration error over `bins` equal-width score bins: the
/// sample-weighted mean |mean score - positive rate| per bin.
pub fn expected_calibration_error(scores: &[f32], labels: &[bool], bins: usize) -> f64 {
    if scores.is_empty() || bins == 0 {
        return 0.0;
    }
    let mut sum = vec![0.0f64; bins];
    let mut hits = vec![0.0f64; bins];
    let mut count = vec![0usize; bins];
    for (&s, &l) in scores.iter().zip(labels) {
        let b = ((s.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        sum[b] += s as f64;
        hits[b] += f64::from(u8::from(l));
        count[b] += 1;
    }
    let n = scores.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (count[b] as f64 / n) * ((sum[b] - hits[b]) / count[b] as f64).abs())
        .sum()
}

/// The lowest threshold at which at most `max_fpr` of `negatives` score at
/// or above it: just above the score of the first negative that would
/// exceed the allowance. `None` without negatives.
pub fn threshold_at_fpr(negatives: &[f32], max_fpr: f64) -> Option<f32> {
    if negatives.is_empty() {
        return None;
    }
    let mut s = negatives.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * s.len() as f64).floor() as usize;
    Some(s.get(allowed).map_or(0.0, |&x| next_up(x)))
}

fn next_up(x: f32) -> f32 {
    if x < 0.0 {
        return 0.0;
    }
    f32::from_bits(x.to_bits() + 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BinaryCounts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl BinaryCounts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.fn_ + self.tn)
    }
}

/// 0/0 is reported as 0 (e.g. precision with no positive predictions).
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Confusion counts with `score >= threshold` predicting positive.
pub fn binary_counts(scores: &[f32], labels: &[bool], threshold: f32) -> BinaryCounts {
    let mut c = BinaryCounts::default();
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, true) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [f32; 6] = [0.9, 0.8, 0.7, 0.6, 0.4, 0.1];
    const L: [bool; 6] = [true, false, true, true, false, false];

    #[test]
    fn auc_by_hand() {
        // Positive-negative pairs ranked correctly: 0.9 beats all 3 negatives,
        // 0.7 and 0.6 beat 2 each (not 0.8): 7 of 9.
        assert_eq!(roc_auc(&S, &L), Some(7.0 / 9.0));
        // One tie between a positive and a negative counts a half: 1.5 / 2.
        assert_eq!(roc_auc(&[0.5, 0.5, 0.2], &[true, false, false]), Some(0.75));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Positives found at ranks 1, 3, 4: (1/3)(1/1 + 2/3 + 3/4).
        let want = (1.0 + 2.0 / 3.0 + 3.0 / 4.0) / 3.0;
        assert!((average_precision(&S, &L).unwrap() - want).abs() < 1e-12);
        // A tie enters at once: both at rank 2 with precision 1/2.
        assert_eq!(average_precision(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(average_precision(&[0.5], &[false]), None);
    }

    #[test]
    fn ece_by_hand() {
        // Bin [0.9, 1.0): 0.95 (pos), 0.92 (neg): mean 0.935, rate 0.5, gap 0.435 (2/6).
        // Alone: 0.75 pos 0.25, 0.65 pos 0.35, 0.45 neg 0.45, 0.15 neg 0.15 (1/6 each).
        let s = [0.95, 0.92, 0.75, 0.65, 0.45, 0.15];
        let want = (2.0 * 0.435 + 0.25 + 0.35 + 0.45 + 0.15) / 6.0;
        let got = expected_calibration_error(&s, &L, 10);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(
            expected_calibration_error(&[1.0, 0.0], &[true, false], 10),
            0.0
        );
    }

    #[test]
    fn threshold_keeps_false_positives_within_the_rate() {
        // 10 negatives, 20%: the two highest may pass, the third may not.
        let neg = [0.1, 0.95, 0.3, 0.8, 0.7, 0.2, 0.05, 0.4, 0.6, 0.5];
        let t = threshold_at_fpr(&neg, 0.2).unwrap();
        assert!(t > 0.7 && t < 0.7001, "{t}");
        assert_eq!(binary_counts(&neg, &[false; 10], t).fp, 2);
        // 2% of 10 rounds down to none.
        let t = threshold_at_fpr(&neg, 0.02).unwrap();
        assert_eq!(binary_counts(&neg, &[false; 10], t).fp, 0);
        assert!(t > 0.95);
        // Everything allowed: threshold 0.
        assert_eq!(threshold_at_fpr(&neg, 1.0), Some(0.0));
        assert_eq!(threshold_at_fpr(&[], 0.02), None);
    }

    #[test]
    fn counts_by_hand() {
        let c = binary_counts(&S, &L, 0.65);
        assert_eq!(
            c,
            BinaryCounts {
                tp: 2,
                fp: 1,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(c.precision(), 2.0 / 3.0);
        assert_eq!(c.recall(), 2.0 / 3.0);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.accuracy(), 4.0 / 6.0);
        assert_eq!(binary_counts(&[], &[], 0.5).precision(), 0.0);
    }
}
