use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use talr_evals::catalog::{medcalc_rows, resolve_source};
use talr_evals::medcalc::{self, templates, Style};

#[derive(Clone, Copy, ValueEnum)]
enum TargetStyle {
    /// Step-by-step explanation, then the answer.
    Cot,
    /// The answer only.
    LabelOnly,
}

#[derive(Args)]
pub struct DataArgs {
    /// Where the examples come from: medcalc-synth[=SEED] (the template generator),
    /// medcalc=CSV (a MedCalc-Bench file), medcalc-template=CSV (its Template rows),
    /// gsm8k=JSONL or gsm8k-100 (reference solutions as targets), esci[=DIR] (the train split,
    /// a stratified sample of --limit examples; CoT reads a `rationale` column).
    #[arg(long)]
    source: String,
    #[arg(long, value_enum, default_value = "label-only")]
    style: TargetStyle,
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

fn write_jsonl_atomic(path: &std::path::Path, lines: &[serde_json::Value]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?,
    );
    for l in lines {
        writeln!(f, "{l}")?;
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: DataArgs) -> Result<()> {
    let (name, source) = match args.source.split_once('=') {
        Some((n, s)) => (n, Some(s)),
        None => (args.source.as_str(), None),
    };
    let style = match args.style {
        TargetStyle::Cot => Style::Cot,
        TargetStyle::LabelOnly => Style::LabelOnly,
    };
    let mut examples = Vec::new();
    if name == "medcalc-synth" {
        let seed = source.map_or(Ok(0), |s| {
            s.parse::<u64>()
                .with_context(|| format!("--source medcalc-synth={s}: expected a seed"))
        })?;
        if seed == talr_evals::catalog::MEDCALC_SYNTH_TEST_SEED {
            bail!("--source medcalc-synth={seed}: that seed makes the test set; pick another");
        }
        let rows = templates::generate(args.per_calculator, seed);
        examples.extend(medcalc_examples(&rows, style, args.csv.as_deref())?);
    } else if let Some(rows) = medcalc_rows(name, source)? {
        examples.extend(medcalc_examples(&rows, style, args.csv.as_deref())?);
    } else if name == "esci" {
        let cot = matches!(style, Style::Cot);
        for e in talr_evals::catalog::esci_examples(source, "train", args.limit, cot)? {
            let (system, user) = talr_evals::esci::prompt(&e, cot);
            examples.push(serde_json::json!({
                "id": e.example_id,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                "target": talr_evals::esci::target(&e, cot),
            }));
        }
    } else if name == "gsm8k" || name == "gsm8k-100" {
        let path = match (source, name) {
            (Some(s), _) => resolve_source(s)?,
            (None, "gsm8k-100") => talr_assets::fetch(&talr_assets::GSM8K_100)?,
            _ => bail!("--source gsm8k needs a file: gsm8k=PATH"),
        };
        for (i, item) in talr_evals::gsm8k::load(&path)?.iter().enumerate() {
            examples.push(serde_json::json!({
                "id": i,
                "messages": [{"role": "user", "content": talr_evals::gsm8k::prompt(item, &[])}],
                "target": item.answer.trim(),
            }));
        }
    } else {
        bail!(
            "--source {}: expected medcalc-synth[=SEED], medcalc=CSV, medcalc-template=CSV, \
             gsm8k=JSONL, gsm8k-100 or esci[=DIR]",
            args.source
        );
    }
    if let Some(n) = args.limit {
        examples.truncate(n);
    }
    write_jsonl_atomic(&args.out, &examples)?;
    eprintln!("{} examples → {}", examples.len(), args.out.display());
    Ok(())
}

fn medcalc_examples(
    rows: &[medcalc::Row],
    style: Style,
    csv: Option<&std::path::Path>,
) -> Result<Vec<serde_json::Value>> {
    if let Some(path) = csv {
        medcalc::write_csv(path, rows)?;
    }
    Ok(rows
        .iter()
        .map(|r| {
            let (system, user) = medcalc::prompt(r, style);
            serde_json::json!({
                "id": r.row_number,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                "target": medcalc::target(r, style),
            })
        })
        .collect())
}
