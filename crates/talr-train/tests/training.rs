//! End-to-end training on a tiny random model: exact resume, every method lowers the loss,
//! merged export loads back.

use candle_core::{DType, Device};
use talr_model::decoder::random_weights;
use talr_model::ChatMessage;
use talr_model::{DecoderConfig, LoadedModel, ModelSource, TextTokenizer, Trainability};
use talr_train::data::{tokenize, Example};
use talr_train::{prepare, train, trainability, RunOptions, TrainConfig};

fn tiny(mode: Trainability) -> LoadedModel {
    let tokenizer = TextTokenizer::byte_level().unwrap();
    let cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
    let weights = random_weights(&cfg, 3, 0.1, DType::F32, &Device::Cpu).unwrap();
    LoadedModel::from_parts(cfg, weights, tokenizer, "tiny".into(), mode).unwrap()
}

fn examples() -> Vec<Example> {
    (0..12)
        .map(|i| Example {
            messages: vec![ChatMessage::new("user", &format!("{i} + {i} ="))],
            target: format!("{}", 2 * i),
            id: None,
        })
        .collect()
}

fn config(yaml_method: &str) -> TrainConfig {
    let yaml = format!(
        "method: {yaml_method}\ntraining: {{learning_rate: 3.0e-3, epochs: 3, batch_size: 4, micro_batch_size: 2, seed: 7, max_length: 64}}"
    );
    TrainConfig::from_yaml(&yaml, "test.yaml").unwrap()
}

/// A tiny model prepared for `cfg`, its weights before training, its trainable parameters and
/// the tokenised examples.
struct Setup {
    model: LoadedModel,
    initial: talr_model::weights::WeightMap,
    params: Vec<(String, candle_core::Var)>,
    data: Vec<talr_train::data::TokenizedExample>,
}

fn setup(cfg: &TrainConfig) -> Setup {
    let mut model = tiny(trainability(cfg));
    let initial = model.decoder.named_weights(|w, _| Ok(w.clone())).unwrap();
    let params = prepare(&mut model, cfg).unwrap();
    let data = tokenize(&examples(), &model.tokenizer, cfg.training.max_length).unwrap();
    Setup {
        model,
        initial,
        params,
        data,
    }
}

fn train_setup(
    s: &Setup,
    cfg: &TrainConfig,
    out: &std::path::Path,
    stop_after: Option<usize>,
) -> anyhow::Result<talr_train::trainer::TrainOutcome> {
    let opts = RunOptions {
        stop_after,
        progress: false,
    };
    train(&s.model, &s.params, cfg, &s.data, out, &opts)
}

fn run(
    cfg: &TrainConfig,
    out: &std::path::Path,
    stop_after: Option<usize>,
) -> (Vec<f64>, LoadedModel) {
    let s = setup(cfg);
    let outcome = train_setup(&s, cfg, out, stop_after).unwrap();
    (outcome.metrics.iter().map(|m| m.loss).collect(), s.model)
}

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let cfg = config("{token_weighting: {kind: talr, tau: batch_median, floor: 0.1, renormalize: false, tau_min: 0.01}}");
    let straight = tempfile::tempdir().unwrap();
    let (trace, model) = run(&cfg, straight.path(), None);
    assert_eq!(trace.len(), 9, "12 examples / batch 4 × 3 epochs");

    let split = tempfile::tempdir().unwrap();
    let (first, _) = run(&cfg, split.path(), Some(4));
    assert_eq!(first.len(), 4);
    // The resumed run's outcome covers every step, the first invocation's too: what a cell's
    // training summary is made from.
    let (joined, resumed) = run(&cfg, split.path(), None);
    assert_eq!(joined.len(), trace.len());
    for (a, b) in joined.iter().zip(&trace) {
        assert!(
            (a - b).abs() < 1e-6,
            "loss traces differ: {joined:?} vs {trace:?}"
        );
    }
    for ((name, a), (_, b)) in model.vars.iter().zip(&resumed.vars) {
        let d = talr_model::ops::max_abs_diff(a.as_tensor(), b.as_tensor()).unwrap();
        assert!(d < 1e-6, "{name} differs by {d} after resume");
    }
    let lines = std::fs::read_to_string(split.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 9, "metrics hold each step once");
}

#[test]
fn every_method_lowers_the_training_loss_and_exports() {
    let methods = [
        ("sft", "{token_weighting: {kind: uniform}}"),
        ("talr", "{token_weighting: {kind: talr, tau: batch_median, floor: 0.1, renormalize: false, tau_min: 0.01}}"),
        ("dft", "{token_weighting: {kind: dft}}"),
        ("flow", "{sample_weighting: flow}"),
        ("l2", "{regularizer: {l2_to_init: {lambda: 0.1}}}"),
        ("lora", "{adapter: {lora: {rank: 4, alpha: 8}}}"),
        ("wise_ft", "{merge: {wise_ft: {alpha: 0.5}}}"),
    ];
    for (name, method) in methods {
        let mut cfg = config(method);
        if name == "lora" {
            cfg.training.learning_rate = 3e-2;
        }
        let out = tempfile::tempdir().unwrap();
        let s = setup(&cfg);
        let outcome = train_setup(&s, &cfg, out.path(), None).unwrap();
        let first = outcome.metrics.first().unwrap().mean_nll;
        let last = outcome.metrics.last().unwrap().mean_nll;
        assert!(last < first, "{name}: mean NLL {first} -> {last}");

        let export = out.path().join("merged");
        talr_train::export_merged(&s.model, &s.initial, &cfg, &export).unwrap();
        let loaded = LoadedModel::load(
            &ModelSource::Dir(export),
            &Device::Cpu,
            Trainability::Frozen,
        )
        .unwrap();
        assert_eq!(loaded.decoder.config, s.model.decoder.config, "{name}");
    }
}

/// WiSE-FT from the stored fine-tuned weights (how a cell reuses another cell's training) is the
/// model the run exports directly, bit for bit, for LoRA's merged adapters too.
#[test]
fn merging_the_exported_finetuned_weights_matches_the_direct_export() {
    for method in [
        "{merge: {wise_ft: {alpha: 0.25}}}",
        "{adapter: {lora: {rank: 4, alpha: 8}}, merge: {wise_ft: {alpha: 0.5}}}",
    ] {
        let cfg = config(method);
        let out = tempfile::tempdir().unwrap();
        let s = setup(&cfg);
        train_setup(&s, &cfg, out.path(), None).unwrap();
        let direct = out.path().join("direct");
        talr_train::export_merged(&s.model, &s.initial, &cfg, &direct).unwrap();
        let stored = out.path().join("finetuned");
        talr_train::export_finetuned(&s.model, &stored).unwrap();

        let reloaded = LoadedModel::load(
            &ModelSource::Dir(stored),
            &Device::Cpu,
            Trainability::Frozen,
        )
        .unwrap();
        let via_store = out.path().join("via-store");
        talr_train::export_merged(&reloaded, &s.initial, &cfg, &via_store).unwrap();
        let a = std::fs::read(direct.join("model.safetensors")).unwrap();
        let b = std::fs::read(via_store.join("model.safetensors")).unwrap();
        assert!(a == b, "{method}: the merged weights differ");
        let untouched =
            talr_train::export_merged(&s.model, &s.initial, &config("{}"), &out.path().join("sft"));
        untouched.unwrap();
        let sft = std::fs::read(out.path().join("sft/model.safetensors")).unwrap();
        assert!(
            sft != a,
            "{method}: WiSE-FT must move the weights off the fine-tuned ones"
        );
    }
}

#[test]
fn shipped_method_specs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/methods");
    let mut seen = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let cfg =
                TrainConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            seen.insert(name, cfg);
        }
    }
    for method in ["sft", "talr", "dft", "flow", "l2", "lora", "wise_ft"] {
        assert!(
            seen.contains_key(method),
            "experiments/methods/{method}.yaml is missing"
        );
    }
    // The τ ablation's fixed temperature parses as one.
    let fixed = &seen["talr_tau_1"].method.token_weighting;
    assert!(
        matches!(
            fixed,
            talr_methods::TokenWeighting::Talr {
                tau: talr_methods::token_weighting::Tau::Fixed(t),
                ..
            } if *t == 1.0
        ),
        "{fixed:?}"
    );
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_checkpoint() {
    let mut cfg = config("{token_weighting: {kind: uniform}}");
    cfg.training.learning_rate = 1e30;
    cfg.training.checkpoint_every = 1;
    let out = tempfile::tempdir().unwrap();
    let err = train_setup(&setup(&cfg), &cfg, out.path(), None)
        .err()
        .expect("a learning rate of 1e30 must diverge");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("not finite") && msg.contains("checkpoint"),
        "{msg}"
    );
    let state = std::fs::read_to_string(out.path().join("checkpoint/state.json")).unwrap();
    assert!(state.contains("\"step\": 1"), "{state}");
}

#[test]
fn an_empty_target_is_an_error_naming_the_example() {
    let tokenizer = TextTokenizer::byte_level().unwrap();
    let mut data = examples();
    data[3].target = "  ".into();
    data[3].id = Some(serde_json::json!("row-3"));
    let err = tokenize(&data, &tokenizer, 64).unwrap_err().to_string();
    assert_eq!(
        err,
        "example 3 (id \"row-3\") has an empty target; the loss would see only the end-of-turn token"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.jsonl");
    std::fs::write(
        &path,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"target\": \"hello\"}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"target\": \"\"}\n",
    )
    .unwrap();
    let err = talr_train::data::load_examples(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "train.jsonl:2: `target` is empty; the loss would see only the end-of-turn token"
        ),
        "{err}"
    );
}
