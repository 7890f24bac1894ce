//! Running one cell (train, export, evaluate) and the base model's evaluation, each ending in a
//! `result.json` written atomically. A finished cell is never run again.

use crate::spec::{Cell, Preset};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use talr_evals::catalog::build_task;
use talr_evals::medcalc::{self, templates, Style};
use talr_evals::runner::{
    code_length, evaluate, generations_as_references, write_json_atomic, EvalOptions,
};
use talr_evals::task::Task;
use talr_model::decoder::random_weights;
use talr_model::{DecoderConfig, LoadedModel, ModelSource, TextTokenizer, Trainability};
use talr_train::data::{tokenize, Example, Message};
use talr_train::{export_merged, prepare, train, trainability, RunOptions};

pub fn load_model(preset: &Preset, device: &Device, mode: Trainability) -> Result<LoadedModel> {
    if preset.model == "tiny-random" {
        let tokenizer = TextTokenizer::byte_level()?;
        let cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
        let weights = random_weights(&cfg, preset.model_seed, 0.1, DType::F32, device)?;
        return LoadedModel::from_parts(cfg, weights, tokenizer, "tiny-random".into(), mode);
    }
    LoadedModel::load(&ModelSource::parse(&preset.model)?, device, mode)
}

fn style_suffix(style: Style) -> &'static str {
    match style {
        Style::Cot => "-cot",
        Style::LabelOnly => "",
    }
}

/// The training examples of the domain: template rows from the preset's training seed, or the
/// rows of its `train_source`.
pub fn domain_examples(preset: &Preset, style: Style) -> Result<Vec<Example>> {
    let rows = match &preset.domain.train_source {
        Some(spec) => {
            let (name, source) = spec
                .split_once('=')
                .map_or((spec.as_str(), None), |(n, s)| (n, Some(s)));
            talr_evals::catalog::medcalc_rows(name, source)?
                .with_context(|| format!("domain.train_source {spec:?}: not a MedCalc source"))?
        }
        None => templates::generate(preset.domain.train_per_calculator, preset.domain.train_seed),
    };
    Ok(rows
        .iter()
        .map(|r| {
            let (system, user) = medcalc::prompt(r, style);
            Example {
                messages: vec![
                    Message {
                        role: "system".into(),
                        content: system,
                    },
                    Message {
                        role: "user".into(),
                        content: user,
                    },
                ],
                target: medcalc::target(r, style),
                id: Some(r.row_number.into()),
            }
        })
        .collect())
}

fn domain_task(preset: &Preset, style: Style) -> Result<Box<dyn Task>> {
    let (name, source) = match preset.domain.test_task.split_once('=') {
        Some((n, s)) => (n.to_string(), Some(s)),
        None => (preset.domain.test_task.clone(), None),
    };
    let spec = format!(
        "{name}{}{}",
        style_suffix(style),
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
            let name = spec.split('=').next().unwrap_or(spec);
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

fn eval_options(preset: &Preset, progress: bool) -> EvalOptions {
    EvalOptions {
        batch_size: preset.generation.batch_size,
        max_new_tokens: None,
        progress,
    }
}

/// Evaluates `model` on the domain (one style) and general tasks into `dir`; returns metrics.
fn evaluate_all(
    preset: &Preset,
    model: &LoadedModel,
    style: Style,
    dir: &Path,
    base_dir: &Path,
    progress: bool,
) -> Result<Value> {
    let mut opts = eval_options(preset, progress);
    let domain = domain_task(preset, style)?;
    opts.max_new_tokens = preset
        .generation
        .max_new_tokens
        .map(|cap| cap.min(domain.max_new_tokens()));
    let doc = evaluate(model, domain.as_ref(), dir, &opts)?;
    let domain_accuracy = doc["aggregate"]["accuracy"].as_f64().unwrap_or(0.0);
    let mut general = serde_json::Map::new();
    let mut headlines = Vec::new();
    let mut code_lengths = serde_json::Map::new();
    for task in general_tasks(preset)? {
        opts.max_new_tokens = preset
            .generation
            .max_new_tokens
            .map(|cap| cap.min(task.max_new_tokens()));
        let doc = evaluate(model, task.as_ref(), dir, &opts)?;
        if let Some(h) = talr_analysis::headline(task.name(), &doc["aggregate"]) {
            headlines.push(h);
        }
        general.insert(task.name().into(), doc["aggregate"].clone());
        if preset.general.code_length {
            let refs = match task.references() {
                Some(r) => r,
                None => generations_as_references(
                    &base_dir.join(task.name()).join("generations.jsonl"),
                )?,
            };
            let cl = code_length(model, &refs, 8, 512)?;
            code_lengths.insert(task.name().into(), json!(cl.nats_per_token));
        }
    }
    let general_avg = headlines.iter().sum::<f64>() / headlines.len().max(1) as f64;
    Ok(json!({
        "domain_accuracy": domain_accuracy,
        "domain": doc["aggregate"],
        "general_avg": general_avg,
        "general": general,
        "code_length_nats": code_lengths,
    }))
}

/// The code a result came from: the crate version, and the commit of the checkout the runner
/// works in with whether its tracked files differed from that commit (`cargo xtask` rebuilds
/// from the same checkout before it runs). Read once, when first asked (`main` asks at start),
/// so a commit made while a grid runs is not credited with results from the code already
/// running. Outside a git checkout both read "unknown".
pub fn versions() -> Value {
    static AT_START: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    AT_START.get_or_init(read_versions).clone()
}

fn read_versions() -> Value {
    let root = crate::repo_root();
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({
        "talr": env!("CARGO_PKG_VERSION"),
        "git": commit.unwrap_or_else(|| "unknown".into()),
        "git_dirty": dirty.map_or(json!("unknown"), Value::Bool),
    })
}

/// Evaluates the base model once per preset and style, into `<root>/base/` (general tasks are
/// generated once and shared by both styles; the domain task's name carries the style).
pub fn run_base(
    preset: &Preset,
    root: &Path,
    style: Style,
    device: &Device,
    progress: bool,
) -> Result<Value> {
    let dir = base_dir(root);
    let result = dir.join(format!("result-{}.json", style_name(style)));
    if let Ok(text) = std::fs::read_to_string(&result) {
        return Ok(serde_json::from_str(&text)?);
    }
    let start = Instant::now();
    let model = load_model(preset, device, Trainability::Frozen)?;
    let metrics = evaluate_all(preset, &model, style, &dir, &dir, progress)?;
    let histogram = target_token_histogram(preset, &model, style)?;
    let doc = json!({
        "cell": format!("base-{}", style_name(style)),
        "preset": preset.name,
        "method": "base",
        "style": style,
        "metrics": metrics,
        "token_probability_histogram": histogram,
        "seconds": {"eval": start.elapsed().as_secs_f64()},
        "device": talr_model::device_name(device),
        "versions": versions(),
    });
    write_json_atomic(&result, &doc)?;
    Ok(doc)
}

/// How the base model's probabilities of the SFT target tokens spread over [0, 1] (20 bins):
/// the paper's Figure 3 observation that most are near 1 and few are hard.
fn target_token_histogram(preset: &Preset, model: &LoadedModel, style: Style) -> Result<Vec<u64>> {
    let max_length = preset
        .training
        .get("max_length")
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

pub fn style_name(style: Style) -> &'static str {
    match style {
        Style::Cot => "cot",
        Style::LabelOnly => "label-only",
    }
}

pub fn base_dir(root: &Path) -> PathBuf {
    root.join("base")
}

pub fn cell_dir(root: &Path, cell: &Cell) -> PathBuf {
    root.join("cells").join(&cell.id)
}

/// Trains and evaluates one cell; returns its result document. Skips a finished cell.
pub fn run_cell(
    preset: &Preset,
    root: &Path,
    cell: &Cell,
    device: &Device,
    progress: bool,
) -> Result<Value> {
    let dir = cell_dir(root, cell);
    let result = dir.join("result.json");
    if let Ok(text) = std::fs::read_to_string(&result) {
        return Ok(serde_json::from_str(&text)?);
    }
    let cfg = &cell.config;
    let start = Instant::now();
    let mut model = load_model(preset, device, trainability(cfg))?;
    let initial = model.decoder.named_weights(|w, _| Ok(w.clone()))?;
    let params = prepare(&mut model, cfg)?;
    let examples = domain_examples(preset, cell.style)?;
    let data = tokenize(&examples, &model.tokenizer, cfg.training.max_length)?;
    let opts = RunOptions {
        stop_after: None,
        progress,
    };
    // Generations left by an earlier, interrupted attempt came from that attempt's export; this
    // attempt trains and exports again, so they are discarded rather than mixed with new ones.
    let _ = std::fs::remove_dir_all(dir.join("eval"));
    let outcome = train(&model, &params, cfg, &data, &dir.join("train"), &opts)
        .with_context(|| format!("training cell {} ({})", cell.id, cell.method))?;
    let merged = dir.join("merged");
    export_merged(&model, &initial, cfg, &merged)?;
    drop((model, params, initial));
    // The optimiser checkpoint only serves an interrupted training run; the cell is past that.
    let _ = std::fs::remove_dir_all(dir.join("train").join("checkpoint"));
    let train_seconds = start.elapsed().as_secs_f64();

    let eval_start = Instant::now();
    let tuned = LoadedModel::load(
        &ModelSource::parse(&merged.display().to_string())?,
        device,
        Trainability::Frozen,
    )?;
    let metrics = evaluate_all(
        preset,
        &tuned,
        cell.style,
        &dir.join("eval"),
        &base_dir(root),
        progress,
    )?;
    drop(tuned);
    let _ = std::fs::remove_dir_all(&merged);

    let steps = &outcome.metrics;
    let mean = |f: &dyn Fn(&talr_train::trainer::StepMetrics) -> Option<f64>| {
        let v: Vec<f64> = steps.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let doc = json!({
        "cell": cell.id,
        "preset": preset.name,
        "grids": cell.grids,
        "method": cell.method,
        "style": cell.style,
        "learning_rate": cell.learning_rate,
        "seed": cell.seed,
        "config": cfg,
        "training": {
            "steps": outcome.steps_done,
            "examples": examples.len(),
            "first_mean_nll": steps.first().map(|m| m.mean_nll),
            "last_mean_nll": steps.last().map(|m| m.mean_nll),
            "last_loss": steps.last().map(|m| m.loss),
            "mean_tau": mean(&|m| m.weighting.tau),
            "hard_token_share_first": steps.first().map(|m| m.weighting.hard_token_share),
            "hard_token_share_last": steps.last().map(|m| m.weighting.hard_token_share),
            "hard_token_share": steps.iter().map(|m| m.weighting.hard_token_share).collect::<Vec<_>>(),
            "hard_token_weight": steps.iter().map(|m| m.weighting.hard_token_weight).collect::<Vec<_>>(),
            "update_norm": steps.iter().map(|m| m.update_norm).collect::<Vec<_>>(),
        },
        "metrics": metrics,
        "seconds": {"train": train_seconds, "eval": eval_start.elapsed().as_secs_f64()},
        "device": talr_model::device_name(device),
        "versions": versions(),
    });
    write_json_atomic(&result, &doc)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_the_checkouts_commit() {
        let head = std::process::Command::new("git")
            .arg("-C")
            .arg(crate::repo_root())
            .args(["rev-parse", "HEAD"])
            .output();
        let v = versions();
        assert_eq!(v["talr"], env!("CARGO_PKG_VERSION"));
        match head {
            Ok(out) if out.status.success() => {
                let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert_eq!(v["git"], head.as_str());
                assert!(v["git_dirty"].is_boolean(), "{v}");
            }
            // Not a git checkout (a source tarball): say so rather than guess.
            _ => assert_eq!(v["git"], "unknown"),
        }
    }
}
