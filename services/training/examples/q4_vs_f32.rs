//! Why the model runs in f32: candle's Q4_0 matmul (weights 4-bit,
//! activations quantised on the fly) against its f32 gemm on the encoder's
//! three matmul shapes, 16 posts x 52 tokens (the corpus mean) per call.
//! `RAYON_NUM_THREADS=2 cargo run -p patroli-training --example q4_vs_f32`
//! (The error column is on random weights: it shows the kernel is used,
//! not the model's accuracy.)

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
fn main() {
    let dev = Device::Cpu;
    for (out, inn) in [(384usize, 384usize), (1536, 384), (384, 1536)] {
        let w = Tensor::randn(0f32, 0.05, (out, inn), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (16 * 52, inn), &dev).unwrap();
        let q = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_0).unwrap()).unwrap();
        let wt = w.t().unwrap();
        let _ = x.matmul(&wt).unwrap();
        let _ = q.forward(&x).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let _ = x.matmul(&wt).unwrap();
        }
        let f = t.elapsed().as_secs_f64() / 20.0;
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let _ = q.forward(&x).unwrap();
        }
        let qq = t.elapsed().as_secs_f64() / 20.0;
        let a = x.matmul(&wt).unwrap();
        let b = q.forward(&x).unwrap();
        let err = ((a.clone() - b)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            / a.sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap())
        .sqrt();
        println!(
            "{out}x{inn}: f32 {:.2} ms, q4 {:.2} ms, rel err {err:.4}",
            f * 1e3,
            qq * 1e3
        );
    }
}
