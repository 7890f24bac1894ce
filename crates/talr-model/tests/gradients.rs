//! Every trainable parameter gets a gradient, and autograd agrees with finite differences.

mod common;

use candle_core::{DType, Tensor};
use common::{assert_every_parameter_has_a_gradient, tiny};
use talr_model::logprobs::response_nll;
use talr_model::Trainability;

fn pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
    vec![
        (
            b"Q: 2+2?".iter().map(|&b| b as u32).collect(),
            b" A: 4".iter().map(|&b| b as u32).collect(),
        ),
        (
            b"Hi".iter().map(|&b| b as u32).collect(),
            b" there, friend".iter().map(|&b| b as u32).collect(),
        ),
    ]
}

fn loss(model: &talr_model::LoadedModel, chunk: usize) -> Tensor {
    response_nll(&model.decoder, &pairs(), model.tokenizer.pad_id, chunk)
        .unwrap()
        .nll
        .mean_all()
        .unwrap()
}

#[test]
fn every_parameter_receives_a_finite_nonzero_gradient() {
    for tied in [false, true] {
        let (model, _) = tiny(tied, DType::F32, 0.1, Trainability::Trainable);
        let grads = loss(&model, 3).backward().unwrap();
        assert_every_parameter_has_a_gradient(&model, &grads, &format!("tiny, tied={tied}"));
    }
}

/// f64 model (composite ops) against central differences, and the f32 model (CPU kernels and the
/// chunked output projection) against the f64 gradients.
#[test]
fn autograd_matches_finite_differences_and_kernels_match_composites() {
    let (m64, w64) = tiny(false, DType::F64, 0.1, Trainability::Trainable);
    let grads64 = loss(&m64, 4).backward().unwrap();
    let (m32, _) = tiny(false, DType::F32, 0.1, Trainability::Trainable);
    let grads32 = loss(&m32, 4).backward().unwrap();

    let probes = [
        ("model.embed_tokens.weight", 81 * 32 + 5),
        ("model.layers.0.self_attn.q_proj.weight", 17),
        ("model.layers.0.self_attn.k_proj.weight", 100),
        ("model.layers.1.self_attn.v_proj.weight", 3),
        ("model.layers.1.self_attn.o_proj.weight", 200),
        ("model.layers.0.input_layernorm.weight", 7),
        ("model.layers.1.post_attention_layernorm.weight", 30),
        ("model.layers.0.mlp.gate_proj.weight", 555),
        ("model.layers.1.mlp.down_proj.weight", 901),
        ("model.norm.weight", 11),
        ("lm_head.weight", 116 * 32 + 2),
    ];
    let eps = 1e-5;
    for (name, idx) in probes {
        let (_, var) = m64.vars.iter().find(|(n, _)| n == name).unwrap();
        let base = w64[name].flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let shape = w64[name].shape().clone();
        let eval_at = |delta: f64| {
            let mut v = base.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, shape.clone(), &candle_core::Device::Cpu).unwrap())
                .unwrap();
            loss(&m64, 4).to_scalar::<f64>().unwrap()
        };
        let numeric = (eval_at(eps) - eval_at(-eps)) / (2.0 * eps);
        eval_at(0.0);
        let auto = grads64
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[idx];
        let tol = 1e-6 + 1e-4 * numeric.abs();
        assert!(
            (numeric - auto).abs() < tol,
            "{name}[{idx}]: finite difference {numeric:e} vs autograd {auto:e}"
        );

        let (_, var32) = m32.vars.iter().find(|(n, _)| n == name).unwrap();
        let g32 = grads32
            .get(var32.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[idx] as f64;
        assert!(
            (g32 - auto).abs() < 1e-5 + 1e-3 * auto.abs(),
            "{name}[{idx}]: f32 kernels {g32:e} vs f64 composites {auto:e}"
        );
    }
}

#[test]
fn checkpointed_blocks_give_the_same_gradients() {
    for tied in [false, true] {
        let (plain, _) = tiny(tied, DType::F32, 0.1, Trainability::Trainable);
        let (mut ckpt, _) = tiny(tied, DType::F32, 0.1, Trainability::Trainable);
        ckpt.decoder.set_checkpointing(true);
        let lp = loss(&plain, 5);
        let lc = loss(&ckpt, 5);
        assert_eq!(
            lp.to_scalar::<f32>().unwrap(),
            lc.to_scalar::<f32>().unwrap()
        );
        let gp = plain.backward(&lp).unwrap();
        let gc = ckpt.backward(&lc).unwrap();
        for ((name, vp), (_, vc)) in plain.vars.iter().zip(&ckpt.vars) {
            let a = gp
                .get(vp.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no plain gradient"));
            let b = gc
                .get(vc.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no checkpointed gradient"));
            let diff = common::max_abs_diff(a, b);
            assert!(
                diff < 1e-6,
                "{name} (tied={tied}): gradients differ by {diff}"
            );
        }
    }
}

/// Rows of very different lengths go through separate forward passes; each row's NLL, and the
/// gradient of the batch's loss, are what the rows give one at a time.
#[test]
fn a_rows_nll_and_gradient_do_not_depend_on_its_batchmates() {
    let (model, _) = tiny(false, DType::F32, 0.1, Trainability::Trainable);
    let bytes = |s: &str| s.bytes().map(|b| b as u32).collect::<Vec<u32>>();
    // Longest first, so the passes (shortest first) must be put back in row order.
    let rows = vec![
        (
            bytes("A much longer prompt, padded a lot in a shared pass:"),
            bytes(" yes"),
        ),
        (bytes("Hi"), bytes(" there")),
        (bytes("Q: 2+2?"), bytes(" A: 4")),
    ];
    let batch = response_nll(&model.decoder, &rows, model.tokenizer.pad_id, 4).unwrap();
    assert_eq!(batch.offsets, vec![0, 4, 10, 15]);
    let mut alone = Vec::new();
    let mut summed: Option<candle_core::backprop::GradStore> = None;
    for row in &rows {
        let nll = response_nll(&model.decoder, std::slice::from_ref(row), 0, 4)
            .unwrap()
            .nll;
        alone.extend(nll.to_vec1::<f32>().unwrap());
        let g = nll.sum_all().unwrap().backward().unwrap();
        summed = Some(match summed {
            None => g,
            Some(mut acc) => {
                for (_, var) in &model.vars {
                    let t = var.as_tensor();
                    let sum = (acc.get(t).unwrap() + g.get(t).unwrap()).unwrap();
                    acc.insert(t, sum);
                }
                acc
            }
        });
    }
    let together = batch.nll.to_vec1::<f32>().unwrap();
    for (a, b) in together.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-5, "batched {a} vs alone {b}");
    }
    let grads = batch.nll.sum_all().unwrap().backward().unwrap();
    let summed = summed.unwrap();
    for (name, var) in &model.vars {
        let t = var.as_tensor();
        let diff = common::max_abs_diff(grads.get(t).unwrap(), summed.get(t).unwrap());
        assert!(diff < 1e-4, "{name}: gradients differ by {diff}");
    }
}
