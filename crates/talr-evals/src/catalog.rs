//! Where task data comes from: `$TALR_DATA_DIR` (the real benchmark files), local paths,
//! `hf://` hub files, and the sizes of the generated sets. The task names themselves live in
//! [`crate::registry`].

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

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

/// Sources under the data directory start with this, so a preset names the same file on every
/// machine (and its cells keep their ids).
pub const DATA_DIR_PREFIX: &str = "$TALR_DATA_DIR/";

/// A local path for `source`: as given, under the data directory for `$TALR_DATA_DIR/REL`, or
/// downloaded from the hub for `hf://` sources.
pub fn resolve_source(source: &str) -> Result<PathBuf> {
    if let Some(rel) = source.strip_prefix(DATA_DIR_PREFIX) {
        let Some(dir) = data_dir() else {
            bail!(
                "{source}: TALR_DATA_DIR is not set and ../shared/data does not exist; set it to \
                 the directory holding {rel}"
            );
        };
        let path = dir.join(rel);
        if !path.exists() {
            bail!("{source}: {} does not exist", path.display());
        }
        return Ok(path);
    }
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
    // From the environment, as model downloads are: HF_HOME places the cache (a file already
    // there is used without the network) and HF_ENDPOINT the server.
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("starting the hub client")?;
    api.dataset(format!("{org}/{name}"))
        .get(file)
        .with_context(|| format!("downloading {file} from hub dataset {org}/{name}"))
}

/// The hub copy of a shared benchmark file, as `ORG/DATASET/PATH`: the same file for IFEval, and
/// parquet with the same columns for MedCalc-Bench and GSM8K.
pub fn hub_copy(rel: &str) -> Option<&'static str> {
    match rel {
        "ifeval/input_data.jsonl" => Some("google/IFEval/ifeval_input_data.jsonl"),
        "gsm8k/test.jsonl" => Some("openai/gsm8k/main/test-00000-of-00001.parquet"),
        "medcalc_bench/test_data.csv" => {
            Some("ncbi/MedCalc-Bench-v1.0/data/test-00000-of-00001.parquet")
        }
        _ => None,
    }
}

/// The file of `task`: `source` when given, else `rel` under the data directory.
pub fn data_file(task: &str, source: Option<&str>, rel: &str) -> Result<PathBuf> {
    if let Some(source) = source {
        return resolve_source(source);
    }
    let hub = match hub_copy(rel) {
        Some(file) => format!(", or {task}=hf://{file}"),
        None => String::new(),
    };
    let Some(dir) = data_dir() else {
        bail!(
            "task {task}: no data given; set TALR_DATA_DIR to a directory holding {rel} (the \
             shared benchmark files, ../shared/data beside a checkout), or pass {task}=PATH{hub}"
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
        None => data_file("esci", None, "esci")?,
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
