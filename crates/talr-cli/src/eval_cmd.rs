use crate::score_cmd::default_jobs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use talr_evals::catalog::build_task;
use talr_evals::runner::{
    code_length, evaluate, generations_as_references, write_json_atomic, EvalOptions,
};
use talr_model::{LoadedModel, ModelSource, Trainability};

#[derive(Args)]
pub struct EvalArgs {
    /// A known model name, a .gguf file, a model directory, or a hub repo id (org/name[@rev]).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Comma-separated tasks, each NAME or NAME=SOURCE (a path or hf://ORG/DATASET/FILE):
    /// ifeval, ifeval-synth, gsm8k, gsm8k-100, humaneval.
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Evaluate only the first N items of each task.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Overrides each task's reply budget (in tokens).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Also measure general code length: per-token NLL of the tasks' reference responses
    /// (GSM8K solutions, HumanEval canonical solutions, and for IFEval the base model's own
    /// replies: from --base-generations, else this run's, which are the base's when the model
    /// evaluated is the base).
    #[arg(long)]
    code_length: bool,
    /// A base model's `talr eval` output directory, whose IFEval generations are the references
    /// for IFEval code length.
    #[arg(long)]
    base_generations: Option<PathBuf>,
    /// Results go to DIR/<task>/{generations.jsonl,result.json}; rerunning resumes.
    #[arg(long)]
    out: PathBuf,
    /// HumanEval programs run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    device: crate::DeviceArg,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    // Build every task first, so a bad name or file fails before the model loads.
    let mut tasks = Vec::new();
    for spec in &args.tasks {
        let mut task = build_task(spec, jobs)?;
        if let Some(n) = args.limit {
            task.truncate(n);
        }
        tasks.push(task);
    }
    let source = ModelSource::parse(&args.model)?;
    let model = LoadedModel::load(&source, &args.device.open()?, Trainability::Frozen)?;
    let opts = EvalOptions {
        batch_size: args.batch_size,
        max_new_tokens: args.max_new_tokens,
        progress: true,
    };
    let mut summary = serde_json::Map::new();
    for task in &tasks {
        let start = std::time::Instant::now();
        let doc = evaluate(&model, task.as_ref(), &args.out, &opts)?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!("{}: {} ({secs:.0}s)", task.name(), doc["aggregate"]);
        let mut entry = serde_json::json!({"aggregate": doc["aggregate"], "seconds": secs});
        if args.code_length {
            let refs = match task.references() {
                Some(refs) => Some(refs),
                None if task.name().starts_with("ifeval") => {
                    let base = args.base_generations.as_ref().unwrap_or(&args.out);
                    Some(generations_as_references(
                        &base.join(task.name()).join("generations.jsonl"),
                    )?)
                }
                None => None,
            };
            if let Some(refs) = refs {
                let cl = code_length(&model, &refs, 8, 1024)?;
                eprintln!(
                    "{}: code length {:.4} nats/token",
                    task.name(),
                    cl.nats_per_token
                );
                entry["code_length"] = serde_json::to_value(cl)?;
            }
        }
        summary.insert(task.name().to_string(), entry);
    }
    let doc = serde_json::json!({"model": model.origin, "tasks": summary});
    write_json_atomic(&args.out.join("summary.json"), &doc)?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
