//! Leave-one-source-out: every source held out in turn from the head, its
//! calibration and the claim archive, and scored on its rows, as a source
//! the model never saw. The shipped source balance is the one that does best
//! here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::metrics::roc_auc;
use crate::stack_fit::logit_of;
use crate::stack_fold::{fit_fold, match_fold, views_of};
use crate::stack_rows::Row;
use crate::stack_train::{StackOptions, Views};
use crate::ModelError;
use patroli_inference::stack::StackedHead;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldOut {
    pub rows: usize,
    /// The source has one label: scored against the other label's test rows
    /// of the remaining sources.
    pub one_sided: bool,
    pub roc_auc: BTreeMap<Views, Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BalanceChoice {
    pub source_balance: f32,
    pub mean_held_out_roc_auc: Option<f64>,
}

/// The mean over held-out sources of the shipped view's ROC-AUC (None
/// without any).
pub(crate) fn mean_held_out_auc(
    held_out: &BTreeMap<String, HeldOut>,
    shipped: Views,
) -> Option<f64> {
    let aucs: Vec<f64> = held_out
        .values()
        .filter_map(|h| h.roc_auc.get(&shipped).copied().flatten())
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// Every source held out in turn: its archive built once without it, then
/// one fold per `(source balance, L2)` fitted without it and scored on its
/// rows. Returns each balance's held-out figures, in `folds` order. Leaves
/// the rows' match features set against the last fold's archive.
pub(crate) fn leave_one_source_out(
    rows: &mut [Row],
    folds: &[(f32, f32)],
    opts: &StackOptions,
) -> Result<Vec<BTreeMap<String, HeldOut>>, ModelError> {
    let sources: std::collections::BTreeSet<String> =
        rows.iter().map(|r| r.source.clone()).collect();
    let mut loso = vec![BTreeMap::new(); folds.len()];
    for s in &sources {
        let pool = |r: &Row| r.source != *s;
        match_fold(rows, &pool, opts)?;
        let rows = &*rows;
        let held = held_out(rows, s);
        let labels: Vec<bool> = held.iter().map(|r| r.hoax).collect();
        let auc = |head: &StackedHead| -> Option<f64> {
            let scores: Vec<f32> = held.iter().map(|r| logit_of(head, r)).collect();
            roc_auc(&scores, &labels)
        };
        let one_sided = !rows
            .iter()
            .filter(|r| r.source == *s)
            .any(|r| r.hoax != held[0].hoax);
        for (&(balance, l2), out) in folds.iter().zip(&mut loso) {
            let fold = fit_fold(rows, &pool, &[l2], balance, opts);
            let mut roc: BTreeMap<Views, Option<f64>> = fold
                .ablations
                .iter()
                .map(|(&v, f)| (v, auc(&f.head)))
                .collect();
            roc.insert(views_of(opts).0, auc(&fold.shipped.head));
            tracing::info!(source = %s, balance, ?roc, "held out");
            out.insert(
                s.clone(),
                HeldOut {
                    rows: held.len(),
                    one_sided,
                    roc_auc: roc,
                },
            );
        }
    }
    Ok(loso)
}

/// All rows of `source`; a one-label source gets the other label's test
/// rows of the remaining sources, as `models/data/baseline.py` does.
fn held_out<'a>(rows: &'a [Row], source: &str) -> Vec<&'a Row> {
    let mut held: Vec<&Row> = rows.iter().filter(|r| r.source == source).collect();
    let labels: std::collections::BTreeSet<bool> = held.iter().map(|r| r.hoax).collect();
    if labels.len() == 1 {
        let other = !held[0].hoax;
        held.extend(
            rows.iter()
                .filter(|r| r.source != source && r.split == Split::Test && r.hoax == other),
        );
    }
    held
}
