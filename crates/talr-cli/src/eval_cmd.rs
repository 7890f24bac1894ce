use crate::score_cmd::default_jobs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use talr_evals::build_task;
use talr_evals::runner::write_json_atomic;
use talr_evals::suite::{evaluate_suite, ReplyBudget, Suite};
use talr_model::{LoadedModel, ModelSource, Trainability};

#[derive(Args)]
pub struct EvalArgs {
    /// A known model name, a .gguf file, a model directory, or a hub repo id (org/name[@rev]).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Comma-separated tasks, each NAME or NAME=SOURCE (see the list below).
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Evaluate only N items of each task: the first N (MedCalc: N spread evenly over its
    /// calculators).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Overrides each task's reply budget (in tokens).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Also measure general code length: per-token NLL of the tasks' reference responses
    /// (GSM8K solutions, HumanEval canonical solutions; for tasks without references, the base
    /// model's own replies: from --base-generations, else this run's, which are the base's when
    /// the model evaluated is the base), at most 512 tokens each.
    #[arg(long)]
    code_length: bool,
    /// A base model's `talr eval` output directory, whose generations are the references for
    /// the code length of tasks without references of their own (IFEval).
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
    let suite = Suite {
        domain: None,
        general: tasks,
        batch_size: args.batch_size,
        reply_budget: args
            .max_new_tokens
            .map_or(ReplyBudget::TaskDefault, ReplyBudget::Override),
        domain_reply_budget: None,
        code_length: args.code_length,
        base_generations: args.base_generations.clone(),
        progress: true,
    };
    let outcome = evaluate_suite(&model, &suite, &args.out)?;
    let mut summary = serde_json::Map::new();
    for task in &outcome.general {
        eprintln!("{}: {} ({:.0}s)", task.name, task.aggregate, task.seconds);
        let mut entry = serde_json::json!({"aggregate": task.aggregate, "seconds": task.seconds});
        if let Some(cl) = &task.code_length {
            eprintln!(
                "{}: code length {:.4} nats/token",
                task.name, cl.nats_per_token
            );
            entry["code_length"] = serde_json::to_value(cl)?;
        }
        summary.insert(task.name.clone(), entry);
    }
    let doc = serde_json::json!({"model": model.origin, "tasks": summary});
    write_json_atomic(&args.out.join("summary.json"), &doc)?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
