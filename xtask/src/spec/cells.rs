//! Cells: a grid's methods × styles × seeds at its rates, each resolved to a full training
//! config and named by a hash of it.

use super::{experiments_dir, grids_of, load_yaml, Grid, LrChoice, Preset};
#[cfg(test)]
use super::{load_grid, load_preset};
use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use talr_evals::Style;
use talr_train::TrainConfig;

/// A method's config with the preset's training overrides (those of the cell's target style
/// last), the cell's rate and seed applied.
pub fn resolve_method(
    preset: &Preset,
    method: &str,
    style: Style,
    lr: f64,
    seed: u64,
) -> Result<TrainConfig> {
    let path = experiments_dir()
        .join("methods")
        .join(format!("{method}.yaml"));
    let mut doc: serde_yaml::Value = load_yaml(&path)?;
    let root = doc.as_mapping_mut().context("a method file is a mapping")?;
    if let Some(overrides) = preset.method_overrides.get(method) {
        let section = root
            .entry("method".into())
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()))
            .as_mapping_mut()
            .with_context(|| format!("{}: `method` must be a mapping", path.display()))?;
        for (k, v) in overrides {
            section.insert(k.clone(), v.clone());
        }
    }
    let training = root
        .entry("training".into())
        .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    let training = training
        .as_mapping_mut()
        .with_context(|| format!("{}: `training` must be a mapping", path.display()))?;
    for (k, v) in preset.training_overrides(style) {
        training.insert(k.clone(), v.clone());
    }
    let scale = preset.lr_scale.get(method).copied().unwrap_or(1.0);
    training.insert("learning_rate".into(), (lr * scale).into());
    training.insert("seed".into(), seed.into());
    let origin = match preset.method_overrides.contains_key(method) {
        true => format!(
            "{} with preset {}'s method_overrides.{method}",
            path.display(),
            preset.name
        ),
        false => path.display().to_string(),
    };
    TrainConfig::from_yaml(&serde_yaml::to_string(&doc)?, &origin)
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub id: String,
    pub method: String,
    pub style: Style,
    /// The grid's rate (before any per-method scale).
    pub learning_rate: f64,
    pub seed: u64,
    pub config: TrainConfig,
    /// Grids that contain this cell (a cell shared by two grids runs once).
    pub grids: Vec<String>,
    /// Names the fine-tuned weights: cells with one training key train identically (see
    /// [`training_key`]).
    pub training: String,
    /// Whether another cell of the preset's grids has this training key, so the weights this
    /// cell trains are kept for it (set by [`mark_shared_training`]).
    pub training_shared: bool,
}

/// What a cell's result depends on: hashed into its id. How often training writes a checkpoint
/// does not change the result (resume is exact), so it is left out: a preset may checkpoint every
/// step without renaming its cells.
fn cell_key(preset: &Preset, method: &str, style: Style, cfg: &TrainConfig) -> serde_json::Value {
    let mut cfg = cfg.clone();
    cfg.training.checkpoint_every = 0;
    let mut key = with_precision(
        preset,
        serde_json::json!({
            "model": preset.model,
            "model_seed": preset.model_seed,
            "domain": preset.domain,
            "general": preset.general,
            "generation": preset.generation,
            "method": method,
            "style": style,
            "config": cfg,
        }),
    );
    if let Some(budget) = preset.domain_reply_budget.get(&style) {
        key["domain_reply_budget"] = serde_json::json!(budget);
    }
    key
}

/// A key with the preset's precision added when it is not f32, so f32 cells keep the ids they
/// had before presets could choose.
fn with_precision(preset: &Preset, mut key: serde_json::Value) -> serde_json::Value {
    if !preset.precision.is_f32() {
        key["precision"] = serde_json::json!(preset.precision);
    }
    key
}

/// What a cell's fine-tuned weights depend on: its key without the method's name, the benchmarks,
/// decoding, or the WiSE-FT merge that follows training. SFT and WiSE-FT at every alpha, at one
/// rate, target style and seed, share one.
fn training_key(preset: &Preset, style: Style, cfg: &TrainConfig) -> serde_json::Value {
    let mut cfg = cfg.clone();
    cfg.training.checkpoint_every = 0;
    cfg.method.merge = talr_train::config::Merge::None;
    with_precision(
        preset,
        serde_json::json!({
            "model": preset.model,
            "model_seed": preset.model_seed,
            "domain": preset.domain,
            "style": style,
            "config": cfg,
        }),
    )
}

pub fn hash_id(value: &serde_json::Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The grids' cells, each once, in run order: seed by seed, and within a seed the preset's styles
/// in turn (label-only, the main table, first), methods in grid order, so an interrupted run has
/// whole tables for the first seed and style rather than scattered cells.
pub fn expand(preset: &Preset, grids: &[Grid], seeds: &[u64]) -> Result<Vec<Cell>> {
    let mut cells: Vec<Cell> = Vec::new();
    let mut resolver = Resolver::new(preset, grids)?;
    for grid in grids {
        let rates = match grid.learning_rate {
            LrChoice::Small => vec![preset.learning_rates.small],
            LrChoice::Large => vec![preset.learning_rates.large],
            LrChoice::Sweep => preset.learning_rates.sweep.clone(),
            LrChoice::Fixed(rate) => vec![rate],
        };
        for method in &grid.methods {
            for &lr in &rates {
                for &style in &preset.styles {
                    for &seed in seeds {
                        let config = resolver
                            .resolve(method, style, lr, seed)
                            .with_context(|| format!("grid {}: method {method}", grid.name))?;
                        let method = &resolver.canonical_name(method, style, lr, seed, &config)?;
                        let id = hash_id(&cell_key(preset, method, style, &config));
                        let training = hash_id(&training_key(preset, style, &config));
                        let at = match cells.iter().position(|c| c.id == id) {
                            Some(at) => at,
                            None => {
                                cells.push(Cell {
                                    id,
                                    method: method.clone(),
                                    style,
                                    learning_rate: lr,
                                    seed,
                                    config,
                                    grids: Vec::new(),
                                    training,
                                    training_shared: false,
                                });
                                cells.len() - 1
                            }
                        };
                        let cell = &mut cells[at];
                        if !cell.grids.contains(&grid.name) {
                            cell.grids.push(grid.name.clone());
                        }
                    }
                }
            }
        }
    }
    let style_rank = |style: Style| preset.styles.iter().position(|&s| s == style);
    let seed_rank = |seed: u64| seeds.iter().position(|&s| s == seed);
    cells.sort_by_key(|c| (seed_rank(c.seed), style_rank(c.style)));
    Ok(cells)
}

/// Resolves methods once each, and names the cells of methods that resolve alike.
struct Resolver<'a> {
    preset: &'a Preset,
    /// Every method of the preset's grids and the grids being expanded, in name order.
    methods: BTreeSet<String>,
    configs: HashMap<(String, Style, u64, u64), TrainConfig>,
}

impl<'a> Resolver<'a> {
    fn new(preset: &'a Preset, grids: &[Grid]) -> Result<Self> {
        let methods = grids_of(preset)?
            .iter()
            .chain(grids)
            .flat_map(|g| g.methods.iter().cloned())
            .collect();
        Ok(Self {
            preset,
            methods,
            configs: HashMap::new(),
        })
    }

    fn resolve(&mut self, method: &str, style: Style, lr: f64, seed: u64) -> Result<TrainConfig> {
        let key = (method.to_string(), style, lr.to_bits(), seed);
        if let Some(config) = self.configs.get(&key) {
            return Ok(config.clone());
        }
        let config = resolve_method(self.preset, method, style, lr, seed)?;
        self.configs.insert(key, config.clone());
        Ok(config)
    }

    /// The name a method's cell goes by: the first, in name order, of the methods that resolve
    /// to this config at this rate, style and seed. Two names for one config (the small
    /// preset's `l2`, whose λ it overrides to 1e6, and `l2_lambda_1e6`) are one cell, run once
    /// and counted in the grids of both, whichever name a `--methods` filter gives.
    fn canonical_name(
        &mut self,
        method: &str,
        style: Style,
        lr: f64,
        seed: u64,
        config: &TrainConfig,
    ) -> Result<String> {
        let earlier: Vec<String> = self
            .methods
            .iter()
            .take_while(|m| m.as_str() < method)
            .cloned()
            .collect();
        for other in earlier {
            if self.resolve(&other, style, lr, seed)? == *config {
                return Ok(other);
            }
        }
        Ok(method.to_string())
    }
}

/// Which grids each cell id of this preset belongs to, for every grid, both target styles and
/// the given seeds. Tables and figures take membership from here rather than from the grids a
/// cell was first run for: a cell shared by two grids (an lr-sweep SFT cell at the `large` rate
/// is table2's SFT cell) counts in both, and cells of an older config (a rate since changed)
/// count in none.
pub fn grid_membership(preset: &Preset, seeds: &[u64]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut every_style = preset.clone();
    every_style.styles = vec![Style::LabelOnly, Style::Cot];
    Ok(expand(&every_style, &grids_of(preset)?, seeds)?
        .into_iter()
        .map(|cell| (cell.id, cell.grids))
        .collect())
}

/// Marks the cells whose training key another cell of the preset has, in any grid, either
/// target style and these seeds: their fine-tuned weights are kept so that only one trains.
pub fn mark_shared_training(preset: &Preset, seeds: &[u64], cells: &mut [Cell]) -> Result<()> {
    let mut every_style = preset.clone();
    every_style.styles = vec![Style::LabelOnly, Style::Cot];
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for cell in expand(&every_style, &grids_of(preset)?, seeds)? {
        *count.entry(cell.training).or_default() += 1;
    }
    let shared: BTreeSet<&String> = count
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(k, _)| k)
        .collect();
    for cell in cells {
        cell.training_shared = shared.contains(&cell.training);
    }
    Ok(())
}

/// The smoke preset's table2 cells at seed 0: real cells for the runner's unit tests.
#[cfg(test)]
pub fn smoke_table2_cells() -> Vec<Cell> {
    let preset = load_preset("smoke").unwrap();
    let mut cells = expand(&preset, &[load_grid("table2").unwrap()], &[0]).unwrap();
    mark_shared_training(&preset, &[0], &mut cells).unwrap();
    cells
}

/// The smoke preset's table2 cell of `method`, label-only, seed 0.
#[cfg(test)]
pub fn smoke_label_only_cell(method: &str) -> Cell {
    smoke_table2_cells()
        .into_iter()
        .find(|c| c.method == method && c.style == Style::LabelOnly)
        .unwrap()
}
