//! One fold of `patroli stack`: the claim archive built from the train rows
//! a fold admits (every source, or all but one held out), and the shipped
//! head and its ablations fitted on its train and dev rows.

use std::collections::BTreeMap;

use crate::data::Split;
use crate::stack_fit::{self, Fit};
use crate::stack_rows::{match_rows, Row};
use crate::stack_train::{StackOptions, Views};
use crate::ModelError;
use patroli_inference::claims::ClaimIndex;

pub(crate) struct Fold {
    pub(crate) shipped: Fit,
    pub(crate) l2: f32,
    pub(crate) ablations: BTreeMap<Views, Fit>,
}

/// With matching on, builds the fold's archive from the train rows `pool`
/// admits and sets every row's match features against it, for the fits of
/// that fold (one per source balance) to read.
pub(crate) fn match_fold(
    rows: &mut [Row],
    pool: &dyn Fn(&Row) -> bool,
    opts: &StackOptions,
) -> Result<Option<ClaimIndex>, ModelError> {
    opts.matching
        .then(|| match_rows(rows, |r| pool(r) && r.split == Split::Train, opts))
        .transpose()
}

/// Fits a fold on the rows `pool` admits (their match features set by
/// `match_fold` for the same pool), rows weighted by their source's size to
/// the power `balance` (`stack_fit::source_weights`). The L2 penalty is the
/// one among `l2s` whose shipped head has the best dev ROC-AUC.
pub(crate) fn fit_fold(
    rows: &[Row],
    pool: &dyn Fn(&Row) -> bool,
    l2s: &[f32],
    balance: f32,
    opts: &StackOptions,
) -> Fold {
    let of = |split: Split| -> Vec<&Row> {
        rows.iter()
            .filter(|r| pool(r) && r.split == split)
            .collect()
    };
    let (train, dev) = (of(Split::Train), of(Split::Dev));
    let (shipped_view, ablation_views) = views_of(opts);
    let mut best: Option<(f64, f32, Fit)> = None;
    for &l2 in l2s {
        let fit = stack_fit::fit(&train, &dev, shipped_view, l2, balance, opts);
        let auc = fit.dev_auc.unwrap_or(0.0);
        tracing::info!(
            l2,
            dev_roc_auc = auc,
            epochs = fit.epochs,
            "stacked head fitted"
        );
        if best.as_ref().is_none_or(|b| auc > b.0) {
            best = Some((auc, l2, fit));
        }
    }
    let (_, l2, shipped) = best.expect("at least one l2");
    let ablations = ablation_views
        .iter()
        .map(|&v| (v, stack_fit::fit(&train, &dev, v, l2, balance, opts)))
        .collect();
    Fold {
        shipped,
        l2,
        ablations,
    }
}

/// The view the shipped head uses (the key its figures are reported under)
/// and the ablations measured beside it.
pub(crate) fn views_of(opts: &StackOptions) -> (Views, Vec<Views>) {
    if opts.matching {
        (
            Views::Combined,
            vec![
                Views::Classifier,
                Views::EncoderOnly,
                Views::NgramsOnly,
                Views::MatchesOnly,
            ],
        )
    } else {
        (
            Views::Classifier,
            vec![Views::EncoderOnly, Views::NgramsOnly],
        )
    }
}
