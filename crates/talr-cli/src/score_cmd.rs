use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use talr_evals::build_task;
use talr_evals::responses::{load_responses, unmatched_ids};
use talr_evals::runner::write_json_atomic;

#[derive(Args)]
pub struct ScoreArgs {
    /// A task name (see the list below).
    #[arg(long)]
    task: String,
    /// The benchmark's data file (IFEval JSONL, GSM8K JSONL, HumanEval JSONL[.gz]; a seed for
    /// ifeval-synth). Optional where the task has pip-served default data.
    #[arg(long)]
    data: Option<String>,
    /// Responses as JSONL: {"id": ..., "response": "..."} with IFEval's `key`, GSM8K's 0-based
    /// line number, HumanEval's `task_id` or MedCalc's `Row Number` as the id.
    #[arg(long)]
    responses: PathBuf,
    /// Also write per-item detail and the aggregate here (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// HumanEval programs run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let spec = match &args.data {
        Some(d) => format!("{}={d}", args.task),
        None => args.task.clone(),
    };
    let task = build_task(&spec, args.jobs.unwrap_or_else(default_jobs))?;
    let responses = load_responses(&args.responses)?;
    let unmatched = unmatched_ids(task.as_ref(), &responses, &args.responses)?;
    if !unmatched.is_empty() {
        let shown: Vec<&str> = unmatched.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "warning: {} of {} response ids in {} are not items of {} and were ignored: {}{}",
            unmatched.len(),
            responses.len(),
            args.responses.display(),
            task.name(),
            shown.join(", "),
            if unmatched.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    let scored = task.score(&responses)?;
    if let Some(out) = &args.out {
        let doc = serde_json::json!({"task": args.task, "aggregate": scored.aggregate, "items": scored.items});
        write_json_atomic(out, &doc)?;
    }
    println!("{}", scored.aggregate);
    Ok(())
}
