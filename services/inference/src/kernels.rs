//! Inference kernels for the two places candle's general ops cost most on
//! CPU (profile and figures: docs/performance.md):
//!
//! - attention: candle runs it as a batched matmul whose every (post, head)
//!   pair is a separate tiny GEMM dispatched to the thread pool, plus four
//!   copies to split and merge heads and a softmax over padding. Here each
//!   post's heads are computed in place over its real tokens only, posts in
//!   parallel.
//! - the erf GELU: candle calls libm's scalar `erff` per element (a seventh
//!   of all time). Here a rational approximation vectorises, in place.
//!
//! Training keeps candle's differentiable ops; these have no backward pass.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, Layout, Shape};
use rayon::prelude::*;

/// Scaled dot-product attention over a fused, packed `[T, 3H]` projection
/// (queries, keys, values side by side; posts end to end, post `i` having
/// `lens[i]` rows), `heads` heads. Gives `[T, H]`: each post attends to its
/// own tokens only.
pub struct Attention {
    pub heads: usize,
    pub lens: Vec<usize>,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "patroli-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(storage, layout, self.name())?;
        let (t, three_h) = layout.shape().dims2()?;
        let h = three_h / 3;
        if three_h % 3 != 0 || h % self.heads != 0 || self.lens.iter().sum::<usize>() != t {
            candle_core::bail!(
                "{}: shape {:?} does not fit {} heads and lengths {:?}",
                self.name(),
                layout.shape(),
                self.heads,
                self.lens
            );
        }
        let mut out = vec![0f32; t * h];
        let mut posts = Vec::with_capacity(self.lens.len());
        let (mut out_rest, mut qkv_rest) = (out.as_mut_slice(), qkv);
        for &len in &self.lens {
            let (o, rest) = out_rest.split_at_mut(len * h);
            let (q, qrest) = qkv_rest.split_at(len * three_h);
            posts.push((o, q, len));
            (out_rest, qkv_rest) = (rest, qrest);
        }
        posts
            .into_par_iter()
            .for_each(|(out, qkv, len)| attend(qkv, out, len, h, self.heads));
        Ok((CpuStorage::F32(out), Shape::from((t, h))))
    }
}

/// One post: `qkv` is `[len, 3H]`, `out` is `[len, H]`.
#[inline(always)]
fn post_attention(qkv: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
    let hd = h / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let row = |t: usize, part: usize, head: usize| {
        let at = t * 3 * h + part * h + head * hd;
        &qkv[at..at + hd]
    };
    let mut scores = vec![0f32; len];
    for head in 0..heads {
        for i in 0..len {
            let q = row(i, 0, head);
            let mut max = f32::NEG_INFINITY;
            for (j, score) in scores.iter_mut().enumerate() {
                *score = dot(q, row(j, 1, head)) * scale;
                max = max.max(*score);
            }
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            let o = &mut out[i * h + head * hd..][..hd];
            for (j, score) in scores.iter().enumerate() {
                let p = score / sum;
                for (o, v) in o.iter_mut().zip(row(j, 2, head)) {
                    *o += p * v;
                }
            }
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums so the compiler can keep them in one vector register.
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ar.iter().zip(br).map(|(x, y)| x * y).sum::<f32>()
}

/// `x * Φ(x)` with the exact (erf) normal CDF, in place.
pub struct GeluErf;

impl InplaceOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "patroli-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: f32 only", self.name());
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input only", self.name());
        };
        values[start..end].par_chunks_mut(8192).for_each(gelu_slice);
        Ok(())
    }
}

#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf to within a few f32 ulps: the odd/even rational approximation on
/// [-4, 4] (beyond it erf is ±1 in f32) used by Eigen and XLA. Branch-free,
/// so a loop over it vectorises.
/// (Plain multiply-adds: `mul_add` is a libm call on baseline x86-64.)
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906e-4;
    p = x2 * p - 2.954_600_1e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

/// Whether the wide (AVX2 + FMA) builds of the loops below can run. The
/// release build targets baseline x86-64, whose 4-wide SSE2 would halve
/// these loops' speed.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn gelu_slice(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        fn wide(xs: &mut [f32]) {
            gelu_in_place(xs)
        }
        // SAFETY: `has_avx2` checked the CPU supports the enabled features.
        return unsafe { wide(xs) };
    }
    gelu_in_place(xs)
}

#[inline(always)]
fn gelu_in_place(xs: &mut [f32]) {
    for x in xs {
        *x = gelu_erf(*x);
    }
}

fn attend(qkv: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        fn wide(qkv: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
            post_attention(qkv, out, len, h, heads)
        }
        // SAFETY: `has_avx2` checked the CPU supports the enabled features.
        return unsafe { wide(qkv, out, len, h, heads) };
    }
    post_attention(qkv, out, len, h, heads)
}

/// The values of an f32 input a custom op reads whole, or its error.
pub fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{op}: contiguous input only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn gelu_matches_candles_libm_gelu_everywhere() {
        let xs: Vec<f32> = (-80_000..=80_000).map(|i| i as f32 / 10_000.0).collect();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (worst, at) = xs
            .iter()
            .zip(&want)
            // Relative to the value's scale: a few ulps of a value near 8.
            .map(|(&x, &w)| ((gelu_erf(x) - w).abs() / x.abs().max(1.0), x))
            .fold((0f32, 0f32), |a, b| if b.0 > a.0 { b } else { a });
        assert!(worst < 5e-7, "largest error {worst} at {at}");
    }

    #[test]
    fn packed_attention_equals_candles_masked_softmax_over_padded_posts() {
        let (b, s, h, heads) = (3, 5, 8, 2);
        let lens = vec![5, 2, 3];
        let qkv = Tensor::randn(0f32, 1.0, (b, s, 3 * h), &Device::Cpu).unwrap();
        let packed = Tensor::cat(
            &lens
                .iter()
                .enumerate()
                .map(|(p, &len)| qkv.get(p).unwrap().narrow(0, 0, len).unwrap())
                .collect::<Vec<_>>(),
            0,
        )
        .unwrap();
        let got = packed
            .apply_op1_no_bwd(&Attention {
                heads,
                lens: lens.clone(),
            })
            .unwrap();
        assert_eq!(got.dims(), [10, h]);
        let hd = h / heads;
        let split = |i: usize| {
            qkv.narrow(2, i * h, h)
                .unwrap()
                .reshape((b, s, heads, hd))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let mask: Vec<f32> = lens
            .iter()
            .flat_map(|&l| (0..s).map(move |j| if j < l { 0.0 } else { -1e9 }))
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, s), &Device::Cpu).unwrap();
        let scores = (split(0).matmul(&split(1).t().unwrap()).unwrap() / (hd as f64).sqrt())
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let want = candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(&split(2))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, s, h))
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let got = got.to_vec2::<f32>().unwrap();
        let mut rows = got.iter();
        for (p, &len) in lens.iter().enumerate() {
            for (t, want) in want[p][..len].iter().enumerate() {
                let got = rows.next().unwrap();
                for (g, w) in got.iter().zip(want) {
                    assert!((g - w).abs() < 1e-5, "post {p} token {t}");
                }
            }
        }
        assert!(rows.next().is_none());
    }

    #[test]
    fn attention_rejects_lengths_that_do_not_cover_the_rows() {
        let qkv = Tensor::zeros((4, 24), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = qkv
            .apply_op1_no_bwd(&Attention {
                heads: 2,
                lens: vec![2, 1],
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "patroli-attention: shape [4, 24] does not fit 2 heads and lengths [2, 1]"
            ),
            "{err}"
        );
    }

    #[test]
    fn gelu_runs_in_place_on_the_values() {
        let t = Tensor::new(&[-3f32, -1.0, 0.0, 0.5, 2.0], &Device::Cpu).unwrap();
        let want = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        t.inplace_op1(&GeluErf).unwrap();
        for (g, w) in t.to_vec1::<f32>().unwrap().iter().zip(want) {
            assert!((g - w).abs() < 1e-6);
        }
    }
}
