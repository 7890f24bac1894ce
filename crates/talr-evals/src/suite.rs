//! Evaluating a model on a suite of tasks: the domain task and the general tasks, each generated
//! and scored by the [`runner`](crate::runner), plus general code length. `talr eval` and
//! `cargo xtask reproduce` both go through [`evaluate_suite`], so a number means the same in both.

use crate::runner::{
    code_length, evaluate, generations_as_references, write_json_atomic, CodeLength, EvalOptions,
};
use crate::task::{ReferencePair, Task};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use talr_model::LoadedModel;

/// General code length scores at most this many tokens of each reference response.
pub const CODE_LENGTH_MAX_TOKENS: usize = 512;
/// References scored at once for code length.
pub const CODE_LENGTH_BATCH: usize = 8;

/// How long replies may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyBudget {
    /// Each task's own budget.
    TaskDefault,
    /// This many tokens for every task.
    Override(usize),
    /// Each task's own budget, but at most this many tokens.
    Cap(usize),
}

impl ReplyBudget {
    fn for_task(self, task: &dyn Task) -> Option<usize> {
        match self {
            ReplyBudget::TaskDefault => None,
            ReplyBudget::Override(n) => Some(n),
            ReplyBudget::Cap(n) => Some(n.min(task.max_new_tokens())),
        }
    }
}

pub struct Suite {
    /// The domain task, if any: scored, but not part of the general average or code length.
    pub domain: Option<Box<dyn Task>>,
    pub general: Vec<Box<dyn Task>>,
    pub batch_size: usize,
    pub reply_budget: ReplyBudget,
    /// The domain task's budget, where it differs from `reply_budget` (a CoT answer runs as long
    /// as its explanation, far past a cap sized for the general tasks).
    pub domain_reply_budget: Option<ReplyBudget>,
    /// Measure general code length: the per-token NLL of each general task's references, or of
    /// the base model's replies (from `base_generations`) for a task without references.
    pub code_length: bool,
    /// A directory holding `<task>/generations.jsonl` of the base model; this run's own output
    /// directory when unset (right when the model evaluated is the base model).
    pub base_generations: Option<PathBuf>,
    pub progress: bool,
}

/// One task's outcome.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub name: String,
    pub aggregate: Value,
    /// The task's headline metric, read from its aggregate.
    pub headline: Option<f64>,
    pub code_length: Option<crate::runner::CodeLength>,
    pub seconds: f64,
}

pub struct SuiteOutcome {
    pub domain: Option<TaskOutcome>,
    pub general: Vec<TaskOutcome>,
}

/// What a result file records of a suite: the domain's accuracy and aggregate, each general
/// task's aggregate, the general average (mean of the general headline metrics) and general
/// code length per reference set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMetrics {
    pub domain_accuracy: f64,
    pub domain: Value,
    pub general_avg: f64,
    pub general: BTreeMap<String, Value>,
    /// Nats per token, by task.
    #[serde(default)]
    pub code_length_nats: BTreeMap<String, f64>,
}

impl SuiteOutcome {
    pub fn metrics(&self) -> SuiteMetrics {
        let headlines: Vec<f64> = self.general.iter().filter_map(|t| t.headline).collect();
        let domain = self.domain.as_ref();
        SuiteMetrics {
            domain_accuracy: domain.and_then(|d| d.headline).unwrap_or(0.0),
            domain: domain.map_or(Value::Null, |d| d.aggregate.clone()),
            general_avg: headlines.iter().sum::<f64>() / headlines.len().max(1) as f64,
            general: self
                .general
                .iter()
                .map(|t| (t.name.clone(), t.aggregate.clone()))
                .collect(),
            code_length_nats: self
                .general
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.code_length.as_ref()?.nats_per_token)))
                .collect(),
        }
    }
}

/// Generates, scores and measures every task of `suite` into `out/<task>/` (resuming cached
/// generations), domain first.
pub fn evaluate_suite(model: &LoadedModel, suite: &Suite, out: &Path) -> Result<SuiteOutcome> {
    let run = |task: &dyn Task, budget: ReplyBudget, measure_code_length: bool| {
        let opts = EvalOptions {
            batch_size: suite.batch_size,
            max_new_tokens: budget.for_task(task),
            progress: suite.progress,
        };
        let start = Instant::now();
        let doc = evaluate(model, task, out, &opts)?;
        let aggregate = doc["aggregate"].clone();
        let code_length = if measure_code_length {
            let references = match task.references() {
                Some(references) => references,
                None => {
                    let base = suite.base_generations.as_deref().unwrap_or(out);
                    generations_as_references(&base.join(task.name()).join("generations.jsonl"))
                        .with_context(|| {
                            format!("code length of {}: the base model's replies", task.name())
                        })?
                }
            };
            Some(cached_code_length(
                model,
                &references,
                &out.join(task.name()),
            )?)
        } else {
            None
        };
        anyhow::Ok(TaskOutcome {
            name: task.name().to_string(),
            headline: aggregate
                .get(task.headline_metric())
                .and_then(Value::as_f64),
            aggregate,
            code_length,
            seconds: start.elapsed().as_secs_f64(),
        })
    };
    let domain = match &suite.domain {
        Some(task) => {
            let budget = suite.domain_reply_budget.unwrap_or(suite.reply_budget);
            Some(run(task.as_ref(), budget, false)?)
        }
        None => None,
    };
    let general = suite
        .general
        .iter()
        .map(|task| run(task.as_ref(), suite.reply_budget, suite.code_length))
        .collect::<Result<_>>()?;
    Ok(SuiteOutcome { domain, general })
}

/// [`code_length`] of `references` under `model`, kept in `dir/code_length.json` with a digest of
/// what was measured: the model's origin, its product precision, the batch, the token cap and
/// every reference. A resumed evaluation, or the base model's second target style, then reads
/// the number instead of scoring the same replies again (the full preset's 1319 GSM8K solutions
/// took 21 min on one core). Any change to what is measured changes the digest and measures afresh.
fn cached_code_length(
    model: &LoadedModel,
    references: &[ReferencePair],
    dir: &Path,
) -> Result<CodeLength> {
    use sha2::{Digest, Sha256};
    let measuring = serde_json::json!({
        "model": model.origin,
        "bf16": talr_model::precision::bf16_kernel(),
        "batch": CODE_LENGTH_BATCH,
        "max_tokens": CODE_LENGTH_MAX_TOKENS,
        "references": references.iter().map(|r| [&r.user_message, &r.response]).collect::<Vec<_>>(),
    });
    let digest: String = Sha256::digest(measuring.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join("code_length.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let cached: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON; delete it to measure again", path.display()))?;
        if cached["measured"] == digest.as_str() {
            return serde_json::from_value(cached["code_length"].clone()).with_context(|| {
                format!(
                    "{}: code_length unreadable; delete it to measure again",
                    path.display()
                )
            });
        }
    }
    let measured = code_length(model, references, CODE_LENGTH_BATCH, CODE_LENGTH_MAX_TOKENS)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_json_atomic(
        &path,
        &serde_json::json!({"measured": digest, "code_length": measured}),
    )?;
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use talr_model::{DecoderConfig, TextTokenizer, Trainability};

    fn tiny_model(seed: u64) -> LoadedModel {
        let tokenizer = TextTokenizer::byte_level().unwrap();
        let cfg = DecoderConfig::tiny_llama(tokenizer.vocab_size());
        let device = candle_core::Device::Cpu;
        let weights =
            talr_model::decoder::random_weights(&cfg, seed, 0.1, candle_core::DType::F32, &device)
                .unwrap();
        let origin = format!("tiny-random seed {seed}");
        LoadedModel::from_parts(cfg, weights, tokenizer, origin, Trainability::Frozen).unwrap()
    }

    fn pair(user_message: &str, response: &str) -> ReferencePair {
        ReferencePair {
            user_message: user_message.into(),
            response: response.into(),
        }
    }

    #[test]
    fn code_length_is_measured_once_per_model_and_reference_set() {
        let dir = tempfile::tempdir().unwrap();
        let references = [pair("What is 2 + 2?", "4"), pair("Name a colour.", "Blue.")];
        let (model, other) = (tiny_model(1), tiny_model(2));
        let measure = |m: &LoadedModel| {
            code_length(m, &references, CODE_LENGTH_BATCH, CODE_LENGTH_MAX_TOKENS).unwrap()
        };
        let first = cached_code_length(&model, &references, dir.path()).unwrap();
        let measured = measure(&model);
        assert_eq!(first.nats_per_token, measured.nats_per_token);
        assert_eq!((first.tokens, first.responses), (measured.tokens, 2));

        // A second call reads the file: a planted number comes back unchanged.
        let path = dir.path().join("code_length.json");
        let mut cached: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cached["code_length"]["nats_per_token"] = serde_json::json!(123.0);
        std::fs::write(&path, cached.to_string()).unwrap();
        let again = cached_code_length(&model, &references, dir.path()).unwrap();
        assert_eq!(again.nats_per_token, 123.0);

        // Another model or another reference set is measured afresh.
        let by_other = cached_code_length(&other, &references, dir.path()).unwrap();
        assert_eq!(by_other.nats_per_token, measure(&other).nats_per_token);
        let fewer = cached_code_length(&other, &references[..1], dir.path()).unwrap();
        assert_eq!(fewer.responses, 1);
    }
}
