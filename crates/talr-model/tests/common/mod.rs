#![allow(dead_code)]

use candle_core::{DType, Device};
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

/// SmolLM2-135M-Instruct when it is already in the cache (tests never download it).
pub fn smollm2_if_cached() -> Option<LoadedModel> {
    let asset = talr_assets::SMOLLM2_135M_INSTRUCT;
    let path = asset.path_in(&talr_assets::cache_root());
    if !path.is_file() {
        eprintln!(
            "skipping the SmolLM2 part: {} is not cached (run `talr assets fetch`)",
            path.display()
        );
        return None;
    }
    let source = ModelSource::Gguf(path);
    Some(LoadedModel::load(&source, &Device::Cpu, Trainability::Frozen).unwrap())
}

pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    talr_model::ops::max_abs_diff(a, b).unwrap()
}
