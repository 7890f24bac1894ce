//! Token weightings over one 8 × 256 batch of response-token losses.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use talr_methods::TokenWeighting;

fn losses(n: usize) -> Tensor {
    // A realistic shape of SFT losses: mostly easy tokens, a tail of hard ones.
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let u = ((i as u64 * 2_654_435_761) % 10_000) as f32 / 10_000.0;
            -((1.0 - u * 0.999).ln()) * 0.4
        })
        .collect();
    Tensor::from_vec(v, n, &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let nll = losses(8 * 256);
    let mut group = c.benchmark_group("token_weighting_8x256");
    for (name, w) in [
        ("uniform", TokenWeighting::Uniform),
        ("talr", TokenWeighting::talr()),
        ("dft", TokenWeighting::Dft),
    ] {
        group.bench_function(name, |b| b.iter(|| w.apply(&nll).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
