//! Int8 projections for the inference path (`InferenceOptions::int8`).
//!
//! Weights are quantised once, symmetrically per output channel; each
//! activation row is quantised when it arrives, symmetrically per row; the
//! products accumulate exactly in i32 with AVX-512 VNNI (`vpdpbusd`: 64
//! multiply-adds per instruction, against the 16 of the AVX2 f32 kernel
//! candle's GEMM runs on stable Rust). `vpdpbusd` multiplies unsigned by
//! signed bytes, so a row is stored as `q + 128` and `128 * sum(w)` is
//! subtracted per output. Only CPUs with AVX-512 VNNI run it
//! (`Int8Linear::supported`); elsewhere the model stays f32.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::contiguous_f32;

/// Output channels per vector: 16 i32 lanes.
const LANES: usize = 16;
/// Rows per tile: 4 rows x 4 vectors of outputs keep 16 accumulators, 4
/// weight vectors and a broadcast in AVX-512's 32 registers.
const ROWS: usize = 4;
const VECS: usize = 4;

/// `x W^T + b` with `W` `[n, k]` quantised to i8.
pub struct Int8Linear {
    n: usize,
    k: usize,
    /// `[n / 16][k / 4][16 lanes][4 bytes]`: one 64-byte load feeds
    /// `vpdpbusd` four inputs of sixteen outputs.
    packed: Vec<i8>,
    /// Per output: the sum of its quantised weights (the +128 correction).
    sums: Vec<i32>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl Int8Linear {
    /// Whether this CPU runs the kernel.
    pub fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// From an f32 weight `[n, k]` (any strides) and bias `[n]`; `n` a
    /// multiple of 16 and `k` of 4, as every BERT projection is.
    pub fn new(w: &Tensor, b: &Tensor) -> candle_core::Result<Self> {
        let (n, k) = w.dims2()?;
        if n % LANES != 0 || k % 4 != 0 {
            candle_core::bail!("int8 projection needs n % 16 == 0 and k % 4 == 0, got [{n}, {k}]");
        }
        let rows = w.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        let mut quantised = Vec::with_capacity(n * k);
        let mut scales = Vec::with_capacity(n);
        let mut sums = Vec::with_capacity(n);
        for row in &rows {
            let (q, scale) = quantise(row);
            sums.push(q.iter().map(|&v| i32::from(v)).sum());
            scales.push(scale);
            quantised.extend(q);
        }
        let kb = k / 4;
        let mut packed = vec![0i8; n * k];
        for out in 0..n {
            let (block, lane) = (out / LANES, out % LANES);
            for step in 0..kb {
                for j in 0..4 {
                    packed[((block * kb + step) * LANES + lane) * 4 + j] =
                        quantised[out * k + step * 4 + j];
                }
            }
        }
        Ok(Self {
            n,
            k,
            packed,
            sums,
            scales,
            bias: b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
        })
    }

    /// x `[t, k]` -> `[t, n]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// Rows `[ROWS or fewer, k]` of offset activations to `out`.
    fn rows(&self, x: &[u8], x_scales: &[f32], out: &mut [f32]) {
        let r = x_scales.len();
        let mut acc = [[0i32; LANES * VECS]; ROWS];
        let blocks = self.n / LANES;
        let mut block = 0;
        while block < blocks {
            let vecs = (blocks - block).min(VECS);
            // SAFETY: `Layer` builds this only when `supported()`; the slices
            // hold `r` rows of `k` bytes and `vecs` packed blocks.
            unsafe { tile(x, r, self.k, &self.packed, block, vecs, &mut acc) };
            for (row, (acc, &sx)) in acc.iter().take(r).zip(x_scales).enumerate() {
                let first = block * LANES;
                let out = &mut out[row * self.n + first..][..vecs * LANES];
                for (c, o) in out.iter_mut().enumerate() {
                    let j = first + c;
                    let dot = acc[c] - 128 * self.sums[j];
                    *o = dot as f32 * sx * self.scales[j] + self.bias[j];
                }
            }
            block += vecs;
        }
    }
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "patroli-int8-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let (t, k) = layout.shape().dims2()?;
        if k != self.k {
            candle_core::bail!("{}: input width {k}, weights take {}", self.name(), self.k);
        }
        let mut offset = vec![0u8; t * k];
        let mut x_scales = vec![0f32; t];
        offset
            .par_chunks_mut(ROWS * k)
            .zip(x.par_chunks(ROWS * k))
            .zip(x_scales.par_chunks_mut(ROWS))
            // SAFETY: as for `tile`, built only when `supported()`.
            .for_each(|((o, rows), s)| unsafe { offset_rows(rows, o, s) });
        let mut out = vec![0f32; t * self.n];
        out.par_chunks_mut(ROWS * self.n)
            .zip(offset.par_chunks(ROWS * k))
            .zip(x_scales.par_chunks(ROWS))
            .for_each(|((out, x), s)| self.rows(x, s, out));
        Ok((CpuStorage::F32(out), Shape::from((t, self.n))))
    }
}

/// Symmetric per-row quantisation to [-127, 127]: values and the scale
/// that maps them back (0 for an all-zero row).
fn quantise(row: &[f32]) -> (Vec<i8>, f32) {
    let scale = scale_of(row);
    let inv = inverse(scale);
    let q = row.iter().map(|&v| step(v, inv) as i8).collect();
    (q, scale)
}

#[inline(always)]
fn scale_of(row: &[f32]) -> f32 {
    row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0
}

#[inline(always)]
fn inverse(scale: f32) -> f32 {
    if scale > 0.0 {
        1.0 / scale
    } else {
        0.0
    }
}

/// One value's quantisation step; ties to even so it vectorises.
#[inline(always)]
fn step(v: f32, inv: f32) -> f32 {
    (v * inv).round_ties_even().clamp(-127.0, 127.0)
}

/// Activation rows (`k` wide) quantised as `q + 128` for `vpdpbusd`, with
/// their scales: `quantise`'s arithmetic, built for AVX-512.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw"))]
unsafe fn offset_rows(rows: &[f32], out: &mut [u8], scales: &mut [f32]) {
    let k = rows.len() / scales.len();
    for ((row, out), s) in rows.chunks(k).zip(out.chunks_mut(k)).zip(scales) {
        *s = scale_of(row);
        let inv = inverse(*s);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (step(v, inv) + 128.0) as u8;
        }
    }
}

/// `r` rows against `vecs` packed blocks starting at `block`, into `acc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile(
    x: &[u8],
    r: usize,
    k: usize,
    packed: &[i8],
    block: usize,
    vecs: usize,
    acc: &mut [[i32; LANES * VECS]; ROWS],
) {
    use std::arch::x86_64::*;
    let steps = k / 4;
    let mut sums = [[_mm512_setzero_si512(); VECS]; ROWS];
    let base = packed.as_ptr();
    for step in 0..steps {
        let mut w = [_mm512_setzero_si512(); VECS];
        for (v, w) in w.iter_mut().enumerate().take(vecs) {
            *w = _mm512_loadu_si512(base.add(((block + v) * steps + step) * 64).cast());
        }
        for (row, sums) in sums.iter_mut().enumerate().take(r) {
            let four = x
                .as_ptr()
                .add(row * k + step * 4)
                .cast::<i32>()
                .read_unaligned();
            let xv = _mm512_set1_epi32(four);
            for (s, w) in sums.iter_mut().zip(&w).take(vecs) {
                *s = _mm512_dpbusd_epi32(*s, xv, *w);
            }
        }
    }
    for (acc, sums) in acc.iter_mut().zip(&sums).take(r) {
        for (v, s) in sums.iter().enumerate().take(vecs) {
            _mm512_storeu_si512(acc[v * LANES..].as_mut_ptr().cast(), *s);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile(
    _: &[u8],
    _: usize,
    _: usize,
    _: &[i8],
    _: usize,
    _: usize,
    _: &mut [[i32; LANES * VECS]; ROWS],
) {
    unreachable!("Int8Linear::supported is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The same quantised arithmetic, one scalar product at a time.
    fn reference(w: &[Vec<f32>], b: &[f32], x: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let wq: Vec<(Vec<i8>, f32)> = w.iter().map(|r| quantise(r)).collect();
        x.iter()
            .map(|row| {
                let (xq, sx) = quantise(row);
                wq.iter()
                    .zip(b)
                    .map(|((wq, sw), b)| {
                        let dot: i32 = xq
                            .iter()
                            .zip(wq)
                            .map(|(&a, &c)| i32::from(a) * i32::from(c))
                            .sum();
                        dot as f32 * sx * sw + b
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn int8_product_is_exactly_the_quantised_arithmetic_and_near_f32() {
        if !Int8Linear::supported() {
            eprintln!("no AVX-512 VNNI here: the kernel is not built, nothing to test");
            return;
        }
        // 7 rows: a full tile of 4 and a tail of 3; 80 outputs: 4 vectors and 1.
        let (t, n, k) = (7, 80, 36);
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let mut x = Tensor::randn(0f32, 1.0, (t, k), &dev).unwrap();
        // One all-zero row: its scale is 0 and its outputs are the bias.
        x = x
            .slice_assign(
                &[6..7, 0..k],
                &Tensor::zeros((1, k), DType::F32, &dev).unwrap(),
            )
            .unwrap();
        let q = Int8Linear::new(&w, &b).unwrap();
        let got = q.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let want = reference(
            &w.to_vec2::<f32>().unwrap(),
            &b.to_vec1::<f32>().unwrap(),
            &x.to_vec2::<f32>().unwrap(),
        );
        let exact = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let exact = exact.to_vec2::<f32>().unwrap();
        for r in 0..t {
            for c in 0..n {
                assert!(
                    (got[r][c] - want[r][c]).abs() <= 1e-5 * want[r][c].abs().max(1.0),
                    "row {r} output {c}: {} vs {}",
                    got[r][c],
                    want[r][c]
                );
                // Two roundings of at most half a step each, over 36 products.
                assert!((got[r][c] - exact[r][c]).abs() < 0.25, "row {r} output {c}");
            }
        }
        assert_eq!(got[6], b.to_vec1::<f32>().unwrap());
    }

    #[test]
    fn shapes_the_kernel_cannot_tile_are_a_clear_error() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((20, 8), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(20, DType::F32, &dev).unwrap();
        let err = Int8Linear::new(&w, &b).err().unwrap().to_string();
        assert!(
            err.contains("int8 projection needs n % 16 == 0 and k % 4 == 0, got [20, 8]"),
            "{err}"
        );
    }
}
