//! Every kernel against its composite reference: values and gradients.

use super::*;
use candle_core::{DType, Device, Result, Tensor, Var, D};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    // Deterministic pseudo-random values without a global RNG.
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs_diff(a, b).unwrap()
}

/// Kernel and composite agree on values and on gradients of a random projection of the output.
fn check(
    inputs: &[Tensor],
    kernel: impl Fn(&[Tensor]) -> Result<Tensor>,
    composite: impl Fn(&[Tensor]) -> Result<Tensor>,
    what: &str,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&ts).unwrap();
        let probe = randn(out.dims(), 5);
        let grads = (&out * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<Option<Tensor>> = vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        (out, g)
    };
    let (yk, gk) = run(&kernel);
    let (yc, gc) = run(&composite);
    assert!(
        max_diff(&yk, &yc) < 1e-5,
        "{what}: outputs differ by {}",
        max_diff(&yk, &yc)
    );
    for (i, (a, b)) in gk.iter().zip(&gc).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = max_diff(a, b);
                assert!(d < 1e-4, "{what}: gradient of input {i} differs by {d}");
            }
            (None, None) => {}
            _ => panic!("{what}: input {i} has a gradient on one path only"),
        }
    }
}

#[test]
fn rms_norm_kernel_matches_composite_with_and_without_offset() {
    for offset in [0.0, 1.0] {
        check(
            &[randn(&[3, 5, 16], 1), randn(&[16], 2)],
            |t| rms_norm(&t[0], &t[1], 1e-6, offset),
            |t| rms_norm_composite(&t[0], &t[1], 1e-6, offset),
            "rms_norm",
        );
    }
}

#[test]
fn softmax_rope_and_silu_mul_kernels_match_composites() {
    check(
        &[randn(&[4, 7, 9], 3)],
        |t| softmax_last_dim(&t[0]),
        |t| candle_nn::ops::softmax(&t[0], D::Minus1),
        "softmax",
    );
    // Angles are not trainable: only x gets a gradient.
    let (cos, sin) = (randn(&[2, 5, 4], 6), randn(&[2, 5, 4], 7));
    check(
        &[randn(&[2, 3, 5, 8], 4)],
        |t| rope(&t[0], &cos, &sin),
        |t| rope_composite(&t[0], &cos, &sin),
        "rope",
    );
    check(
        &[randn(&[6, 10], 8), randn(&[6, 10], 9)],
        |t| silu_mul(&t[0], &t[1]),
        |t| t[0].silu()? * &t[1],
        "silu_mul",
    );
}

#[test]
fn attention_kernel_matches_composite_with_gqa_and_padding() {
    // 4 query heads over 2 kv heads, 3 new queries after 2 cached keys, row 1 left-padded.
    let valid = vec![vec![true; 5], vec![false, true, true, true, true]];
    let mask = crate::decoder::attention_bias(&valid, 2, 3, &Device::Cpu).unwrap();
    let inputs = [
        randn(&[2, 4, 3, 8], 10),
        randn(&[2, 2, 5, 8], 11),
        randn(&[2, 2, 5, 8], 12),
    ];
    check(
        &inputs,
        |t| attention(&t[0], &t[1], &t[2], &mask, 0.35),
        |t| attention_composite(&t[0], &t[1], &t[2], &mask, 0.35),
        "attention",
    );
}

#[test]
fn attention_gives_the_same_bits_in_any_number_of_turns() {
    // Products run on OpenBLAS once a test in this process has opened a device and on candle's
    // gemm before that, and the two round differently: settle which before the first product,
    // or a device opened by a test running alongside switches backends between the runs compared.
    super::blas::init().unwrap();
    // 3 rows, the middle one left-padded, 4 query heads over 2 kv heads, 2 cached keys.
    let valid = vec![
        vec![true; 6],
        vec![false, false, true, true, true, true],
        vec![true; 6],
    ];
    let mask = crate::decoder::attention_bias(&valid, 2, 4, &Device::Cpu).unwrap();
    let op = attention::AttentionOp {
        q: randn(&[3, 4, 4, 8], 20),
        k: randn(&[3, 2, 6, 8], 21),
        v: randn(&[3, 2, 6, 8], 22),
        mask,
        scale: 0.35,
    };
    let whole = op.forward(3).unwrap();
    let grad = randn(&[3, 4, 4, 8], 23);
    let bits = |(dq, dk, dv): (Tensor, Tensor, Tensor)| {
        [dq, dk, dv].map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    };
    let whole_grads = bits(op.backward(&grad, 3).unwrap());
    for turn in [1, 2] {
        assert_eq!(op.forward(turn).unwrap(), whole, "{turn} rows per turn");
        let grads = bits(op.backward(&grad, turn).unwrap());
        assert_eq!(grads, whole_grads, "gradients, {turn} rows per turn");
    }
    // SmolLM2's 9 heads over 3 kv heads: how many rows of t queries over s keys go at once.
    let turn = |b: usize, t: usize, s: usize| {
        let zeros = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        attention::AttentionOp {
            q: zeros(&[b, 9, t, 1]),
            k: zeros(&[b, 3, s, 1]),
            v: zeros(&[b, 3, s, 1]),
            mask: zeros(&[1]),
            scale: 1.0,
        }
        .rows_per_turn()
        .unwrap()
    };
    assert_eq!(
        turn(16, 3000, 3000),
        1,
        "prefilling long prompts: a row at a time"
    );
    assert_eq!(
        turn(8, 1024, 1024),
        3,
        "a training batch: a few rows at a time"
    );
    assert!(turn(16, 1, 4000) >= 16, "decoding: the whole batch at once");
}

#[test]
fn chunked_linear_nll_matches_whole_logits_for_any_chunk() {
    let h = randn(&[7, 6], 13);
    let w = randn(&[11, 6], 14);
    let targets = Tensor::new(&[0u32, 10, 3, 3, 7, 1, 5], &Device::Cpu).unwrap();
    for chunk in [1, 3, 7, 100] {
        check(
            &[h.clone(), w.clone()],
            |t| linear_nll(&t[0], &t[1], &targets, chunk),
            |t| linear_nll_composite(&t[0], &t[1], &targets),
            "linear_nll",
        );
    }
}

#[test]
fn fused_attention_softmax_and_its_backward_equal_the_composites_bit_for_bit() {
    use super::attention_softmax::*;
    // 2 kv heads × 3 query heads each, 4 queries after 3 cached keys, row 1 left-padded, so
    // masked entries (−1e9), a fully masked row and scores past the exp underflow all occur.
    let valid = vec![
        vec![true; 7],
        vec![false, false, false, false, true, true, true],
    ];
    let mask = crate::decoder::attention_bias(&valid, 3, 4, &Device::Cpu).unwrap();
    let scores = (randn(&[2, 2, 12, 7], 20) * 60.0).unwrap();
    let dp = randn(&[2, 2, 12, 7], 21);
    for scale in [0.125, 1.0, 3.0] {
        let fused = masked_softmax(&scores, &mask, scale).unwrap();
        let composite = masked_softmax_composite(&scores, &mask, scale).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(
            bits(&fused),
            bits(&composite),
            "probabilities, scale {scale}"
        );
        let fused = masked_softmax_backward(&dp, &composite, scale).unwrap();
        let composite = masked_softmax_backward_composite(&dp, &composite, scale).unwrap();
        assert_eq!(bits(&fused), bits(&composite), "backward, scale {scale}");
    }
}
