//! The output projection fused with the token NLL, forward and backward, at SmolLM2's shapes
//! (8 × 256 tokens, hidden 576, vocabulary 49 152), against whole-logits log-softmax.

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use talr_model::ops::{linear_nll, linear_nll_composite};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (n, d, vocab) = (8 * 256, 576, 49_152);
    let h = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (n, d), &dev).unwrap() * 0.05).unwrap())
        .unwrap();
    let w =
        Var::from_tensor(&(Tensor::randn(0f32, 1.0, (vocab, d), &dev).unwrap() * 0.05).unwrap())
            .unwrap();
    let targets = Tensor::new(
        (0..n as u32)
            .map(|i| (i * 7919) % vocab as u32)
            .collect::<Vec<_>>(),
        &dev,
    )
    .unwrap();
    let mut group = c.benchmark_group("masked_nll_8x256_vocab49k");
    group.sample_size(10);
    group.bench_function("fused_chunked_fwd_bwd", |b| {
        b.iter(|| {
            let nll = linear_nll(h.as_tensor(), w.as_tensor(), &targets, 512).unwrap();
            nll.mean_all().unwrap().backward().unwrap()
        })
    });
    group.bench_function("whole_logits_fwd_bwd", |b| {
        b.iter(|| {
            let nll = linear_nll_composite(h.as_tensor(), w.as_tensor(), &targets).unwrap();
            nll.mean_all().unwrap().backward().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
