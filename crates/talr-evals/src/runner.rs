//! The evaluation runner: model + task + limits → batched greedy generation → generations cached
//! as JSONL → scores → `result.json` with per-item detail and aggregate metrics.
//!
//! Generations are appended batch by batch to `<out>/<task>/generations.jsonl`, so an interrupted
//! run resumes where it stopped; `result.json` is written atomically once scoring is done.

use crate::task::{ReferencePair, Task};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use talr_model::generate::{generate, GenerationConfig, Sampling};
use talr_model::{ChatMessage, LoadedModel};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub batch_size: usize,
    /// Overrides each task's own reply budget.
    pub max_new_tokens: Option<usize>,
    pub progress: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 16,
            max_new_tokens: None,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub tokens: usize,
    /// Wall time of the record's batch divided among its rows.
    pub seconds: f64,
    pub finish: String,
}

/// Reads cached generations; a torn last line (an interrupted write) is dropped.
pub fn read_generations(path: &Path) -> Result<Vec<GenerationRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => return Err(e).with_context(|| format!("{}:{}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Refuses cached replies made with another reply budget: resuming would mix two budgets in one
/// score. A reply cut off at the budget has exactly that many tokens, and none may have more.
fn check_cached_budget(records: &[GenerationRecord], budget: usize, path: &Path) -> Result<()> {
    let other = records
        .iter()
        .find(|r| r.tokens > budget || (r.finish == "length" && r.tokens != budget));
    if let Some(r) = other {
        bail!(
            "{}: item {} has {} reply tokens (finish: {}), which a reply budget of {budget} cannot \
             give: these replies were generated with another budget. Delete the file to generate \
             every reply again",
            path.display(),
            r.id,
            r.tokens,
            r.finish
        );
    }
    Ok(())
}

pub fn progress_bar(len: usize, what: &str, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(len as u64).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed}} < {{eta}}] {{msg}}"
        ))
        .expect("valid template"),
    )
}

fn chat_ids(model: &LoadedModel, system: Option<&str>, user_message: &str) -> Result<Vec<u32>> {
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", user_message));
    let text = model.tokenizer.apply_chat_template(&messages, true)?;
    model.tokenizer.encode(&text)
}

/// Generates (or resumes generating) replies for every item of `task` (truncate the task to
/// evaluate fewer), then scores them and writes `<out>/<task>/result.json`. Returns the result
/// document.
pub fn evaluate(
    model: &LoadedModel,
    task: &dyn Task,
    out: &Path,
    opts: &EvalOptions,
) -> Result<serde_json::Value> {
    let dir = out.join(task.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let gen_path = dir.join("generations.jsonl");
    let mut records = read_generations(&gen_path)?;
    let done: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let prompts = task.prompts();
    let wanted: HashSet<String> = prompts.iter().map(|p| p.id.clone()).collect();
    let todo: Vec<_> = prompts.iter().filter(|p| !done.contains(&p.id)).collect();
    let mut encoded: Vec<(usize, Vec<u32>)> = todo
        .iter()
        .enumerate()
        .map(|(i, p)| Ok((i, chat_ids(model, p.system.as_deref(), &p.user_message)?)))
        .collect::<Result<_>>()?;
    // Similar lengths share a batch: less padding.
    encoded.sort_by_key(|(_, ids)| ids.len());
    let cfg = GenerationConfig {
        max_new_tokens: opts.max_new_tokens.unwrap_or(task.max_new_tokens()),
        stop_strings: task.stop_strings(),
        sampling: Sampling::Greedy,
        ignore_eos: false,
    };
    check_cached_budget(&records, cfg.max_new_tokens, &gen_path)?;
    let bar = progress_bar(prompts.len(), task.name(), opts.progress);
    bar.set_position((prompts.len() - todo.len()) as u64);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&gen_path)
        .with_context(|| format!("opening {}", gen_path.display()))?;
    let gen_start = Instant::now();
    for batch in encoded.chunks(opts.batch_size.max(1)) {
        let start = Instant::now();
        let ids: Vec<Vec<u32>> = batch.iter().map(|(_, ids)| ids.clone()).collect();
        let outs = generate(&model.decoder, &model.tokenizer, &ids, &cfg, |_| {})?;
        let per_row = start.elapsed().as_secs_f64() / batch.len() as f64;
        for ((i, _), g) in batch.iter().zip(outs) {
            let rec = GenerationRecord {
                id: todo[*i].id.clone(),
                prompt: todo[*i].user_message.clone(),
                response: g.text,
                tokens: g.tokens.len(),
                seconds: per_row,
                finish: serde_json::to_value(g.finish)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            };
            writeln!(file, "{}", serde_json::to_string(&rec)?)?;
            records.push(rec);
        }
        file.flush()?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let generation_seconds = gen_start.elapsed().as_secs_f64();
    let responses: HashMap<String, String> = records
        .iter()
        .filter(|r| wanted.contains(&r.id))
        .map(|r| (r.id.clone(), r.response.clone()))
        .collect();
    let score_start = Instant::now();
    let scored = task.score(&responses)?;
    let mean_tokens =
        records.iter().map(|r| r.tokens).sum::<usize>() as f64 / records.len().max(1) as f64;
    let doc = serde_json::json!({
        "task": task.name(),
        "model": model.origin,
        "n": responses.len(),
        "aggregate": scored.aggregate,
        "generation": {
            "sampling": "greedy",
            "max_new_tokens": cfg.max_new_tokens,
            "batch_size": opts.batch_size,
            "mean_tokens": mean_tokens,
            "seconds_this_run": generation_seconds,
        },
        "scoring_seconds": score_start.elapsed().as_secs_f64(),
        "talr_version": env!("CARGO_PKG_VERSION"),
        "items": scored.items,
    });
    let result_path = dir.join("result.json");
    if todo.is_empty() {
        if let Some(previous) = same_result(&result_path, &doc) {
            return Ok(previous);
        }
    }
    write_json_atomic(&result_path, &doc)?;
    Ok(doc)
}

/// The result already at `path` when it scores the same replies as `doc` does. Rescoring cached
/// replies (the base model evaluated for a second target style rescores its general tasks)
/// then keeps the file, with the timings of the run that generated them, rather than
/// overwriting it with a rescore's near-zero ones.
fn same_result(path: &Path, doc: &serde_json::Value) -> Option<serde_json::Value> {
    let previous: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let fields = [
        "/task",
        "/model",
        "/n",
        "/aggregate",
        "/generation/max_new_tokens",
    ];
    let same = fields.iter().all(
        |field| match (previous.pointer(field), doc.pointer(field)) {
            (Some(a), Some(b)) => json_equal(a, b),
            (a, b) => a == b,
        },
    );
    same.then_some(previous)
}

/// JSON equality with numbers equal to within a rounding: serde_json's default float parsing
/// can read a number it wrote one unit in the last place away.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Writes JSON through a temporary file and a rename, so readers never see half a file.
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeLength {
    /// Mean negative log-likelihood per response token, in nats.
    pub nats_per_token: f64,
    pub bits_per_token: f64,
    pub tokens: usize,
    pub responses: usize,
}

/// General code length: the mean per-token NLL of reference responses (each after its chat
/// prompt, ending with eos) under `model`. Responses are cut to `max_response_tokens`.
pub fn code_length(
    model: &LoadedModel,
    pairs: &[ReferencePair],
    batch_size: usize,
    max_response_tokens: usize,
) -> Result<CodeLength> {
    let eos = *model
        .tokenizer
        .eos_ids
        .first()
        .context("the tokenizer has no eos token")?;
    let mut total = 0.0f64;
    let mut tokens = 0usize;
    for chunk in pairs.chunks(batch_size.max(1)) {
        let encoded: Vec<(Vec<u32>, Vec<u32>)> = chunk
            .iter()
            .map(|p| {
                let prompt = chat_ids(model, None, &p.user_message)?;
                let mut response = model.tokenizer.encode(&p.response)?;
                response.truncate(max_response_tokens.saturating_sub(1));
                response.push(eos);
                Ok((prompt, response))
            })
            .collect::<Result<_>>()?;
        let nll = model.response_nll(&encoded)?;
        let flat: Vec<f32> = nll.nll.detach().to_vec1()?;
        total += flat.iter().map(|v| *v as f64).sum::<f64>();
        tokens += flat.len();
    }
    let nats = total / tokens.max(1) as f64;
    Ok(CodeLength {
        nats_per_token: nats,
        bits_per_token: nats / std::f64::consts::LN_2,
        tokens,
        responses: pairs.len(),
    })
}

/// Cached generations (`generations.jsonl`) as (prompt, reply) references, in id order: the base
/// model's own IFEval replies for general code length.
pub fn generations_as_references(path: &Path) -> Result<Vec<ReferencePair>> {
    let mut records = read_generations(path)?;
    anyhow::ensure!(
        !records.is_empty(),
        "{}: no generations to measure code length on",
        path.display()
    );
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records
        .into_iter()
        .map(|r| ReferencePair {
            user_message: r.prompt,
            response: r.response,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tokens: usize, finish: &str) -> GenerationRecord {
        GenerationRecord {
            id: id.into(),
            prompt: String::new(),
            response: String::new(),
            tokens,
            seconds: 0.0,
            finish: finish.into(),
        }
    }

    #[test]
    fn cached_replies_from_another_budget_are_refused() {
        let path = Path::new("out/medcalc-cot/generations.jsonl");
        let at_320 = [record("1", 12, "eos"), record("2", 320, "length")];
        check_cached_budget(&at_320, 320, path).unwrap();
        let err = check_cached_budget(&at_320, 1024, path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("out/medcalc-cot/generations.jsonl: item 2 has 320 reply tokens")
                && err.contains("budget of 1024"),
            "{err}"
        );
        let err = check_cached_budget(&at_320, 48, path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 2"), "{err}");
        // Replies that all ended on their own fit any budget at least as long.
        check_cached_budget(&[record("1", 12, "eos")], 1024, path).unwrap();
    }

    #[test]
    fn a_rescore_of_the_same_replies_keeps_the_result_that_generated_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        let doc = |accuracy: f64, seconds: f64| {
            serde_json::json!({
                "task": "gsm8k", "model": "m", "n": 60,
                "aggregate": {"exact_match_flexible": accuracy},
                "generation": {"max_new_tokens": 320, "seconds_this_run": seconds},
            })
        };
        assert_eq!(same_result(&path, &doc(0.1, 0.0)), None, "no file yet");
        write_json_atomic(&path, &doc(0.1, 244.0)).unwrap();
        assert_eq!(same_result(&path, &doc(0.1, 0.0)), Some(doc(0.1, 244.0)));
        // A score that reads back one unit in the last place away is the same score.
        let read_back = f64::from_bits((0.1f64).to_bits() + 1);
        assert!(same_result(&path, &doc(read_back, 0.0)).is_some());
        // A scorer that now scores differently rewrites the file.
        assert_eq!(same_result(&path, &doc(0.2, 0.0)), None);
    }
}
