//! Gemma3 as a config of our one decoder: logits equal candle-transformers' Gemma3 on the same
//! weights (sliding and global layers, sequences longer than the window), every trainable
//! parameter gets a gradient, and config.json (flat or nested in a multimodal config) round-trips.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Activation, VarBuilder};
use candle_transformers::models::gemma3 as reference;
use common::{assert_every_parameter_has_a_gradient, max_abs_diff};
use std::collections::HashMap;
use talr_model::decoder::random_weights;
use talr_model::{DecoderConfig, LoadedModel, TextTokenizer, Trainability};

fn model(mode: Trainability) -> (LoadedModel, HashMap<String, Tensor>) {
    let cfg = DecoderConfig::tiny_gemma3(259);
    let weights = random_weights(&cfg, 11, 0.2, DType::F32, &Device::Cpu).unwrap();
    let m = LoadedModel::from_parts(
        cfg,
        weights.clone(),
        TextTokenizer::byte_level().unwrap(),
        "tiny-gemma3".into(),
        mode,
    )
    .unwrap();
    (m, weights.into_iter().collect())
}

fn reference_model(cfg: &DecoderConfig, weights: &HashMap<String, Tensor>) -> reference::Model {
    let g = cfg.gemma.as_ref().unwrap();
    let rcfg = reference::Config {
        attention_bias: false,
        head_dim: cfg.head_dim,
        hidden_activation: Activation::GeluPytorchTanh,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_attention_heads: cfg.num_heads,
        num_hidden_layers: cfg.num_layers,
        num_key_value_heads: cfg.num_kv_heads,
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta,
        rope_local_base_freq: g.rope_local_theta,
        vocab_size: cfg.vocab_size,
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
        // candle scales queries by head_dim^-1/2; Hugging Face by query_pre_attn_scalar^-1/2.
        // The tiny config makes them equal.
        query_pre_attn_scalar: g.query_pre_attn_scalar as usize,
        // candle's window admits `sliding_window` keys before the query, Hugging Face's
        // `sliding_window - 1`: the same band.
        sliding_window: g.sliding_window - 1,
        sliding_window_pattern: g.sliding_window_pattern,
        max_position_embeddings: cfg.max_position_embeddings,
    };
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
    reference::Model::new(false, &rcfg, vb).unwrap()
}

#[test]
fn gemma3_logits_match_candle_transformers_across_the_window() {
    let (m, weights) = model(Trainability::Frozen);
    assert_eq!(
        m.decoder.config.head_dim as f64,
        m.decoder
            .config
            .gemma
            .as_ref()
            .unwrap()
            .query_pre_attn_scalar
    );
    let ids: Vec<u32> = (0..14u32).map(|i| (i * 29 + 5) % 259).collect();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ours = m
        .decoder
        .logits(&m.decoder.forward_causal(&input).unwrap())
        .unwrap();
    let mut worst = 0f32;
    for len in [1, 3, 4, 5, 9, 14] {
        let mut r = reference_model(&m.decoder.config, &weights);
        let theirs = r.forward(&input.narrow(1, 0, len).unwrap(), 0).unwrap();
        worst = worst.max(max_abs_diff(
            &ours.i((0, len - 1)).unwrap(),
            &theirs.flatten_all().unwrap(),
        ));
    }
    assert!(worst < 1e-4, "max |Δlogit| = {worst}");
}

#[test]
fn the_window_matters_and_generation_with_a_cache_agrees() {
    // With the band removed, later positions change: the sliding layers really slide.
    let (m, _) = model(Trainability::Frozen);
    let mut wide = m.decoder.config.clone();
    wide.gemma.as_mut().unwrap().sliding_window = 1000;
    let weights: talr_model::weights::WeightMap =
        m.decoder.named_weights(|w, _| Ok(w.clone())).unwrap();
    let wide = LoadedModel::from_parts(
        wide,
        weights,
        TextTokenizer::byte_level().unwrap(),
        "wide".into(),
        Trainability::Frozen,
    )
    .unwrap();
    let input = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6, 5, 3]], &Device::Cpu).unwrap();
    let a = m
        .decoder
        .logits(&m.decoder.forward_causal(&input).unwrap())
        .unwrap();
    let b = wide
        .decoder
        .logits(&wide.decoder.forward_causal(&input).unwrap())
        .unwrap();
    assert!(
        max_abs_diff(&a.i((0, 2)).unwrap(), &b.i((0, 2)).unwrap()) < 1e-5,
        "inside the window nothing changes"
    );
    assert!(
        max_abs_diff(&a.i((0, 9)).unwrap(), &b.i((0, 9)).unwrap()) > 1e-4,
        "beyond it the band must matter"
    );
}

#[test]
fn every_gemma3_parameter_gets_a_gradient() {
    let (m, _) = model(Trainability::Trainable);
    assert!(m
        .vars
        .iter()
        .any(|(n, _)| n.ends_with("post_feedforward_layernorm.weight")));
    let prompt: Vec<u32> = (0..7).collect();
    let response: Vec<u32> = (20..30).collect();
    let nll = m.response_nll(&[(prompt, response)]).unwrap();
    let grads = m.backward(&nll.nll.mean_all().unwrap()).unwrap();
    assert_every_parameter_has_a_gradient(&m, &grads, "gemma3");
}

#[test]
fn gemma3_configs_parse_flat_and_nested_and_name_what_is_unsupported() {
    let cfg = DecoderConfig::tiny_gemma3(259);
    let json = cfg.to_hf_json().unwrap();
    assert_eq!(DecoderConfig::from_hf_json(&json).unwrap(), cfg);
    let nested = format!("{{\"model_type\": \"gemma3\", \"text_config\": {json}}}");
    assert_eq!(DecoderConfig::from_hf_json(&nested).unwrap(), cfg);
    let capped = json.replace(
        "\"final_logit_softcapping\": null",
        "\"final_logit_softcapping\": 30.0",
    );
    let err = DecoderConfig::from_hf_json(&capped)
        .unwrap_err()
        .to_string();
    assert!(err.contains("final_logit_softcapping"), "{err}");
    let act = json.replace("gelu_pytorch_tanh", "relu");
    let err = DecoderConfig::from_hf_json(&act).unwrap_err().to_string();
    assert!(
        err.contains("hidden_activation") && err.contains("relu"),
        "{err}"
    );
    let missing = json.replace("\"intermediate_size\"", "\"intermediate_size_renamed\"");
    let err = DecoderConfig::from_hf_json(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("intermediate_size"), "{err}");
}

#[test]
fn cached_batched_generation_equals_uncached_greedy_decoding() {
    use talr_model::generate::{generate, GenerationConfig};
    let (m, _) = model(Trainability::Frozen);
    let prompts: Vec<Vec<u32>> = vec![vec![5, 6, 7], vec![1, 2, 3, 4, 5, 6, 7, 8]];
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        ignore_eos: true,
        ..Default::default()
    };
    let batched = generate(&m.decoder, &m.tokenizer, &prompts, &cfg, |_| {}).unwrap();
    for (p, g) in prompts.iter().zip(&batched) {
        // Uncached reference: rerun the whole sequence for every new token.
        let mut seq = p.clone();
        for _ in 0..8 {
            let input = Tensor::new(seq.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = m
                .decoder
                .logits(&m.decoder.forward_causal(&input).unwrap())
                .unwrap();
            let last: Vec<f32> = logits.i((0, seq.len() - 1)).unwrap().to_vec1().unwrap();
            let next = last
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u32;
            seq.push(next);
        }
        assert_eq!(&g.tokens, &seq[p.len()..].to_vec(), "prompt {p:?}");
    }
}
