//! talr-analysis: reads `result.json` files and turns them into tables (Markdown, CSV, LaTeX) and
//! figures (PNG, SVG). Aggregation over seeds reports the mean and the range (smallest and largest seed).
//!
//! It works on plain structs rather than polars frames: a full grid is a few hundred small JSON
//! documents, and the aggregation is a group-by over (method, learning rate, style).

pub mod chart;
pub mod drift_fit;
pub mod figures;
pub mod item_paired;
pub mod paired;
pub mod schema;
pub mod summary;
pub mod tables;

pub use schema::{ResultRecord, ResultsDir};

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One finished cell (or the base model) as the analysis sees it.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: String,
    pub method: String,
    pub style: String,
    /// The grid's rate; `None` for the base model.
    pub learning_rate: Option<f64>,
    /// The rate the cell trained at: the grid's times the method's `lr_scale` (LoRA's is larger).
    pub trained_rate: Option<f64>,
    pub seed: u64,
    pub grids: Vec<String>,
    pub domain_accuracy: f64,
    pub general_avg: f64,
    /// Headline metric per general task.
    pub general: BTreeMap<String, f64>,
    /// General code length per task (nats per token).
    pub code_length: BTreeMap<String, f64>,
    pub first_mean_nll: Option<f64>,
    pub last_mean_nll: Option<f64>,
    pub hard_token_share: Vec<f64>,
    /// The resolved training config (`Null` for the base model).
    pub config: Value,
    /// Base model only: its probabilities of the SFT target tokens in 20 bins.
    pub token_probability_histogram: Vec<u64>,
    pub seconds: Option<schema::Seconds>,
    /// Whether the cell took its fine-tuned weights from another cell's training (its `train`
    /// seconds are then only the merge).
    pub training_reused: bool,
}

impl CellResult {
    pub fn from_record(record: ResultRecord) -> Self {
        let m = &record.metrics;
        let general = m
            .general
            .iter()
            .filter_map(|(task, aggregate)| {
                let metric = talr_evals::registry::headline_metric(task).unwrap_or("accuracy");
                Some((task.clone(), aggregate.get(metric)?.as_f64()?))
            })
            .collect();
        let training = record.training.as_ref();
        Self {
            cell: record.cell,
            method: record.method,
            style: record.style.to_string(),
            learning_rate: record.learning_rate,
            trained_rate: record
                .config
                .as_ref()
                .and_then(|c| c.pointer("/training/learning_rate")?.as_f64())
                .or(record.learning_rate),
            seed: record.seed.unwrap_or(0),
            grids: record.grids,
            domain_accuracy: m.domain_accuracy,
            general_avg: m.general_avg,
            general,
            code_length: m.code_length_nats.clone(),
            first_mean_nll: training.and_then(|t| t.first_mean_nll),
            last_mean_nll: training.and_then(|t| t.last_mean_nll),
            hard_token_share: training.map_or_else(Vec::new, |t| t.hard_token_share.clone()),
            config: record.config.unwrap_or(Value::Null),
            token_probability_histogram: record.token_probability_histogram.unwrap_or_default(),
            seconds: Some(record.seconds),
            training_reused: training.is_some_and(|t| t.weights_from.is_some()),
        }
    }

    pub fn is_base(&self) -> bool {
        self.method == "base"
    }

    /// General code-length drift ΔL: the mean over reference sets of this model's per-token NLL
    /// minus the base model's (nats/token), the quantity Theorem 3.1 bounds. `None` when no
    /// reference set was measured for both.
    pub fn code_length_drift(&self, base: &BTreeMap<String, f64>) -> Option<f64> {
        let deltas: Vec<f64> = self
            .code_length
            .iter()
            .filter_map(|(task, nll)| Some(nll - base.get(task)?))
            .collect();
        (!deltas.is_empty()).then(|| deltas.iter().sum::<f64>() / deltas.len() as f64)
    }
}

/// The base model's code length per reference set (the same for every style).
pub fn base_code_lengths(results: &[CellResult]) -> BTreeMap<String, f64> {
    results
        .iter()
        .filter(|r| r.is_base())
        .flat_map(|r| r.code_length.clone())
        .collect()
}

/// Every result under `root`: `base/result-*.json` and `cells/*/result.json`.
pub fn load_results(root: &Path) -> Result<Vec<CellResult>> {
    Ok(ResultsDir::new(root)
        .records()?
        .into_iter()
        .map(CellResult::from_record)
        .collect())
}

/// The mean over seeds and their range: `lo` and `hi` are the smallest and largest value.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// The mean of `values` with their range: over three seeds a bootstrap's percentiles would only
/// restate the smallest and largest run, so the range is named as what it is.
pub fn estimate(values: &[f64]) -> Estimate {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let (lo, hi) = values
        .iter()
        .fold((mean, mean), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    Estimate { mean, lo, hi, n }
}

/// Canonical row order: the paper's methods first, then the rest by name.
pub fn method_rank(method: &str) -> (usize, String) {
    let order = [
        "base", "sft", "l2", "lora", "wise_ft", "flow", "dft", "talr",
    ];
    (
        order
            .iter()
            .position(|m| *m == method)
            .unwrap_or(order.len()),
        method.to_string(),
    )
}

/// A label-only cell of the `table2` grid at 3e-4 (the base model has no rate), for tests.
#[cfg(test)]
pub(crate) fn test_cell(
    method: &str,
    seed: u64,
    domain: f64,
    general: f64,
    code_length: &[(&str, f64)],
) -> CellResult {
    CellResult {
        cell: format!("{method}-{seed}"),
        method: method.into(),
        style: "label-only".into(),
        learning_rate: (method != "base").then_some(3e-4),
        trained_rate: (method != "base").then_some(3e-4),
        seed,
        grids: vec!["table2".into()],
        domain_accuracy: domain,
        general_avg: general,
        general: BTreeMap::new(),
        code_length: code_length
            .iter()
            .map(|&(task, nll)| (task.to_string(), nll))
            .collect(),
        first_mean_nll: None,
        last_mean_nll: None,
        hard_token_share: Vec::new(),
        config: Value::Null,
        token_probability_histogram: Vec::new(),
        seconds: None,
        training_reused: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_is_the_mean_and_range_over_seeds() {
        let e = estimate(&[0.6, 0.5, 0.9]);
        assert!((e.mean - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((e.lo, e.hi, e.n), (0.5, 0.9, 3));
        let one = estimate(&[0.3]);
        assert_eq!((one.lo, one.hi), (0.3, 0.3));
    }
}
