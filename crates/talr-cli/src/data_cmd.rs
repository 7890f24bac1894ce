use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use talr_evals::registry::{training_examples, TrainingSize};
use talr_evals::Style;

#[derive(Args)]
pub struct DataArgs {
    /// Where the examples come from: medcalc-synth[=SEED] (the template generator),
    /// medcalc=CSV (a MedCalc-Bench file), medcalc-template=CSV (its Template rows),
    /// gsm8k=JSONL or gsm8k-100 (reference solutions as targets), esci[=DIR] (the train split,
    /// a stratified sample of --limit examples; CoT reads a `rationale` column).
    #[arg(long)]
    source: String,
    /// label-only (the answer) or cot (step-by-step explanation, then the answer).
    #[arg(long, default_value = "label-only")]
    style: Style,
    /// medcalc-synth: rows per calculator (11 calculators).
    #[arg(long, default_value_t = 50)]
    per_calculator: usize,
    /// Keep only the first N examples.
    #[arg(long)]
    limit: Option<usize>,
    /// The training JSONL to write ({"id", "messages", "target"} per line).
    #[arg(long)]
    out: PathBuf,
    /// medcalc sources: also write the rows in MedCalc-Bench's CSV schema here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

fn write_jsonl_atomic<T: serde::Serialize>(path: &std::path::Path, lines: &[T]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?,
    );
    for l in lines {
        writeln!(f, "{}", serde_json::to_string(l)?)?;
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: DataArgs) -> Result<()> {
    let size = TrainingSize {
        per_calculator: args.per_calculator,
        limit: args.limit,
    };
    let set = training_examples(&args.source, args.style, size)
        .with_context(|| format!("--source {}", args.source))?;
    if let Some(csv) = &args.csv {
        let rows = set
            .medcalc_rows
            .as_ref()
            .with_context(|| format!("--csv: --source {} has no MedCalc rows", args.source))?;
        talr_evals::medcalc::write_csv(csv, rows)?;
    }
    write_jsonl_atomic(&args.out, &set.examples)?;
    eprintln!("{} examples → {}", set.examples.len(), args.out.display());
    Ok(())
}
