//! Experiment specs: presets (model, data, budgets, learning rates, seeds) and grids (which
//! methods at which learning rates), expanded into cells. A cell is one training run plus its
//! evaluations, named by a hash of its fully resolved configuration.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use talr_evals::{Domain, Style};

pub fn experiments_dir() -> PathBuf {
    crate::repo_root().join("experiments")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    pub description: String,
    /// `tiny-random` (a seeded random tiny Llama with a byte-level tokenizer), or anything
    /// `talr --model` takes: an asset name, a .gguf file, a model directory, a hub id.
    pub model: String,
    #[serde(default)]
    pub model_seed: u64,
    pub domain: DomainSpec,
    pub general: GeneralSpec,
    pub generation: GenerationSpec,
    /// Per target style, the domain task's reply budget in place of `generation.max_new_tokens`.
    /// Part of the ids of that style's cells only, so setting it for CoT leaves label-only cells
    /// as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domain_reply_budget: BTreeMap<Style, usize>,
    /// Overrides for every method's `training` section (epochs, batch sizes, max_length, ...).
    #[serde(default)]
    pub training: serde_yaml::Mapping,
    /// Per target style, overrides applied after `training`: a CoT target (an explanation) can
    /// be a thousand tokens where a label is ten, so CoT cells may need a longer max_length.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub style_training: BTreeMap<Style, serde_yaml::Mapping>,
    pub learning_rates: LearningRates,
    /// Per-method learning-rate multipliers (LoRA trains at a larger rate than full fine-tuning).
    #[serde(default)]
    pub lr_scale: BTreeMap<String, f64>,
    /// Per-method replacements for keys of the method file's `method` section, for settings
    /// whose right size depends on the model and data (L2-to-init's lambda).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_overrides: BTreeMap<String, serde_yaml::Mapping>,
    pub seeds: Vec<u64>,
    pub styles: Vec<Style>,
    /// How the CPU's large products multiply (talr_model::precision). f32 unless the preset says
    /// otherwise, so that cells run on CPUs with and without bf16 instructions compare; a bf16
    /// preset refuses to run where bf16 cannot.
    #[serde(default, skip_serializing_if = "talr_model::Precision::is_f32")]
    pub precision: talr_model::Precision,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// `medcalc` (the default) or `esci`: the test task and the training source must be of it.
    #[serde(default, skip_serializing_if = "Domain::is_medcalc")]
    pub name: Domain,
    /// Training rows per template calculator (11 calculators).
    #[serde(default)]
    pub train_per_calculator: usize,
    #[serde(default)]
    pub train_seed: u64,
    /// Where training examples come from (`medcalc=PATH`, `esci=DIR`); default: template rows
    /// for MedCalc, the default ESCI files for ESCI.
    #[serde(default)]
    pub train_source: Option<String>,
    /// At most this many training examples (MedCalc: spread evenly over the calculators; ESCI: a
    /// stratified sample of the train split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// The domain test task (`medcalc-synth`, `medcalc=PATH`, ...), without a `-cot` suffix.
    pub test_task: String,
    /// Test on this many rows (MedCalc: spread evenly over the calculators), the same in every
    /// cell.
    #[serde(default)]
    pub test_limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralSpec {
    pub tasks: Vec<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Per-task item limits, overriding `limit`.
    #[serde(default)]
    pub limits: BTreeMap<String, usize>,
    #[serde(default)]
    pub code_length: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    pub batch_size: usize,
    /// Caps every task's reply budget.
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningRates {
    pub small: f64,
    pub large: f64,
    pub sweep: Vec<f64>,
}

/// A grid's `learning_rate`: one of the preset's named rates, or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "serde_yaml::Value")]
pub enum LrChoice {
    Small,
    Large,
    Sweep,
    Fixed(f64),
}

impl TryFrom<serde_yaml::Value> for LrChoice {
    type Error = String;

    fn try_from(v: serde_yaml::Value) -> Result<Self, String> {
        match (&v, v.as_f64()) {
            (_, Some(rate)) if rate > 0.0 => Ok(LrChoice::Fixed(rate)),
            (serde_yaml::Value::String(name), _) => match name.as_str() {
                "small" => Ok(LrChoice::Small),
                "large" => Ok(LrChoice::Large),
                "sweep" => Ok(LrChoice::Sweep),
                _ => Err(format!(
                    "learning_rate: expected small, large, sweep or a positive number, got {name:?}"
                )),
            },
            _ => Err(format!(
                "learning_rate: expected small, large, sweep or a positive number, got {v:?}"
            )),
        }
    }
}

impl From<LrChoice> for serde_yaml::Value {
    fn from(c: LrChoice) -> Self {
        match c {
            LrChoice::Small => "small".into(),
            LrChoice::Large => "large".into(),
            LrChoice::Sweep => "sweep".into(),
            LrChoice::Fixed(rate) => rate.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub name: String,
    pub description: String,
    pub methods: Vec<String>,
    pub learning_rate: LrChoice,
    /// The presets this grid is for (a fixed rate suits one model size); empty: every preset.
    #[serde(default)]
    pub presets: Vec<String>,
}

impl Grid {
    pub fn applies_to(&self, preset: &Preset) -> bool {
        self.presets.is_empty() || self.presets.contains(&preset.name)
    }
}

fn load_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A preset's top-level fields, with those of the preset it `extends` (recursively) beneath
/// them: a preset for another model says `extends: paper` and `model: ...`, and a field it
/// names replaces the parent's whole field.
fn preset_fields(dir: &Path, name: &str, chain: &mut Vec<String>) -> Result<serde_yaml::Mapping> {
    let path = dir.join(format!("{name}.yaml"));
    if !path.exists() {
        let wanted = match chain.last() {
            Some(child) => format!("{child}.yaml: extends: {name}"),
            None => format!("--preset {name}"),
        };
        bail!(
            "{wanted}: no {} (presets: {})",
            path.display(),
            names_in(dir).join(", ")
        );
    }
    if chain.iter().any(|n| n == name) {
        bail!(
            "presets extend each other in a cycle: {} -> {name}",
            chain.join(" -> ")
        );
    }
    chain.push(name.to_string());
    let mut fields: serde_yaml::Mapping = load_yaml(&path)?;
    let Some(parent) = fields.remove("extends") else {
        return Ok(fields);
    };
    let parent = parent
        .as_str()
        .with_context(|| format!("{}: `extends` must name a preset", path.display()))?
        .to_string();
    let mut merged = preset_fields(dir, &parent, chain)?;
    merged.extend(fields);
    Ok(merged)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let p = e.ok()?.path();
                if p.extension()? != "yaml" {
                    return None;
                }
                Some(p.file_stem()?.to_string_lossy().into_owned())
            })
            .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A preset's cells name their arithmetic in their ids, so `auto` (bf16 on some machines, f32 on
/// others) is refused.
fn check_precision(preset: &Preset) -> Result<()> {
    if preset.precision == talr_model::Precision::Auto {
        bail!(
            "precision: auto would give cells one id for two kinds of arithmetic; use f32 or bf16"
        );
    }
    Ok(())
}

/// The names of every preset in experiments/presets.
pub fn preset_names() -> Vec<String> {
    names_in(&experiments_dir().join("presets"))
}

pub fn load_preset(name: &str) -> Result<Preset> {
    let dir = experiments_dir().join("presets");
    let path = dir.join(format!("{name}.yaml"));
    let fields = preset_fields(&dir, name, &mut Vec::new())?;
    let preset: Preset = serde_yaml::from_value(serde_yaml::Value::Mapping(fields))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // Results go to results/<name>: a preset that extends another must not write into its
    // parent's results by inheriting its name.
    if preset.name != name {
        bail!(
            "{}: name: {:?}, but the file is {name}.yaml; a preset's name is its file's",
            path.display(),
            preset.name
        );
    }
    if preset.seeds.is_empty() || preset.styles.is_empty() {
        bail!("{}: `seeds` and `styles` must not be empty", path.display());
    }
    check_precision(&preset).with_context(|| format!("{}", path.display()))?;
    preset
        .domain
        .check()
        .with_context(|| format!("{}", path.display()))?;
    let methods = names_in(&experiments_dir().join("methods"));
    if let Some(unknown) = preset
        .method_overrides
        .keys()
        .find(|m| !methods.contains(m))
    {
        bail!(
            "{}: method_overrides: no method {unknown:?} (experiments/methods has: {})",
            path.display(),
            methods.join(", ")
        );
    }
    Ok(preset)
}

impl DomainSpec {
    /// The test task and the training source belong to the domain the preset names.
    pub fn check(&self) -> Result<()> {
        let want = self.name;
        let sources = [
            ("domain.test_task", Some(&self.test_task)),
            ("domain.train_source", self.train_source.as_ref()),
        ];
        for (field, spec) in sources {
            let Some(spec) = spec else { continue };
            let got = talr_evals::registry::domain_of(spec)
                .with_context(|| format!("{field}: {spec}"))?;
            if got != want {
                bail!(
                    "{field}: {spec} is a {} task, but domain.name is {}",
                    got.name(),
                    want.name()
                );
            }
        }
        Ok(())
    }
}

pub fn load_grid(name: &str) -> Result<Grid> {
    let dir = experiments_dir().join("grids");
    let path = dir.join(format!("{}.yaml", name.replace('-', "_")));
    if !path.exists() {
        bail!(
            "no grid {name:?} ({} has: {})",
            dir.display(),
            names_in(&dir).join(", ")
        );
    }
    load_yaml(&path)
}

/// Every grid that applies to `preset`.
pub fn grids_of(preset: &Preset) -> Result<Vec<Grid>> {
    let mut grids = Vec::new();
    for name in names_in(&experiments_dir().join("grids")) {
        let grid = load_grid(&name)?;
        if grid.applies_to(preset) {
            grids.push(grid);
        }
    }
    Ok(grids)
}

impl Preset {
    /// The `training` overrides cells of `style` get, in the order they apply: the preset-wide
    /// ones, then the style's.
    fn training_overrides(
        &self,
        style: Style,
    ) -> impl Iterator<Item = (&serde_yaml::Value, &serde_yaml::Value)> {
        let for_style = self.style_training.get(&style).into_iter().flatten();
        self.training.iter().chain(for_style)
    }

    /// A `training` setting as the preset gives it to cells of `style`.
    pub fn training_setting(&self, style: Style, key: &str) -> Option<&serde_yaml::Value> {
        self.training_overrides(style)
            .filter(|(k, _)| k.as_str() == Some(key))
            .last()
            .map(|(_, v)| v)
    }
}

mod cells;
pub use cells::*;

#[cfg(test)]
mod tests;
