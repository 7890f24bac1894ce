//! A hub repo id loads from hf-hub's cache: a snapshot already in `$HF_HOME` needs no network,
//! a revision picks its own snapshot, and a repo neither cached nor reachable is an error that
//! names it and says what to pass instead. Its own test binary, since it sets process-wide
//! variables.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{max_abs_diff, tiny, write_snapshot};
use talr_model::{LoadedModel, ModelSource, Trainability};

#[test]
fn a_repo_id_loads_its_cached_snapshot_and_a_missing_one_is_named() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    // Nothing listens there: a miss fails at once instead of reaching the real hub.
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");

    let repo = home.path().join("hub/models--test-org--tiny-llama");
    let models = [0.2, 0.3].map(|std| tiny(false, DType::F32, std, Trainability::Frozen));
    for ((model, weights), (rev, commit)) in models.iter().zip([("main", "aa11"), ("v2", "bb22")]) {
        let snapshot = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        write_snapshot(&snapshot, model, weights);
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join(rev), commit).unwrap();
    }

    let ids = Tensor::new(&[[1u32, 50, 99, 200, 7]], &Device::Cpu).unwrap();
    let logits = |m: &LoadedModel| {
        m.decoder
            .logits(&m.decoder.forward_causal(&ids).unwrap())
            .unwrap()
    };
    for (spec, (model, _)) in ["test-org/tiny-llama", "test-org/tiny-llama@v2"]
        .iter()
        .zip(&models)
    {
        let source = ModelSource::parse(spec).unwrap();
        assert!(matches!(source, ModelSource::Hub { .. }), "{source:?}");
        let loaded = LoadedModel::load(&source, &Device::Cpu, Trainability::Frozen).unwrap();
        assert_eq!(
            max_abs_diff(&logits(&loaded), &logits(model)),
            0.0,
            "{spec}"
        );
    }
    let (a, b) = (&models[0].0, &models[1].0);
    assert!(max_abs_diff(&logits(a), &logits(b)) > 0.0);

    let missing = ModelSource::parse("test-org/not-cached").unwrap();
    let err = format!(
        "{:#}",
        LoadedModel::load(&missing, &Device::Cpu, Trainability::Frozen)
            .err()
            .unwrap()
    );
    assert!(
        err.contains("config.json")
            && err.contains("test-org/not-cached")
            && err.contains("local directory"),
        "{err}"
    );
}
