use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use talr_model::{LoadedModel, ModelSource};
use talr_train::data::{load_examples, tokenize};
use talr_train::{export_merged, prepare, train, trainability, RunOptions, TrainConfig};

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
    let mut model = LoadedModel::load(&source, &args.device.open()?, trainability(&cfg))?;
    let initial = if args.export {
        Some(model.decoder.named_weights(|w, _| Ok(w.clone()))?)
    } else {
        None
    };
    let params = prepare(&mut model, &cfg)?;
    let data = tokenize(&examples, &model.tokenizer, cfg.training.max_length)
        .with_context(|| format!("tokenizing {}", args.data.display()))?;
    let opts = RunOptions {
        stop_after: args.stop_after,
        progress: true,
    };
    let outcome = train(&model, &params, &cfg, &data, &args.out, &opts)?;
    let (first, last) = (outcome.metrics.first(), outcome.metrics.last());
    eprintln!(
        "steps {}/{}; mean NLL {} -> {}; metrics in {}",
        outcome.steps_done,
        outcome.total_steps,
        first.map_or("-".into(), |m| format!("{:.4}", m.mean_nll)),
        last.map_or("-".into(), |m| format!("{:.4}", m.mean_nll)),
        args.out.join("metrics.jsonl").display()
    );
    if let Some(initial) = initial {
        if outcome.steps_done == outcome.total_steps {
            let dir = args.out.join("merged");
            export_merged(&model, &initial, &cfg, &dir)?;
            eprintln!("merged model in {} (use it with --model)", dir.display());
        }
    }
    Ok(())
}
