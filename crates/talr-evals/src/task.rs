//! The one interface every benchmark offers the runner: its items as chat prompts, how long a
//! reply may be, and how to score a set of replies. Each benchmark module implements it next to
//! its own data, prompt, extraction and scoring.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// How a domain task asks for its answer, and what its training targets look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Step-by-step thinking, then the answer.
    Cot,
    /// The answer only.
    LabelOnly,
}

impl Style {
    pub const ALL: [Style; 2] = [Style::LabelOnly, Style::Cot];

    /// The name in configs, result files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Style::Cot => "cot",
            Style::LabelOnly => "label-only",
        }
    }

    /// What the style adds to a domain task's name (`medcalc-cot`).
    pub fn suffix(self) -> &'static str {
        match self {
            Style::Cot => "-cot",
            Style::LabelOnly => "",
        }
    }
}

impl std::fmt::Display for Style {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Style {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Style::ALL
            .into_iter()
            .find(|style| style.name() == s)
            .ok_or_else(|| anyhow::anyhow!("style {s:?}: expected label-only or cot"))
    }
}

/// One item to generate for: its id (the response-file id) and its user message.
#[derive(Debug, Clone)]
pub struct PromptItem {
    pub id: String,
    /// A system message before the user message, where the benchmark prescribes one.
    pub system: Option<String>,
    pub user_message: String,
}

/// Scores: the aggregate metrics, and per-item detail.
pub struct Scored {
    pub aggregate: Value,
    pub items: Value,
}

impl Scored {
    /// A benchmark's typed aggregate and per-item results, as the JSON the runner files.
    pub fn from_parts(
        aggregate: impl serde::Serialize,
        items: impl serde::Serialize,
    ) -> Result<Self> {
        Ok(Self {
            aggregate: serde_json::to_value(aggregate)?,
            items: serde_json::to_value(items)?,
        })
    }
}

pub trait Task: Sync {
    /// The name results are filed under (e.g. `gsm8k`, `ifeval-synth`).
    fn name(&self) -> &str;
    fn prompts(&self) -> Vec<PromptItem>;
    /// The most tokens a reply may use.
    fn max_new_tokens(&self) -> usize;
    /// Strings that end a reply early.
    fn stop_strings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Scores replies by item id; a missing reply scores as wrong.
    fn score(&self, responses: &HashMap<String, String>) -> Result<Scored>;
    /// Keeps `n` items: the first `n`, unless the task spreads them (MedCalc: evenly over its
    /// calculators).
    fn truncate(&mut self, n: usize);
    /// The aggregate metric that stands for the task (from the [`crate::registry`]).
    fn headline_metric(&self) -> &'static str {
        crate::registry::headline_metric(self.name()).unwrap_or("accuracy")
    }
    /// Reference responses for general code length, where the task has them.
    fn references(&self) -> Option<Vec<ReferencePair>> {
        None
    }
}

/// A plain (prompt, reference) pair for code-length measurements.
#[derive(Debug, Clone)]
pub struct ReferencePair {
    pub user_message: String,
    pub response: String,
}
