//! A local directory laid out like a hub snapshot loads through the same path hub downloads take.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{max_abs_diff, tiny, write_snapshot};
use talr_model::{LoadedModel, ModelSource, Trainability};

#[test]
fn sharded_snapshot_directory_loads_and_matches_the_in_memory_model() {
    let (model, weights) = tiny(false, DType::F32, 0.2, Trainability::Frozen);
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(dir.path(), &model, &weights);

    let source = ModelSource::parse(dir.path().to_str().unwrap()).unwrap();
    assert!(matches!(source, ModelSource::Dir(_)));
    let loaded = LoadedModel::load(&source, &Device::Cpu, Trainability::Frozen).unwrap();
    assert_eq!(loaded.decoder.config, model.decoder.config);
    assert_eq!(loaded.tokenizer.eos_ids, vec![258]);
    assert_eq!(loaded.tokenizer.pad_id, 256);
    let ids = Tensor::new(&[[1u32, 50, 99, 200, 7]], &Device::Cpu).unwrap();
    let a = model
        .decoder
        .logits(&model.decoder.forward_causal(&ids).unwrap())
        .unwrap();
    let b = loaded
        .decoder
        .logits(&loaded.decoder.forward_causal(&ids).unwrap())
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let chat = loaded
        .tokenizer
        .apply_chat_template(&[talr_model::ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert!(chat.ends_with("<|im_start|>assistant\n"));
}

#[test]
fn missing_or_unsupported_snapshot_fields_are_named() {
    let (model, weights) = tiny(false, DType::F32, 0.2, Trainability::Frozen);
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(dir.path(), &model, &weights);
    let load = || {
        LoadedModel::load(
            &ModelSource::Dir(dir.path().into()),
            &Device::Cpu,
            Trainability::Frozen,
        )
    };

    // A missing shard.
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let saved = std::fs::read(&shard).unwrap();
    std::fs::remove_file(&shard).unwrap();
    let err = format!("{:#}", load().err().unwrap());
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    std::fs::write(&shard, saved).unwrap();

    // An unsupported activation, then a missing required field.
    let cfg_path = dir.path().join("config.json");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, original.replace("\"silu\"", "\"relu\"")).unwrap();
    let err = format!("{:#}", load().err().unwrap());
    assert!(
        err.contains("hidden_act") && err.contains("config.json"),
        "{err}"
    );
    std::fs::write(
        &cfg_path,
        original.replace("\"intermediate_size\"", "\"intermediate\""),
    )
    .unwrap();
    let err = format!("{:#}", load().err().unwrap());
    assert!(err.contains("intermediate_size"), "{err}");

    // A tensor the config needs but the checkpoint lacks.
    std::fs::write(&cfg_path, &original).unwrap();
    let index_path = dir.path().join("model.safetensors.index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let mut w = weights.clone();
    w.remove("model.norm.weight");
    write_snapshot(dir.path(), &model, &w);
    let err = format!("{:#}", load().err().unwrap());
    assert!(err.contains("model.norm.weight"), "{err}");
    std::fs::write(&index_path, index).unwrap();
}
