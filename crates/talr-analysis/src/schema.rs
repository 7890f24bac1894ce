//! The result files of a reproduction, typed: where they live ([`ResultsDir`]) and what they
//! hold ([`ResultRecord`]). `cargo xtask reproduce` writes them through these types; tables,
//! figures, `--dry-run`'s estimate and `cargo xtask check` read them through the same ones.
//!
//! ```text
//! <root>/base/result-<style>.json         the base model, per target style
//! <root>/base/<task>/                     its generations and per-task results
//! <root>/cells/<cell id>/result.json      one fine-tuned cell
//! <root>/cells/<cell id>/{train,eval}/    its metrics.jsonl, generations and per-task results
//! <root>/cells/<cell id>/.lock            held while a process runs the cell
//! ```

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use talr_evals::suite::SuiteMetrics;
use talr_evals::Style;

/// One `result.json`: a fine-tuned cell, or the base model (`method: base`, no rate, seed,
/// config or training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRecord {
    /// The cell id (a hash of its resolved config), or `base-<style>`.
    pub cell: String,
    pub preset: String,
    /// The grids the cell was run for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<String>,
    pub method: String,
    pub style: Style,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The resolved training config (talr-train's `TrainConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSummary>,
    pub metrics: SuiteMetrics,
    /// Base model only: how its probabilities of the SFT target tokens spread over 20 bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_probability_histogram: Option<Vec<u64>>,
    pub seconds: Seconds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub versions: Versions,
}

impl ResultRecord {
    pub fn is_base(&self) -> bool {
        self.method == "base"
    }
}

/// What training did, summarised from its per-step metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    pub steps: usize,
    pub examples: usize,
    pub first_mean_nll: Option<f64>,
    pub last_mean_nll: Option<f64>,
    pub last_loss: Option<f64>,
    pub mean_tau: Option<f64>,
    pub hard_token_share_first: Option<f64>,
    pub hard_token_share_last: Option<f64>,
    pub hard_token_share: Vec<f64>,
    /// Per step; absent in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_token_weight: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_norm: Option<Vec<f64>>,
    /// The cell that trained these weights, when this cell reused its training and only merged
    /// differently (WiSE-FT from SFT's weights); its metrics are that training's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seconds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<f64>,
    pub eval: f64,
}

/// The code a result came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    pub talr: String,
    /// The commit, or "unknown" outside a git checkout.
    pub git: String,
    /// Whether tracked code (files outside `results/` and `figures/`) differed from that
    /// commit; absent in early results. Until December 2026 it counted every tracked file
    /// (every committed cell reads `false` under both readings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
}

/// A results directory and its layout.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    root: PathBuf,
}

impl ResultsDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the base model's generations and results go.
    pub fn base_dir(&self) -> PathBuf {
        self.root.join("base")
    }

    pub fn base_result(&self, style: Style) -> PathBuf {
        self.base_dir().join(format!("result-{style}.json"))
    }

    pub fn cell_dir(&self, cell_id: &str) -> PathBuf {
        self.root.join("cells").join(cell_id)
    }

    /// Fine-tuned weights kept for the cells that share a training (key from the runner), out
    /// of version control: a model directory plus the training's metrics.
    pub fn finetuned_dir(&self, training_key: &str) -> PathBuf {
        self.root.join("finetuned").join(training_key)
    }

    pub fn cell_result(&self, cell_id: &str) -> PathBuf {
        self.cell_dir(cell_id).join("result.json")
    }

    pub fn is_done(&self, cell_id: &str) -> bool {
        self.cell_result(cell_id).exists()
    }

    /// Every result file: the base model's, then the cells', each group sorted by path.
    pub fn result_files(&self) -> Vec<PathBuf> {
        let list = |dir: PathBuf, pick: &dyn Fn(&std::fs::DirEntry) -> Option<PathBuf>| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| pick(&e))
                .filter(|p| p.exists())
                .collect();
            files.sort();
            files
        };
        let mut files = list(self.base_dir(), &|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with("result-") && name.ends_with(".json")).then(|| e.path())
        });
        files.extend(list(self.root.join("cells"), &|e| {
            Some(e.path().join("result.json"))
        }));
        files
    }

    /// Every result record, in [`Self::result_files`] order.
    pub fn records(&self) -> Result<Vec<ResultRecord>> {
        self.result_files().iter().map(|p| read_record(p)).collect()
    }

    /// Takes the cell's lock, so no other process runs the same cell at the same time. `None`
    /// when another process holds it. The lock is released when the guard drops or the process
    /// ends, however it ends.
    pub fn try_lock_cell(&self, cell_id: &str) -> Result<Option<std::fs::File>> {
        let file = open_lock(&self.cell_dir(cell_id))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking a cell"),
        }
    }

    /// Waits for the base model's lock: cells need its generations, so a second process waits
    /// for the first to finish them instead of skipping.
    pub fn lock_base(&self) -> Result<std::fs::File> {
        let file = open_lock(&self.base_dir())?;
        file.lock().context("locking the base model's results")?;
        Ok(file)
    }
}

fn open_lock(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(".lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

pub fn read_record(path: &Path) -> Result<ResultRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a talr result file", path.display()))
}

/// Writes `record` atomically (a temporary file, then a rename), keys in sorted order.
pub fn write_record(path: &Path, record: &ResultRecord) -> Result<()> {
    talr_evals::runner::write_json_atomic(path, &serde_json::to_value(record)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_results() -> Vec<PathBuf> {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
        std::fs::read_dir(&results)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|preset| ResultsDir::new(preset.path()).result_files())
            .collect()
    }

    #[test]
    fn every_committed_result_reads_and_writes_back_unchanged() {
        let files = committed_results();
        assert!(files.len() >= 16, "found only {} result files", files.len());
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let raw: Value = serde_json::from_str(&text).unwrap();
            let record = read_record(&path).unwrap();
            assert_eq!(
                serde_json::to_value(&record).unwrap(),
                raw,
                "{} changes when written back",
                path.display()
            );
        }
    }

    #[test]
    fn a_cell_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let results = ResultsDir::new(dir.path());
        let held = results.try_lock_cell("abc").unwrap();
        assert!(held.is_some());
        // Another open file description of the same lock file: as another process would see it.
        assert!(results.try_lock_cell("abc").unwrap().is_none());
        drop(held);
        assert!(results.try_lock_cell("abc").unwrap().is_some());
    }
}
