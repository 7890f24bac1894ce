//! Matrix products at SmolLM2's linear shapes (576→1536, 1536→576, 576→49152) for 2048 rows
//! (training, prefill), 32 rows (batched decoding) and 1 row: f32 through `ops::matmul` (OpenBLAS
//! when it is cached, else candle) against bf16 on oneDNN, operand rounding included. Throughput
//! is in FLOP/s (criterion's "elements": 2·m·n·k per product). bf16 rows need oneDNN and AMX or
//! AVX512-BF16 and are left out elsewhere.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use talr_model::ops::{blas, matmul, onednn};

fn bench(c: &mut Criterion) {
    if let Some(path) = talr_assets::cached_for_test(&talr_assets::OPENBLAS) {
        blas::use_library(&path).unwrap();
    }
    let bf16 = onednn::get().ok().filter(|d| d.native());
    eprintln!(
        "f32: {}; bf16: {}",
        blas::active().unwrap_or("candle"),
        bf16.map_or("not available", |d| d.config())
    );
    let dev = Device::Cpu;
    for (k, n) in [(576, 1536), (1536, 576), (576, 49_152)] {
        let w = (Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap() * 0.05).unwrap();
        let mut group = c.benchmark_group(format!("linear_{k}_to_{n}"));
        group.sample_size(10);
        for m in [2048, 32, 1] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            group.bench_function(format!("f32_{m}_rows"), |b| {
                b.iter(|| matmul(&x, &w.t().unwrap()).unwrap())
            });
            if let Some(dnnl) = bf16 {
                let (xs, ws) = (
                    x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                let mut out = vec![0f32; m * n];
                group.bench_function(format!("bf16_{m}_rows"), |b| {
                    b.iter(|| {
                        dnnl.gemm(false, true, m, n, k, &xs, k, &ws, k, &mut out)
                            .unwrap()
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
