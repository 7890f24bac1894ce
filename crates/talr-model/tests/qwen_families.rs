//! Qwen2 (q/k/v biases) and Qwen3 (per-head q/k RMS norms) as configs of our one decoder: logits
//! equal candle-transformers' own Qwen2 / Qwen3 inference models on the same weights, every
//! trainable parameter gets a gradient, and a hub-style config.json selects the family.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Activation, VarBuilder};
use candle_transformers::models::{qwen2, qwen3};
use common::{assert_every_parameter_has_a_gradient, max_abs_diff};
use std::collections::HashMap;
use talr_model::decoder::random_weights;
use talr_model::{DecoderConfig, LoadedModel, TextTokenizer, Trainability};

#[derive(Clone, Copy, Debug)]
enum Family {
    Qwen2,
    Qwen3,
}

fn config(family: Family, tied: bool) -> DecoderConfig {
    let mut cfg = DecoderConfig::tiny_llama(259);
    cfg.tie_word_embeddings = tied;
    cfg.rope_theta = 1_000_000.0;
    cfg.rms_norm_eps = 1e-6;
    match family {
        Family::Qwen2 => cfg.attention_bias = true,
        Family::Qwen3 => {
            cfg.qk_norm = true;
            // Qwen3 decouples head_dim from hidden/heads.
            cfg.head_dim = 16;
        }
    }
    cfg
}

fn model(family: Family, tied: bool, mode: Trainability) -> (LoadedModel, HashMap<String, Tensor>) {
    let cfg = config(family, tied);
    let weights = random_weights(&cfg, 7, 0.2, DType::F32, &Device::Cpu).unwrap();
    let m = LoadedModel::from_parts(
        cfg,
        weights.clone(),
        TextTokenizer::byte_level().unwrap(),
        "tiny".into(),
        mode,
    )
    .unwrap();
    let mut map: HashMap<String, Tensor> = weights.into_iter().collect();
    if tied {
        map.insert(
            "lm_head.weight".into(),
            map["model.embed_tokens.weight"].clone(),
        );
    }
    (m, map)
}

/// The reference's last-position logits for one prefix.
fn reference_logits(
    family: Family,
    cfg: &DecoderConfig,
    weights: &HashMap<String, Tensor>,
    input: &Tensor,
) -> Tensor {
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
    let out = match family {
        Family::Qwen2 => {
            let rcfg = qwen2::Config {
                vocab_size: cfg.vocab_size,
                hidden_size: cfg.hidden_size,
                intermediate_size: cfg.intermediate_size,
                num_hidden_layers: cfg.num_layers,
                num_attention_heads: cfg.num_heads,
                num_key_value_heads: cfg.num_kv_heads,
                max_position_embeddings: cfg.max_position_embeddings,
                sliding_window: cfg.max_position_embeddings,
                max_window_layers: cfg.num_layers,
                tie_word_embeddings: cfg.tie_word_embeddings,
                rope_theta: cfg.rope_theta,
                rms_norm_eps: cfg.rms_norm_eps,
                use_sliding_window: false,
                hidden_act: Activation::Silu,
            };
            qwen2::ModelForCausalLM::new(&rcfg, vb)
                .unwrap()
                .forward(input, 0)
                .unwrap()
        }
        Family::Qwen3 => {
            let rcfg = qwen3::Config {
                vocab_size: cfg.vocab_size,
                hidden_size: cfg.hidden_size,
                intermediate_size: cfg.intermediate_size,
                num_hidden_layers: cfg.num_layers,
                num_attention_heads: cfg.num_heads,
                head_dim: cfg.head_dim,
                attention_bias: cfg.attention_bias,
                num_key_value_heads: cfg.num_kv_heads,
                max_position_embeddings: cfg.max_position_embeddings,
                sliding_window: None,
                max_window_layers: cfg.num_layers,
                tie_word_embeddings: cfg.tie_word_embeddings,
                rope_theta: cfg.rope_theta,
                rms_norm_eps: cfg.rms_norm_eps,
                use_sliding_window: false,
                hidden_act: Activation::Silu,
            };
            qwen3::ModelForCausalLM::new(&rcfg, vb)
                .unwrap()
                .forward(input, 0)
                .unwrap()
        }
    };
    // (1, 1, vocab) or (1, vocab): the last position's logits.
    out.flatten_all().unwrap()
}

#[test]
fn qwen_logits_match_candle_transformers() {
    for family in [Family::Qwen2, Family::Qwen3] {
        for tied in [false, true] {
            let (m, weights) = model(family, tied, Trainability::Frozen);
            let ids: Vec<u32> = (0..16u32).map(|i| (i * 53 + 7) % 259).collect();
            let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let ours = m
                .decoder
                .logits(&m.decoder.forward_causal(&input).unwrap())
                .unwrap();
            let mut worst = 0f32;
            for len in [1, 5, 16] {
                let theirs = reference_logits(
                    family,
                    &m.decoder.config,
                    &weights,
                    &input.narrow(1, 0, len).unwrap(),
                );
                worst = worst.max(max_abs_diff(&ours.i((0, len - 1)).unwrap(), &theirs));
            }
            assert!(
                worst < 1e-4,
                "{family:?} tied={tied}: max |Δlogit| = {worst}"
            );
        }
    }
}

#[test]
fn every_qwen_parameter_gets_a_gradient() {
    for family in [Family::Qwen2, Family::Qwen3] {
        let (m, _) = model(family, false, Trainability::Trainable);
        let names: Vec<&String> = m.vars.iter().map(|(n, _)| n).collect();
        match family {
            Family::Qwen2 => assert!(names.iter().any(|n| n.ends_with("q_proj.bias"))),
            Family::Qwen3 => assert!(names.iter().any(|n| n.ends_with("q_norm.weight"))),
        }
        let prompt: Vec<u32> = (0..6).collect();
        let response: Vec<u32> = (10..20).collect();
        let nll = m.response_nll(&[(prompt, response)]).unwrap();
        let grads = m.backward(&nll.nll.mean_all().unwrap()).unwrap();
        assert_every_parameter_has_a_gradient(&m, &grads, &format!("{family:?}"));
    }
}

#[test]
fn a_qwen_snapshot_directory_loads_as_its_family() {
    for family in [Family::Qwen2, Family::Qwen3] {
        let (m, weights) = model(family, true, Trainability::Frozen);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            m.decoder.config.to_hf_json().unwrap(),
        )
        .unwrap();
        let mut w: talr_model::weights::WeightMap = weights.into_iter().collect();
        w.remove("lm_head.weight");
        talr_model::weights::save_safetensors(&w, &dir.path().join("model.safetensors")).unwrap();
        m.tokenizer
            .save_tokenizer_json(&dir.path().join("tokenizer.json"))
            .unwrap();
        m.tokenizer
            .save_tokenizer_config(&dir.path().join("tokenizer_config.json"))
            .unwrap();
        let source = talr_model::ModelSource::parse(&dir.path().display().to_string()).unwrap();
        let loaded = LoadedModel::load(&source, &Device::Cpu, Trainability::Frozen).unwrap();
        assert_eq!(
            loaded.decoder.config.model_type().unwrap(),
            m.decoder.config.model_type().unwrap()
        );
        let input = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
        let a = m
            .decoder
            .logits(&m.decoder.forward_causal(&input).unwrap())
            .unwrap();
        let b = loaded
            .decoder
            .logits(&loaded.decoder.forward_causal(&input).unwrap())
            .unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-6, "{family:?}");
    }
}
