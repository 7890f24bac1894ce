use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use talr_model::{LoadedModel, ModelSource};
use talr_train::data::load_examples;
use talr_train::{RunOptions, TrainConfig};

#[derive(Args)]
pub struct TrainArgs {
    /// Method and training spec (YAML).
    #[arg(long)]
    config: PathBuf,
    /// Training examples, one JSON object per line: {"messages": [...], "target": "..."}.
    #[arg(long)]
    data: PathBuf,
    /// Output directory: metrics.jsonl, checkpoint/ (resumed when present), merged/.
    #[arg(long)]
    out: PathBuf,
    /// A known model name, a .gguf file, a model directory, or a hub repo id.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Stop after this many optimiser steps (rerun the same command to resume).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Also write the merged full model (adapters merged, WiSE-FT applied) to OUT/merged.
    #[arg(long)]
    export: bool,
    #[command(flatten)]
    device: crate::DeviceArg,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = TrainConfig::load(&args.config)?;
    let examples = load_examples(&args.data)?;
    let source = ModelSource::parse(&args.model)?;
    let device = args.device.open()?;
    let opts = RunOptions {
        stop_after: args.stop_after,
        progress: true,
    };
    let export = args.export.then(|| args.out.join("merged"));
    let tuned = talr_train::run(
        |mode| LoadedModel::load(&source, &device, mode),
        &cfg,
        &examples,
        &args.out,
        talr_train::Exports {
            merged: export.as_deref(),
            finetuned: None,
        },
        &opts,
    )
    .with_context(|| format!("training on {}", args.data.display()))?;
    let outcome = &tuned.outcome;
    let (first, last) = (outcome.metrics.first(), outcome.metrics.last());
    eprintln!(
        "steps {}/{}; mean NLL {} -> {}; metrics in {}",
        outcome.steps_done,
        outcome.total_steps,
        first.map_or("-".into(), |m| format!("{:.4}", m.mean_nll)),
        last.map_or("-".into(), |m| format!("{:.4}", m.mean_nll)),
        args.out.join("metrics.jsonl").display()
    );
    if let Some(dir) = tuned.exported {
        eprintln!("merged model in {} (use it with --model)", dir.display());
    }
    Ok(())
}
