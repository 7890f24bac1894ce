//! Running one cell (train, export, evaluate) and the base model's evaluation, each ending in a
//! `result.json` written atomically. A finished cell is never run again.

use crate::spec::{Cell, Preset};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::path::Path;
use std::time::Instant;
use talr_analysis::schema::{self, ResultRecord, ResultsDir, Seconds, TrainingSummary};
use talr_evals::registry::{build_task, training_examples, TrainingSize};
use talr_evals::suite::{evaluate_suite, ReplyBudget, Suite, SuiteMetrics};
use talr_evals::task::Task;
use talr_evals::{Domain, Style};
use talr_model::decoder::random_weights;
use talr_model::{
    ChatExample, DecoderConfig, LoadedModel, ModelSource, TextTokenizer, Trainability,
};
use talr_train::data::tokenize;
use talr_train::RunOptions;

pub fn load_model(preset: &Preset, device: &Device, mode: Trainability) -> Result<LoadedModel> {
    if preset.model == "tiny-random" {
        let tokenizer = TextTokenizer::byte_level()?;
        let cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
        let weights = random_weights(&cfg, preset.model_seed, 0.1, DType::F32, device)?;
        return LoadedModel::from_parts(cfg, weights, tokenizer, "tiny-random".into(), mode);
    }
    LoadedModel::load(&ModelSource::parse(&preset.model)?, device, mode)
}

/// The training examples of the domain: its `train_source`, else MedCalc template rows from the
/// preset's training seed, or ESCI's train split from the default files.
pub fn domain_examples(preset: &Preset, style: Style) -> Result<Vec<ChatExample>> {
    let spec = match (&preset.domain.train_source, preset.domain.name) {
        (Some(spec), _) => spec.clone(),
        (None, Domain::Medcalc) => format!("medcalc-synth={}", preset.domain.train_seed),
        (None, Domain::Esci) => "esci".to_string(),
    };
    let size = TrainingSize {
        per_calculator: preset.domain.train_per_calculator,
        limit: preset.domain.train_limit,
    };
    let set = training_examples(&spec, style, size)
        .with_context(|| format!("the domain's training examples ({spec})"))?;
    Ok(set.examples)
}

fn domain_task(preset: &Preset, style: Style) -> Result<Box<dyn Task>> {
    let (name, source) = talr_evals::registry::split_spec(&preset.domain.test_task);
    let spec = format!(
        "{name}{}{}",
        style.suffix(),
        source.map(|s| format!("={s}")).unwrap_or_default()
    );
    let mut task = build_task(&spec, 2)?;
    if let Some(n) = preset.domain.test_limit {
        task.truncate(n);
    }
    Ok(task)
}

fn general_tasks(preset: &Preset) -> Result<Vec<Box<dyn Task>>> {
    preset
        .general
        .tasks
        .iter()
        .map(|spec| {
            let mut task = build_task(spec, 2)?;
            let (name, _) = talr_evals::registry::split_spec(spec);
            if let Some(n) = preset
                .general
                .limits
                .get(name)
                .or(preset.general.limit.as_ref())
            {
                task.truncate(*n);
            }
            Ok(task)
        })
        .collect()
}

/// Evaluates `model` on the domain (one style) and general tasks into `dir`; general code length
/// is measured against the base model's replies in `results`' base directory.
fn evaluate_all(
    preset: &Preset,
    model: &LoadedModel,
    style: Style,
    dir: &Path,
    results: &ResultsDir,
    progress: bool,
) -> Result<SuiteMetrics> {
    let suite = Suite {
        domain: Some(domain_task(preset, style)?),
        general: general_tasks(preset)?,
        batch_size: preset.generation.batch_size,
        reply_budget: preset
            .generation
            .max_new_tokens
            .map_or(ReplyBudget::TaskDefault, ReplyBudget::Cap),
        domain_reply_budget: preset
            .domain_reply_budget
            .get(&style)
            .map(|&n| ReplyBudget::Override(n)),
        code_length: preset.general.code_length,
        base_generations: Some(results.base_dir()),
        progress,
    };
    Ok(evaluate_suite(model, &suite, dir)?.metrics())
}

/// Evaluates the base model once per preset and style, into `<root>/base/` (general tasks are
/// generated once and shared by both styles; the domain task's name carries the style).
pub fn run_base(
    preset: &Preset,
    results: &ResultsDir,
    style: Style,
    device: &Device,
    progress: bool,
) -> Result<ResultRecord> {
    let path = results.base_result(style);
    let _lock = results.lock_base()?;
    if path.exists() {
        return schema::read_record(&path);
    }
    let start = Instant::now();
    let model = load_model(preset, device, Trainability::Frozen)?;
    let dir = results.base_dir();
    let metrics = evaluate_all(preset, &model, style, &dir, results, progress)?;
    let histogram = target_token_histogram(preset, &model, style)?;
    let record = ResultRecord {
        cell: format!("base-{style}"),
        preset: preset.name.clone(),
        grids: Vec::new(),
        method: "base".into(),
        style,
        learning_rate: None,
        seed: None,
        config: None,
        training: None,
        metrics,
        token_probability_histogram: Some(histogram),
        seconds: Seconds {
            train: None,
            eval: start.elapsed().as_secs_f64(),
        },
        device: Some(talr_model::device_name(device)),
        versions: crate::provenance::versions(),
    };
    schema::write_record(&path, &record)?;
    Ok(record)
}

/// How the base model's probabilities of the SFT target tokens spread over [0, 1] (20 bins):
/// the paper's Figure 3 observation that most are near 1 and few are hard.
fn target_token_histogram(preset: &Preset, model: &LoadedModel, style: Style) -> Result<Vec<u64>> {
    let max_length = preset
        .training_setting(style, "max_length")
        .and_then(|v| v.as_u64())
        .unwrap_or(1024) as usize;
    let data = tokenize(
        &domain_examples(preset, style)?,
        &model.tokenizer,
        max_length,
    )?;
    let mut bins = vec![0u64; 20];
    for chunk in data.chunks(8) {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = chunk
            .iter()
            .map(|e| (e.prompt.clone(), e.response.clone()))
            .collect();
        let nll: Vec<f32> = model.response_nll(&pairs)?.nll.detach().to_vec1()?;
        for v in nll {
            let p = (-(v as f64)).exp();
            bins[((p * 20.0) as usize).min(19)] += 1;
        }
    }
    Ok(bins)
}

/// What became of a cell.
pub enum CellRun {
    Trained,
    /// Another process finished it first.
    FinishedElsewhere,
    /// Another process holds the cell's lock and is running it.
    Busy,
}

/// Trains and evaluates one cell into its `result.json`. Skips a finished cell, and a cell
/// another process is running.
pub fn run_cell(
    preset: &Preset,
    results: &ResultsDir,
    cell: &Cell,
    device: &Device,
    progress: bool,
) -> Result<CellRun> {
    let Some(_lock) = results.try_lock_cell(&cell.id)? else {
        return Ok(CellRun::Busy);
    };
    let result = results.cell_result(&cell.id);
    if result.exists() {
        return Ok(CellRun::FinishedElsewhere);
    }
    let dir = results.cell_dir(&cell.id);
    let cfg = &cell.config;
    let start = Instant::now();
    let examples = domain_examples(preset, cell.style)?;
    let opts = RunOptions {
        stop_after: None,
        progress,
    };
    // An earlier, interrupted attempt's generations stay when its training checkpoint does:
    // training resumes exactly from it, so this attempt exports the same model. Without one,
    // training starts over and they are discarded rather than mixed with new ones.
    let checkpoint = dir.join("train").join("checkpoint");
    if !checkpoint.exists() {
        let _ = std::fs::remove_dir_all(dir.join("eval"));
    }
    let merged = dir.join("merged");
    let shared = cell
        .training_shared
        .then(|| results.finetuned_dir(&cell.training));
    let trained = match shared.as_deref().filter(|store| is_complete(store)) {
        Some(store) => merge_stored(preset, device, cfg, store, &dir.join("train"), &merged)
            .with_context(|| {
                format!(
                    "cell {} ({}) from {}",
                    cell.id,
                    cell.method,
                    store.display()
                )
            })?,
        None => train_and_export(
            preset,
            device,
            cell,
            &examples,
            &dir,
            shared.as_deref(),
            &opts,
        )?,
    };
    let train_seconds = start.elapsed().as_secs_f64();

    let eval_start = Instant::now();
    let model = LoadedModel::load(
        &ModelSource::parse(&merged.display().to_string())?,
        device,
        Trainability::Frozen,
    )?;
    let metrics = evaluate_all(
        preset,
        &model,
        cell.style,
        &dir.join("eval"),
        results,
        progress,
    )?;
    drop(model);
    let _ = std::fs::remove_dir_all(&merged);

    let steps = &trained.metrics;
    let mean = |f: &dyn Fn(&talr_train::StepMetrics) -> Option<f64>| {
        let v: Vec<f64> = steps.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let record = ResultRecord {
        cell: cell.id.clone(),
        preset: preset.name.clone(),
        grids: cell.grids.clone(),
        method: cell.method.clone(),
        style: cell.style,
        learning_rate: Some(cell.learning_rate),
        seed: Some(cell.seed),
        config: Some(serde_json::to_value(cfg)?),
        training: Some(TrainingSummary {
            steps: steps.len(),
            examples: examples.len(),
            first_mean_nll: steps.first().map(|m| m.mean_nll),
            last_mean_nll: steps.last().map(|m| m.mean_nll),
            last_loss: steps.last().map(|m| m.loss),
            mean_tau: mean(&|m| m.weighting.tau),
            hard_token_share_first: steps.first().map(|m| m.weighting.hard_token_share),
            hard_token_share_last: steps.last().map(|m| m.weighting.hard_token_share),
            hard_token_share: steps.iter().map(|m| m.weighting.hard_token_share).collect(),
            hard_token_weight: Some(
                steps
                    .iter()
                    .map(|m| m.weighting.hard_token_weight)
                    .collect(),
            ),
            update_norm: Some(steps.iter().map(|m| m.update_norm).collect()),
            weights_from: trained.weights_from,
        }),
        metrics,
        token_probability_histogram: None,
        seconds: Seconds {
            train: Some(train_seconds),
            eval: eval_start.elapsed().as_secs_f64(),
        },
        device: Some(talr_model::device_name(device)),
        versions: crate::provenance::versions(),
    };
    schema::write_record(&result, &record)?;
    // The optimiser checkpoint only serves an interrupted attempt; the cell is finished.
    let _ = std::fs::remove_dir_all(&checkpoint);
    Ok(CellRun::Trained)
}

/// A stored training's marker file: the cell that trained it, written last.
const TRAINED_BY: &str = "trained_by.json";

/// Whether the fine-tuned weights of training `key` are kept in `results`, complete.
pub fn training_is_stored(results: &ResultsDir, key: &str) -> bool {
    is_complete(&results.finetuned_dir(key))
}

fn is_complete(store: &Path) -> bool {
    store.join(TRAINED_BY).is_file()
}

/// The fine-tuned weights a cell evaluates (in its `merged/`) and how training went.
struct Trained {
    metrics: Vec<talr_train::StepMetrics>,
    /// The cell whose training this cell reused, when it did.
    weights_from: Option<String>,
}

/// Trains the cell and exports its model; with `store`, also keeps the fine-tuned weights (and
/// the training metrics) there for the cells that train identically.
fn train_and_export(
    preset: &Preset,
    device: &Device,
    cell: &Cell,
    examples: &[ChatExample],
    dir: &Path,
    store: Option<&Path>,
    opts: &RunOptions,
) -> Result<Trained> {
    let staging = store.map(|s| s.with_extension(format!("tmp{}", std::process::id())));
    let tuned = talr_train::run(
        |mode| load_model(preset, device, mode),
        &cell.config,
        examples,
        &dir.join("train"),
        talr_train::Exports {
            merged: Some(&dir.join("merged")),
            finetuned: staging.as_deref(),
        },
        opts,
    )
    .with_context(|| format!("training cell {} ({})", cell.id, cell.method))?;
    if let (Some(store), Some(staging)) = (store, &staging) {
        std::fs::copy(
            dir.join("train").join("metrics.jsonl"),
            staging.join("metrics.jsonl"),
        )?;
        std::fs::write(
            staging.join(TRAINED_BY),
            serde_json::to_string_pretty(&serde_json::json!({ "cell": cell.id }))?,
        )?;
        // Another process may have stored the same training meanwhile; either copy serves.
        if std::fs::rename(staging, store).is_err() {
            let _ = std::fs::remove_dir_all(staging);
        }
    }
    Ok(Trained {
        metrics: tuned.outcome.metrics,
        weights_from: None,
    })
}

/// Exports the cell's model from fine-tuned weights another cell trained (`store`) by applying
/// this cell's merge, and copies that training's metrics to `train_dir`.
fn merge_stored(
    preset: &Preset,
    device: &Device,
    cfg: &talr_train::TrainConfig,
    store: &Path,
    train_dir: &Path,
    merged: &Path,
) -> Result<Trained> {
    let trained_by: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join(TRAINED_BY))?)?;
    let donor = trained_by["cell"]
        .as_str()
        .with_context(|| format!("{}: no `cell`", store.join(TRAINED_BY).display()))?
        .to_string();
    let initial = load_model(preset, device, Trainability::Frozen)?
        .decoder
        .named_weights(|w, _| Ok(w.clone()))?;
    let finetuned = LoadedModel::load(
        &ModelSource::Dir(store.to_path_buf()),
        device,
        Trainability::Frozen,
    )?;
    talr_train::export_merged(&finetuned, &initial, cfg, merged)?;
    std::fs::create_dir_all(train_dir)?;
    std::fs::copy(store.join("metrics.jsonl"), train_dir.join("metrics.jsonl"))?;
    Ok(Trained {
        metrics: talr_train::read_metrics(&train_dir.join("metrics.jsonl"))?,
        weights_from: Some(donor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the base model and `cells` of the smoke preset, in order, into a new results dir.
    fn run_smoke(cells: &[&Cell]) -> (tempfile::TempDir, ResultsDir) {
        let preset = crate::spec::load_preset("smoke").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let results = ResultsDir::new(dir.path());
        run_base(&preset, &results, Style::LabelOnly, &Device::Cpu, false).unwrap();
        for cell in cells {
            run_cell(&preset, &results, cell, &Device::Cpu, false).unwrap();
        }
        (dir, results)
    }

    #[test]
    fn wise_ft_merges_the_weights_sft_trained_and_scores_as_if_it_had_trained_them() {
        let label_only = crate::spec::smoke_label_only_cell;
        let (sft, wise_ft) = (label_only("sft"), label_only("wise_ft"));
        assert!(sft.training_shared && wise_ft.training_shared);
        let (_shared_dir, shared) = run_smoke(&[&sft, &wise_ft]);
        let reused = schema::read_record(&shared.cell_result(&wise_ft.id)).unwrap();

        let mut alone = wise_ft.clone();
        alone.training_shared = false;
        let (_alone_dir, trained_alone) = run_smoke(&[&alone]);
        let trained = schema::read_record(&trained_alone.cell_result(&wise_ft.id)).unwrap();

        let (reused_training, trained_training) =
            (reused.training.unwrap(), trained.training.unwrap());
        assert_eq!(
            reused_training.weights_from.as_deref(),
            Some(sft.id.as_str())
        );
        assert_eq!(trained_training.weights_from, None);
        assert_eq!(
            TrainingSummary {
                weights_from: None,
                ..reused_training
            },
            trained_training
        );
        assert_eq!(reused.metrics, trained.metrics);
        assert!(
            !trained_alone.finetuned_dir(&wise_ft.training).exists(),
            "a training no other cell shares is not kept"
        );
    }

    #[test]
    fn an_esci_preset_trains_and_tests_on_esci() {
        let dir = tempfile::tempdir().unwrap();
        talr_evals::esci_fixture::write(dir.path(), false).unwrap();
        let source = format!("esci={}", dir.path().display());
        let mut preset = crate::spec::load_preset("smoke").unwrap();
        preset.domain.name = Domain::Esci;
        preset.domain.test_task = source.clone();
        preset.domain.train_source = Some(source);
        preset.domain.test_limit = None;
        preset.domain.check().unwrap();
        let examples = domain_examples(&preset, Style::LabelOnly).unwrap();
        assert_eq!(
            examples.len(),
            1,
            "the fixture's one us/small train example"
        );
        assert!(
            examples[0].target.starts_with("{\"label\": "),
            "{:?}",
            examples[0]
        );
        let task = domain_task(&preset, Style::Cot).unwrap();
        assert_eq!(task.name(), "esci-cot");
        assert!(!task.prompts().is_empty());

        // A MedCalc test task under an ESCI domain is refused, naming both.
        preset.domain.test_task = "medcalc-synth".into();
        let err = format!("{:#}", preset.domain.check().unwrap_err());
        assert_eq!(
            err,
            "domain.test_task: medcalc-synth is a medcalc task, but domain.name is esci"
        );
    }
}
