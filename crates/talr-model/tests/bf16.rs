//! bf16 products on oneDNN: equal to f32 products within bf16 rounding, for every operand layout
//! and awkward shape, and the decoder's bf16 gradients close to its f32 ones (own process: the
//! precision is per process).
//!
//! They need oneDNN 2.x and a CPU with AMX or AVX512-BF16; elsewhere they say so and skip, unless
//! `TALR_REQUIRE_BF16=1` (as CI sets on such CPUs) makes that a failure.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use talr_model::decoder::random_weights;
use talr_model::logprobs::response_nll;
use talr_model::ops::{matmul, max_abs_diff, onednn};
use talr_model::{DecoderConfig, LoadedModel, Precision, TextTokenizer, Trainability};

/// Held by the tests that switch the process's precision, which tests in this binary share.
static PRECISION: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bf16_available() -> bool {
    let why = match onednn::get() {
        Ok(dnnl) if dnnl.native() => return true,
        Ok(dnnl) => format!("{} emulates bf16 on this CPU", dnnl.config()),
        Err(why) => why.to_string(),
    };
    if std::env::var("TALR_REQUIRE_BF16").is_ok_and(|v| v == "1") {
        panic!("TALR_REQUIRE_BF16=1 but bf16 products cannot run: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn round_bf16(x: f32) -> f64 {
    half::bf16::from_f32(x).to_f64()
}

/// op(A)·op(B) in f64, on operands rounded to bf16 first when `rounded`.
#[allow(clippy::too_many_arguments)]
fn reference(
    (ta, tb): (bool, bool),
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    rounded: bool,
) -> Vec<f64> {
    let r = |x: f32| if rounded { round_bf16(x) } else { x as f64 };
    let at = |i: usize, p: usize| r(if ta { a[p * lda + i] } else { a[i * lda + p] });
    let bt = |p: usize, j: usize| r(if tb { b[j * ldb + p] } else { b[p * ldb + j] });
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    c
}

#[test]
fn bf16_products_equal_f32_products_of_the_rounded_operands() {
    if !bf16_available() {
        return;
    }
    let dnnl = onednn::get().unwrap();
    // (m, n, k): not multiples of 16 or 32, one-row decoding shapes, a long reduction, and
    // SmolLM2's per-head attention shape.
    let shapes = [
        (1, 1, 1),
        (1, 1536, 576),
        (3, 5, 7),
        (17, 33, 31),
        (64, 64, 64),
        (100, 49, 1000),
        (257, 129, 65),
    ];
    for (s, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            // Leading dimensions with padding, as a strided view has.
            let (lda, ldb) = (if ta { m } else { k } + 3, if tb { k } else { n } + 1);
            let a = values(if ta { k } else { m } * lda, 2 * s as u64);
            let b = values(if tb { n } else { k } * ldb, 2 * s as u64 + 1);
            let mut c = vec![f32::NAN; m * n];
            dnnl.gemm(ta, tb, m, n, k, &a, lda, &b, ldb, &mut c)
                .unwrap();
            let exact = reference((ta, tb), (m, n, k), &a, lda, &b, ldb, true);
            let unrounded = reference((ta, tb), (m, n, k), &a, lda, &b, ldb, false);
            let what = format!("{m}×{k}·{k}×{n}, transposed ({ta}, {tb})");
            for ((&got, &want), &f32_want) in c.iter().zip(&exact).zip(&unrounded) {
                // Products of bf16 values are exact in f32; only the f32 summation order differs.
                let tolerance = 1e-6 * k as f64 + 1e-6 * want.abs();
                assert!(
                    (got as f64 - want).abs() <= tolerance,
                    "{what}: {got} vs {want}"
                );
                // Against the f32 operands: bf16 keeps 8 bits, a relative error of 2^-9 per
                // operand, and values here are at most 0.5, so each term is off by at most 2^-10.
                let bound = k as f64 * 2f64.powi(-10) + 1e-6;
                assert!(
                    (got as f64 - f32_want).abs() <= bound,
                    "{what}: {got} vs {f32_want}"
                );
            }
        }
    }
}

fn tensor(dims: &[usize], seed: u64) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(n, seed), dims, &Device::Cpu).unwrap()
}

/// Under bf16, `ops::matmul` rounds large products (forward and backward) and leaves products
/// below the size threshold in f32.
#[test]
fn the_bf16_setting_rounds_large_products_and_their_gradients_only() {
    if !bf16_available() {
        return;
    }
    let _switching = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    let large = (
        Var::from_tensor(&tensor(&[2, 96, 80], 1)).unwrap(),
        tensor(&[2, 80, 72], 2),
    );
    let small = (
        Var::from_tensor(&tensor(&[8, 80], 3)).unwrap(),
        tensor(&[80, 200], 4),
    );
    let run = |(a, b): &(Var, Tensor)| {
        let c = matmul(
            a.as_tensor(),
            &b.t().unwrap().contiguous().unwrap().t().unwrap(),
        )
        .unwrap();
        let w = tensor(c.dims(), 5);
        let grads = (&c * &w).unwrap().sum_all().unwrap().backward().unwrap();
        (c, grads.get(a.as_tensor()).unwrap().clone())
    };
    assert_eq!(
        talr_model::set_precision(Precision::F32).unwrap(),
        Precision::F32
    );
    let (large32, dlarge32) = run(&large);
    let (small32, dsmall32) = run(&small);
    assert_eq!(
        talr_model::set_precision(Precision::Bf16).unwrap(),
        Precision::Bf16
    );
    let device = talr_model::device_name(&Device::Cpu);
    assert!(device.contains("bf16 products on oneDNN"), "{device}");
    let (large16, dlarge16) = run(&large);
    let (small16, dsmall16) = run(&small);
    talr_model::set_precision(Precision::F32).unwrap();

    // k = 80 terms of at most 0.25, each off by at most 2^-8 relative.
    for (x16, x32, what) in [
        (&large16, &large32, "product"),
        (&dlarge16, &dlarge32, "gradient"),
    ] {
        let diff = max_abs_diff(x16, x32).unwrap();
        assert!(diff > 0.0, "{what}: bf16 left the large product unrounded");
        assert!(diff < 80.0 * 0.25 * 2f32.powi(-8), "{what}: off by {diff}");
    }
    assert_eq!(max_abs_diff(&small16, &small32).unwrap(), 0.0);
    assert_eq!(max_abs_diff(&dsmall16, &dsmall32).unwrap(), 0.0);
}

/// A Llama whose products all reach the bf16 threshold: hidden 128, 2 heads of 64, 96 tokens.
fn llama_for_bf16() -> LoadedModel {
    let tokenizer = TextTokenizer::byte_level().unwrap();
    let mut cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
    cfg.hidden_size = 128;
    cfg.intermediate_size = 256;
    cfg.num_heads = 2;
    cfg.num_kv_heads = 2;
    cfg.head_dim = 64;
    let weights = random_weights(&cfg, 7, 0.05, DType::F32, &Device::Cpu).unwrap();
    LoadedModel::from_parts(
        cfg,
        weights,
        tokenizer,
        "bf16-test".into(),
        Trainability::Trainable,
    )
    .unwrap()
}

#[test]
fn decoder_gradients_in_bf16_stay_close_to_f32() {
    if !bf16_available() {
        return;
    }
    let _switching = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    let model = llama_for_bf16();
    let prompt: Vec<u32> = (0..40u32).map(|i| 65 + i % 26).collect();
    let reply: Vec<u32> = (0..60u32).map(|i| 97 + (i * 7) % 26).collect();
    let pairs = vec![(prompt.clone(), reply.clone()), (reply, prompt)];
    let run = |precision| {
        talr_model::set_precision(precision).unwrap();
        let loss = response_nll(&model.decoder, &pairs, model.tokenizer.pad_id, 128)
            .unwrap()
            .nll
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let value = loss.to_scalar::<f32>().unwrap();
        (value, grads)
    };
    let (loss32, grads32) = run(Precision::F32);
    let (loss16, grads16) = run(Precision::Bf16);
    talr_model::set_precision(Precision::F32).unwrap();
    assert!(
        ((loss16 - loss32) / loss32).abs() < 1e-3,
        "loss: bf16 {loss16} vs f32 {loss32}"
    );
    assert_ne!(
        loss16, loss32,
        "bf16 left every product of the decoder in f32"
    );
    // Each parameter's gradient: its relative L2 error under bf16 stays below 2%.
    for (name, var) in &model.vars {
        let g32 = grads32.get(var.as_tensor()).unwrap();
        let g16 = grads16.get(var.as_tensor()).unwrap();
        let norm = |t: &Tensor| {
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let relative = (norm(&(g16 - g32).unwrap()) / norm(g32)).sqrt();
        assert!(
            relative < 0.02,
            "{name}: relative gradient error {relative}"
        );
    }
}
