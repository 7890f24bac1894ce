//! Our decoder's logits equal candle-transformers' own Llama inference model on the same weights.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as reference;
use common::{max_abs_diff, smollm2_if_cached, tiny};
use talr_model::{DecoderConfig, LoadedModel, Trainability};

fn reference_model(
    cfg: &DecoderConfig,
    weights: std::collections::HashMap<String, Tensor>,
) -> (reference::Llama, reference::Config) {
    let rcfg = reference::Config {
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        vocab_size: cfg.vocab_size,
        num_hidden_layers: cfg.num_layers,
        num_attention_heads: cfg.num_heads,
        num_key_value_heads: cfg.num_kv_heads,
        use_flash_attn: false,
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: cfg.max_position_embeddings,
        tie_word_embeddings: cfg.tie_word_embeddings,
    };
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    (reference::Llama::load(vb, &rcfg).unwrap(), rcfg)
}

/// Last-position logits of the reference for every prefix of `ids`, against ours at each position.
fn compare(
    model: &LoadedModel,
    weights: std::collections::HashMap<String, Tensor>,
    ids: &[u32],
    prefixes: &[usize],
) -> f32 {
    let cfg = &model.decoder.config;
    let (reference, rcfg) = reference_model(cfg, weights);
    let input = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ours = model
        .decoder
        .logits(&model.decoder.forward_causal(&input).unwrap())
        .unwrap();
    let mut worst = 0f32;
    for &len in prefixes {
        let mut cache = reference::Cache::new(false, DType::F32, &rcfg, &Device::Cpu).unwrap();
        let theirs = reference
            .forward(&input.narrow(1, 0, len).unwrap(), 0, &mut cache)
            .unwrap();
        let mine = ours.i((0, len - 1)).unwrap();
        worst = worst.max(max_abs_diff(&mine, &theirs.squeeze(0).unwrap()));
    }
    worst
}

#[test]
fn tiny_random_llama_matches_candle_transformers() {
    for tied in [false, true] {
        let (model, weights) = tiny(tied, DType::F32, 0.2, Trainability::Frozen);
        let mut map: std::collections::HashMap<String, Tensor> = weights.into_iter().collect();
        if tied {
            map.insert(
                "lm_head.weight".into(),
                map["model.embed_tokens.weight"].clone(),
            );
        }
        let ids: Vec<u32> = (0..24u32).map(|i| (i * 37 + 11) % 259).collect();
        let diff = compare(&model, map, &ids, &(1..=24).collect::<Vec<_>>());
        assert!(diff < 1e-4, "tied={tied}: max |Δlogit| = {diff}");
    }
}

#[test]
fn smollm2_matches_candle_transformers_when_cached() {
    let Some(model) = smollm2_if_cached() else {
        return;
    };
    // Rebuild the weight map from the GGUF the same way the loader does.
    let path = talr_assets::SMOLLM2_135M_INSTRUCT.path_in(&talr_assets::cache_root());
    let gguf = talr_model::weights::load_gguf(&path, &Device::Cpu).unwrap();
    let mut map: std::collections::HashMap<String, Tensor> = gguf.weights.into_iter().collect();
    map.insert(
        "lm_head.weight".into(),
        map["model.embed_tokens.weight"].clone(),
    );
    let text = model
        .tokenizer
        .apply_chat_template(
            &[talr_model::ChatMessage::new(
                "user",
                "What is the capital of France?",
            )],
            true,
        )
        .unwrap();
    let ids = model.tokenizer.encode(&text).unwrap();
    let n = ids.len();
    let diff = compare(&model, map, &ids, &[n / 2, n]);
    assert!(diff < 1e-4, "SmolLM2: max |Δlogit| = {diff}");
}
