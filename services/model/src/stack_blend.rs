//! Blending the stacked head's views by how well each carries to a source it
//! never saw: stacked generalisation with the sources as folds.
//!
//! Why: one logistic regression over every view at once, early-stopped on a
//! dev split drawn from the same sources, learns how far to trust each view
//! *within* those sources. Known-claim matching is strongest there (items of
//! one collection resemble each other, and several collections hold one
//! label only), so such a head trusts it more than a new collection of posts
//! deserves. Here each view is fitted alone, and the weights that combine
//! them are fitted on the scores each view gave to rows of a source its fit
//! never saw. The result is still one linear head (`combine`), so scoring
//! costs what it did.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::claims::ClaimIndex;
use crate::data::Split;
use crate::stack::StackedHead;
use crate::stack_fit::{self, logistic_newton};
use crate::stack_rows::{match_rows, Row};
use crate::stack_train::{StackOptions, Views};
use crate::ModelError;

/// Keeps the blend's weights from growing without bound when out-of-source
/// scores separate the labels (a few sources can).
const BLEND_RIDGE: f64 = 1.0;

/// The weight of each view's logit in the blended head, and its bias.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Blend {
    pub weights: BTreeMap<Views, f32>,
    pub bias: f32,
    /// Rows scored by fits that never saw their source, which the weights
    /// were fitted on.
    pub rows: usize,
}

/// The views the blend combines: each fitted alone.
pub(crate) fn blended_views(matching: bool) -> &'static [Views] {
    if matching {
        &[Views::EncoderOnly, Views::NgramsOnly, Views::MatchesOnly]
    } else {
        &[Views::EncoderOnly, Views::NgramsOnly]
    }
}

/// Fits the blend over the sources of the rows `pool` admits. Each source in
/// turn is left out: the claim archive is rebuilt without it, every view is
/// fitted on the other sources' train rows (early-stopped on their dev rows)
/// and scores the left-out source's train and dev rows; the weights are a
/// logistic regression on those scores, classes weighted equally. On return
/// every row's match features are set against the archive of `pool`'s train
/// rows, which is returned.
pub(crate) fn out_of_source_blend(
    rows: &mut [Row],
    pool: &dyn Fn(&Row) -> bool,
    l2: f32,
    opts: &StackOptions,
) -> Result<(Blend, Option<ClaimIndex>), ModelError> {
    let views = blended_views(opts.matching);
    let sources: BTreeSet<String> = rows
        .iter()
        .filter(|r| pool(r))
        .map(|r| r.source.clone())
        .collect();
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for left_out in &sources {
        let admitted = |r: &Row| pool(r) && r.source != *left_out;
        if opts.matching {
            match_rows(rows, |r| admitted(r) && r.split == Split::Train, opts)?;
        }
        let of = |split: Split| -> Vec<&Row> {
            rows.iter()
                .filter(|r| admitted(r) && r.split == split)
                .collect()
        };
        let (train, dev) = (of(Split::Train), of(Split::Dev));
        if dev.is_empty() || !both_labels(&train) {
            tracing::info!(source = %left_out, "blend: the other sources cannot be fitted; skipped");
            continue;
        }
        let heads: Vec<StackedHead> = views
            .iter()
            .map(|&v| stack_fit::fit(&train, &dev, v, l2, opts).head)
            .collect();
        for r in rows
            .iter()
            .filter(|r| pool(r) && r.source == *left_out && r.split != Split::Test)
        {
            x.push(heads.iter().map(|h| f64::from(h.logit_of(r))).collect());
            labels.push(r.hoax);
        }
    }
    let pos = labels.iter().filter(|&&y| y).count();
    if pos == 0 || pos == labels.len() {
        return Err(ModelError::Data(format!(
            "blending the views needs rows of both labels scored by fits that never saw their \
             source; {} sources gave {} rows, {pos} of them hoaxes",
            sources.len(),
            labels.len()
        )));
    }
    let n = labels.len() as f64;
    let class_w = [n / (2.0 * (n - pos as f64)), n / (2.0 * pos as f64)];
    let weights: Vec<f64> = labels.iter().map(|&y| class_w[usize::from(y)]).collect();
    let targets: Vec<f64> = labels.iter().map(|&y| f64::from(u8::from(y))).collect();
    let mut start = vec![1.0; views.len()];
    start.push(0.0);
    let c = logistic_newton(&x, &targets, &weights, BLEND_RIDGE, &start);
    let archive = if opts.matching {
        Some(match_rows(
            rows,
            |r| pool(r) && r.split == Split::Train,
            opts,
        )?)
    } else {
        None
    };
    let blend = Blend {
        weights: views.iter().zip(&c).map(|(&v, &w)| (v, w as f32)).collect(),
        bias: c[views.len()] as f32,
        rows: labels.len(),
    };
    tracing::info!(?blend, "views blended");
    Ok((blend, archive))
}

fn both_labels(rows: &[&Row]) -> bool {
    rows.iter().any(|r| r.hoax) && rows.iter().any(|r| !r.hoax)
}

/// One head whose logit is the blend of the views' logits. Every view was
/// fitted on the same rows, so they share the standardisation; each has
/// non-zero weights (and, for n-grams, IDF) only on its own features.
pub(crate) fn combine(views: &BTreeMap<Views, &StackedHead>, blend: &Blend) -> StackedHead {
    let first = views.values().next().expect("at least one view");
    let mut head = StackedHead {
        idf: vec![0.0; first.idf.len()],
        w_sparse: vec![0.0; first.w_sparse.len()],
        w_dense: vec![0.0; first.w_dense.len()],
        mean: first.mean.clone(),
        std: first.std.clone(),
        bias: blend.bias,
        platt: (1.0, 0.0),
    };
    for (v, &w) in &blend.weights {
        let h = views[v];
        debug_assert!(h.mean == head.mean && h.std == head.std);
        head.idf.iter_mut().zip(&h.idf).for_each(|(a, b)| *a += b);
        let add = |into: &mut [f32], from: &[f32]| {
            into.iter_mut().zip(from).for_each(|(a, b)| *a += w * b);
        };
        add(&mut head.w_sparse, &h.w_sparse);
        add(&mut head.w_dense, &h.w_dense);
        head.bias += w * h.bias;
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::MATCH_FEATURES;

    fn head(w_dense: Vec<f32>, idf: Vec<f32>, w_sparse: Vec<f32>, bias: f32) -> StackedHead {
        StackedHead {
            idf,
            w_sparse,
            mean: vec![0.5; w_dense.len()],
            std: vec![2.0; w_dense.len()],
            w_dense,
            bias,
            platt: (1.0, 0.0),
        }
    }

    #[test]
    fn the_combined_head_scores_the_blend_of_the_views_logits() {
        // Two pooled dimensions, the match features, four n-gram buckets.
        let dense = 2 + MATCH_FEATURES;
        let mut encoder = vec![0.0; dense];
        encoder[..2].copy_from_slice(&[0.7, -1.1]);
        let mut matches = vec![0.0; dense];
        matches[2..].copy_from_slice(&[1.5, -0.5, 0.25, 0.1, -0.2]);
        let views = [
            (
                Views::EncoderOnly,
                head(encoder, vec![0.0; 4], vec![0.0; 4], 0.3),
            ),
            (
                Views::NgramsOnly,
                head(
                    vec![0.0; dense],
                    vec![1.0, 2.0, 0.0, 1.5],
                    vec![0.4, -0.9, 0.0, 2.0],
                    -0.2,
                ),
            ),
            (
                Views::MatchesOnly,
                head(matches, vec![0.0; 4], vec![0.0; 4], 0.05),
            ),
        ];
        let blend = Blend {
            weights: [
                (Views::EncoderOnly, 0.5),
                (Views::NgramsOnly, 1.25),
                (Views::MatchesOnly, -0.75),
            ]
            .into(),
            bias: -0.4,
            rows: 0,
        };
        let by_view = views.iter().map(|(v, h)| (*v, h)).collect();
        let combined = combine(&by_view, &blend);
        let row = Row {
            id: "r".into(),
            narrative: "r".into(),
            text: String::new(),
            pooled: vec![1.5, -0.25],
            tf: vec![(0, 1.0), (1, 0.5), (3, 2.0)],
            matches: [0.9, 0.4, 0.5, 0.7, 0.3],
            hoax: true,
            protected: false,
            source: "s".into(),
            split: Split::Train,
        };
        let want = blend.bias
            + views
                .iter()
                .map(|(v, h)| blend.weights[v] * h.logit_of(&row))
                .sum::<f32>();
        assert!(
            (combined.logit_of(&row) - want).abs() < 1e-5,
            "{} {want}",
            combined.logit_of(&row)
        );
    }

    /// Four sources: the n-gram buckets carry the label the same way in all
    /// of them, the pooled vector carries it one way in two sources and the
    /// other way in the rest (a collection's style, not the claim).
    fn style_and_words() -> Vec<Row> {
        let mut rows = Vec::new();
        for (s, source) in ["a", "b", "c", "d"].iter().enumerate() {
            let style = if s < 2 { 1.0 } else { -1.0 };
            for i in 0..40 {
                let hoax = i % 2 == 0;
                let sign = if hoax { 1.0 } else { -1.0 };
                // Deterministic noise in (-0.5, 0.5).
                let noise = ((i * 7 + s * 13) % 10) as f32 / 10.0 - 0.45;
                let word = if hoax { 1 } else { 2 };
                rows.push(Row {
                    id: format!("{source}{i}"),
                    narrative: format!("{source}{i}"),
                    text: String::new(),
                    pooled: vec![style * sign + noise, noise],
                    tf: vec![(word, 1.0), (3 + (i % 5) as u32, 1.0)],
                    matches: [0.0; MATCH_FEATURES],
                    hoax,
                    protected: false,
                    source: source.to_string(),
                    split: if i % 4 == 3 { Split::Dev } else { Split::Train },
                });
            }
        }
        rows
    }

    #[test]
    fn a_view_that_only_holds_within_its_sources_loses_its_weight() {
        let mut rows = style_and_words();
        let opts = StackOptions {
            matching: false,
            min_df: 1,
            ..StackOptions::default()
        };
        let (blend, archive) = out_of_source_blend(&mut rows, &|_| true, 1e-6, &opts).unwrap();
        assert!(archive.is_none());
        assert_eq!(blend.rows, 160);
        let (encoder, ngrams) = (
            blend.weights[&Views::EncoderOnly],
            blend.weights[&Views::NgramsOnly],
        );
        // Fitted on three sources, the pooled vector points the majority's
        // way, the wrong way on the one left out.
        assert!(encoder <= 0.0, "{blend:?}");
        assert!(ngrams > 0.5, "{blend:?}");
    }
}
