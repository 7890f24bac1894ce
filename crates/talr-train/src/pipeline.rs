//! The fine-tuning flow every front end shares (`talr train`, `cargo xtask reproduce`): load the
//! model for the method, attach adapters, tokenise, train (resuming from a checkpoint in `out`),
//! and export the merged model once training is complete.

use crate::data::{tokenize, Example};
use crate::trainer::{export_merged, prepare, train, trainability, RunOptions, TrainOutcome};
use crate::TrainConfig;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use talr_model::{LoadedModel, Trainability};

pub struct FineTuned {
    pub outcome: TrainOutcome,
    /// The merged model directory, when an export was asked for and training completed.
    pub exported: Option<PathBuf>,
}

/// Fine-tunes the model that `load` returns (asked for the trainability `cfg` needs) on
/// `examples`; writes metrics and checkpoints to `out` and, with `export`, the merged model
/// (adapters merged, WiSE-FT applied) to that directory.
pub fn run(
    load: impl FnOnce(Trainability) -> Result<LoadedModel>,
    cfg: &TrainConfig,
    examples: &[Example],
    out: &Path,
    export: Option<&Path>,
    opts: &RunOptions,
) -> Result<FineTuned> {
    let mut model = load(trainability(cfg))?;
    let initial = match export {
        Some(_) => Some(model.decoder.named_weights(|w, _| Ok(w.clone()))?),
        None => None,
    };
    let params = prepare(&mut model, cfg)?;
    let data = tokenize(examples, &model.tokenizer, cfg.training.max_length)
        .context("tokenizing the training examples")?;
    let outcome = train(&model, &params, cfg, &data, out, opts)?;
    let exported = match (export, initial) {
        (Some(dir), Some(initial)) if outcome.steps_done == outcome.total_steps => {
            export_merged(&model, &initial, cfg, dir)?;
            Some(dir.to_path_buf())
        }
        _ => None,
    };
    Ok(FineTuned { outcome, exported })
}
