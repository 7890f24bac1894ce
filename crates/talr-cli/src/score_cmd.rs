use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use talr_evals::{gsm8k, responses::load_responses};

#[derive(Clone, Copy, ValueEnum)]
enum Task {
    Gsm8k,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[arg(long, value_enum)]
    task: Task,
    /// The benchmark's data file (GSM8K: JSONL with question and answer).
    #[arg(long)]
    data: PathBuf,
    /// Responses as JSONL: {"id": ..., "response": "..."} (GSM8K ids are 0-based line numbers).
    #[arg(long)]
    responses: PathBuf,
    /// Also write per-item detail and the aggregate here (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let responses = load_responses(&args.responses)?;
    let (aggregate, items) = match args.task {
        Task::Gsm8k => {
            let items = gsm8k::load(&args.data)?;
            let (agg, scores) = gsm8k::score(&items, &responses);
            (serde_json::to_value(agg)?, serde_json::to_value(scores)?)
        }
    };
    if let Some(out) = &args.out {
        let doc = serde_json::json!({"aggregate": aggregate, "items": items});
        let tmp = out.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{aggregate}");
    Ok(())
}
