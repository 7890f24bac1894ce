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
