//! One fold of `patroli stack`: the shipped head and its ablations fitted
//! on the train and dev rows a fold admits (every source, or all but one
//! held out), with the claim archive built from its train rows.

use std::collections::BTreeMap;

use crate::claims::ClaimIndex;
use crate::data::Split;
use crate::metrics::roc_auc;
use crate::stack_blend::{blended_views, combine, out_of_source_blend, Blend};
use crate::stack_fit::{self, Fit};
use crate::stack_rows::{match_rows, Row};
use crate::stack_train::{StackOptions, Views};
use crate::ModelError;

pub(crate) struct Fold {
    /// The head the fold ships: the joint fit, or with `opts.blend` the
    /// blend of the single-view fits.
    pub(crate) shipped: Fit,
    pub(crate) l2: f32,
    pub(crate) ablations: BTreeMap<Views, Fit>,
    /// With `opts.blend`: its weights, and the joint fit it replaced.
    pub(crate) blend: Option<(Blend, Fit)>,
    pub(crate) archive: Option<ClaimIndex>,
}

/// Fits a fold on the rows `pool` admits. The L2 penalty is the one among
/// `l2s` whose joint fit has the best dev ROC-AUC. On return every row's
/// match features are set against the fold's archive.
pub(crate) fn fit_fold(
    rows: &mut [Row],
    pool: &dyn Fn(&Row) -> bool,
    l2s: &[f32],
    opts: &StackOptions,
) -> Result<Fold, ModelError> {
    let mut archive = if opts.matching {
        Some(match_rows(
            rows,
            |r| pool(r) && r.split == Split::Train,
            opts,
        )?)
    } else {
        None
    };
    let (joint_view, ablation_views) = views_of(opts);
    let mut best: Option<(f64, f32, Fit)> = None;
    {
        let (train, dev) = split_rows(rows, pool);
        for &l2 in l2s {
            let fit = stack_fit::fit(&train, &dev, joint_view, l2, opts);
            let auc = fit.dev_auc.unwrap_or(0.0);
            tracing::info!(
                l2,
                dev_roc_auc = auc,
                epochs = fit.epochs,
                "joint head fitted"
            );
            if best.as_ref().is_none_or(|b| auc > b.0) {
                best = Some((auc, l2, fit));
            }
        }
    }
    let (_, l2, joint) = best.expect("at least one l2");
    let blend = if opts.blend {
        let (blend, index) = out_of_source_blend(rows, pool, l2, opts)?;
        archive = index;
        Some(blend)
    } else {
        None
    };
    let (train, dev) = split_rows(rows, pool);
    let ablations: BTreeMap<Views, Fit> = ablation_views
        .iter()
        .map(|&v| (v, stack_fit::fit(&train, &dev, v, l2, opts)))
        .collect();
    let (shipped, blend) = match blend {
        None => (joint, None),
        Some(blend) => {
            let heads = blended_views(opts.matching)
                .iter()
                .map(|v| (*v, &ablations[v].head))
                .collect();
            let head = combine(&heads, &blend);
            let logits: Vec<f32> = dev.iter().map(|r| head.logit_of(r)).collect();
            let labels: Vec<bool> = dev.iter().map(|r| r.hoax).collect();
            let epochs = blended_views(opts.matching)
                .iter()
                .map(|v| ablations[v].epochs)
                .max()
                .unwrap_or(0);
            let fit = Fit {
                dev_auc: roc_auc(&logits, &labels),
                head,
                epochs,
            };
            (fit, Some((blend, joint)))
        }
    };
    Ok(Fold {
        shipped,
        l2,
        ablations,
        blend,
        archive,
    })
}

fn split_rows<'a>(rows: &'a [Row], pool: &dyn Fn(&Row) -> bool) -> (Vec<&'a Row>, Vec<&'a Row>) {
    let of = |split: Split| -> Vec<&Row> {
        rows.iter()
            .filter(|r| pool(r) && r.split == split)
            .collect()
    };
    (of(Split::Train), of(Split::Dev))
}

/// The joint view and the ablations measured beside the shipped head.
fn views_of(opts: &StackOptions) -> (Views, Vec<Views>) {
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
