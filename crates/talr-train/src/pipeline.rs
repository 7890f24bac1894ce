//! The fine-tuning flow every front end shares (`talr train`, `cargo xtask reproduce`): load the
//! model for the method, attach adapters, tokenise, train (resuming from a checkpoint in `out`),
//! and export the finished model once training is complete.

use crate::data::{tokenize, Example};
use crate::trainer::{
    export_finetuned, export_merged, prepare, train, trainability, RunOptions, TrainOutcome,
};
use crate::TrainConfig;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use talr_model::{LoadedModel, Trainability};

pub struct FineTuned {
    pub outcome: TrainOutcome,
    /// The merged model directory, when an export was asked for and training completed.
    pub exported: Option<PathBuf>,
}

/// The model directories a completed run writes (each loads with `--model`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Exports<'a> {
    /// The model the method produces: adapters merged, WiSE-FT applied.
    pub merged: Option<&'a Path>,
    /// The trained weights before any WiSE-FT merge (adapters merged): what another method that
    /// trains identically and only merges differently starts from.
    pub finetuned: Option<&'a Path>,
}

/// Fine-tunes the model that `load` returns (asked for the trainability `cfg` needs) on
/// `examples`; writes metrics and checkpoints to `out` and, once training is complete, the
/// `exports` asked for.
pub fn run(
    load: impl FnOnce(Trainability) -> Result<LoadedModel>,
    cfg: &TrainConfig,
    examples: &[Example],
    out: &Path,
    exports: Exports,
    opts: &RunOptions,
) -> Result<FineTuned> {
    let mut model = load(trainability(cfg))?;
    let initial = match exports.merged {
        Some(_) => Some(model.decoder.named_weights(|w, _| Ok(w.clone()))?),
        None => None,
    };
    let params = prepare(&mut model, cfg)?;
    let data = tokenize(examples, &model.tokenizer, cfg.training.max_length)
        .context("tokenizing the training examples")?;
    let outcome = train(&model, &params, cfg, &data, out, opts)?;
    if outcome.steps_done < outcome.total_steps {
        return Ok(FineTuned {
            outcome,
            exported: None,
        });
    }
    if let Some(dir) = exports.finetuned {
        export_finetuned(&model, dir)?;
    }
    let exported = match (exports.merged, initial) {
        (Some(dir), Some(initial)) => {
            export_merged(&model, &initial, cfg, dir)?;
            Some(dir.to_path_buf())
        }
        _ => None,
    };
    Ok(FineTuned { outcome, exported })
}
