use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use talr_evals::catalog::build_task;
use talr_evals::responses::load_responses;
use talr_evals::runner::write_json_atomic;

#[derive(Args)]
pub struct ScoreArgs {
    /// One of: ifeval, ifeval-synth, gsm8k, gsm8k-100, humaneval, medcalc[-cot],
    /// medcalc-template[-cot], medcalc-synth[-cot].
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
    let scored = task.score(&responses)?;
    if let Some(out) = &args.out {
        let doc = serde_json::json!({"task": args.task, "aggregate": scored.aggregate, "items": scored.items});
        write_json_atomic(out, &doc)?;
    }
    println!("{}", scored.aggregate);
    Ok(())
}
