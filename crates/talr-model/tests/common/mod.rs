#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use talr_model::decoder::random_weights;
use talr_model::weights::WeightMap;
use talr_model::{DecoderConfig, LoadedModel, ModelSource, TextTokenizer, Trainability};

/// A tiny Llama over the byte-level vocabulary, seeded.
pub fn tiny(tied: bool, dtype: DType, std: f32, mode: Trainability) -> (LoadedModel, WeightMap) {
    let tokenizer = TextTokenizer::byte_level().unwrap();
    let mut cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
    cfg.tie_word_embeddings = tied;
    let weights = random_weights(&cfg, 42, std, dtype, &Device::Cpu).unwrap();
    let model =
        LoadedModel::from_parts(cfg, weights.clone(), tokenizer, "tiny".into(), mode).unwrap();
    (model, weights)
}

/// SmolLM2-135M-Instruct when it is already in the cache (tests never download it); under
/// `TALR_REQUIRE_ASSETS=1` a missing model fails the test instead of skipping it.
pub fn smollm2_if_cached() -> Option<LoadedModel> {
    let path = talr_assets::cached_for_test(&talr_assets::SMOLLM2_135M_INSTRUCT)?;
    let source = ModelSource::Gguf(path);
    Some(LoadedModel::load(&source, &Device::Cpu, Trainability::Frozen).unwrap())
}

pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    talr_model::ops::max_abs_diff(a, b).unwrap()
}

/// Every trainable parameter of `model` has a finite gradient with a non-zero entry in `grads`
/// (DESIGN.md §4: several candle ops silently drop gradients). `what` names the model in failures.
pub fn assert_every_parameter_has_a_gradient(
    model: &LoadedModel,
    grads: &candle_core::backprop::GradStore,
    what: &str,
) {
    assert!(!model.vars.is_empty(), "{what}: no trainable parameters");
    for (name, var) in &model.vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what}: {name} received no gradient"));
        let v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{what}: {name} non-finite gradient"
        );
        assert!(
            v.iter().any(|&x| x != 0.0),
            "{what}: {name} all-zero gradient"
        );
    }
}

/// Writes `model` as a hub snapshot directory: config.json, tokenizer files, two safetensors
/// shards and their index, as large hub checkpoints come.
pub fn write_snapshot(
    dir: &std::path::Path,
    model: &LoadedModel,
    weights: &talr_model::weights::WeightMap,
) {
    let cfg = &model.decoder.config;
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
        "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings, "hidden_act": "silu"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    model
        .tokenizer
        .save_tokenizer_json(&dir.join("tokenizer.json"))
        .unwrap();
    let tok_cfg = serde_json::json!({
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "chat_template": talr_model::tokenizer::CHATML_TEMPLATE
    });
    std::fs::write(dir.join("tokenizer_config.json"), tok_cfg.to_string()).unwrap();
    // Two shards and an index, as large hub checkpoints come.
    let mut index = serde_json::Map::new();
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    for (i, (name, t)) in weights.iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
        index.insert(name.clone(), serde_json::Value::String(file));
        shards[i % 2].insert(name.clone(), t.clone());
    }
    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(format!("model-0000{}-of-00002.safetensors", i + 1));
        candle_core::safetensors::save(shard, path).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": index});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}
