//! Each method against the grid's reference run (SFT; batch-median TALR in the τ ablation),
//! paired item by item: the same benchmark item, answered by both models trained at the same
//! rate, target style and seed. Every fine-tuned row, the reference's included, is also set
//! against the base model on the same items ([`base_rows`]): what fine-tuning gained or lost.
//!
//! - The difference is the method's score minus the reference's, for the domain task and for the
//!   general average (the mean of the general benchmarks' differences, as the general average is
//!   the mean of their scores).
//! - Its interval is a paired bootstrap: 2000 resamples of the items with replacement, within
//!   each benchmark, each item carrying all of its seeds (fixed RNG seed); the 2.5th and 97.5th
//!   percentiles of the resampled difference.
//! - The test is McNemar's exact test: the (seed, item) pairs only one of the two models got
//!   right, pooled over benchmarks and seeds, against a fair coin (two-sided).
//! - The smallest detectable difference is the accuracy difference McNemar's test finds with 80%
//!   power at α = 0.05 for this many pairs, at the observed share of discordant pairs ψ:
//!   (z₀.₉₇₅ + z₀.₈)·√(ψ / pairs), the normal approximation.

use crate::schema::ResultsDir;
use crate::CellResult;
use anyhow::{Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Item id → right or wrong, per task.
pub type Outcomes = BTreeMap<String, BTreeMap<String, bool>>;

/// A cell's per-item outcomes on every task it was evaluated on (`<cell>/eval/<task>/result.json`).
pub fn cell_outcomes(eval_dir: &Path) -> Result<Outcomes> {
    let mut out = Outcomes::new();
    for entry in std::fs::read_dir(eval_dir)
        .with_context(|| format!("reading {}", eval_dir.display()))?
        .flatten()
    {
        let path = entry.path().join("result.json");
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let task = entry.file_name().to_string_lossy().into_owned();
        let items = talr_evals::registry::item_outcomes(&task, &doc["items"])
            .with_context(|| format!("in {}", path.display()))?;
        out.insert(task, items);
    }
    Ok(out)
}

/// One side of a comparison on one task: for each shared item, the method's and the
/// reference's outcome at each shared seed.
#[derive(Debug, Default, Clone)]
pub struct TaskPairs {
    /// Item id → [(method right, reference right)] over seeds.
    pub items: BTreeMap<String, Vec<(bool, bool)>>,
}

impl TaskPairs {
    fn item_difference(pairs: &[(bool, bool)]) -> f64 {
        pairs
            .iter()
            .map(|&(a, b)| a as i32 as f64 - b as i32 as f64)
            .sum::<f64>()
            / pairs.len() as f64
    }

    fn difference(&self) -> f64 {
        let d: Vec<f64> = self
            .items
            .values()
            .map(|p| Self::item_difference(p))
            .collect();
        d.iter().sum::<f64>() / d.len().max(1) as f64
    }
}

/// A paired comparison over one or more tasks (the general average is over several).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemComparison {
    /// (seed, item) pairs.
    pub pairs: usize,
    /// Mean over tasks of the method's accuracy minus the reference's.
    pub difference: f64,
    pub lo: f64,
    pub hi: f64,
    /// Pairs only the method got right / only the reference got right.
    pub only_method: usize,
    pub only_reference: usize,
    pub mcnemar_p: f64,
    pub min_detectable: f64,
}

/// Two-sided exact McNemar test: the probability, under a fair coin, of a split of the `b + c`
/// discordant pairs at least as uneven as (b, c).
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // log C(n, i) accumulated term by term; 0.5^n in log space keeps large n finite.
    let mut log_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (log_choose - n as f64 * std::f64::consts::LN_2).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Compares over `tasks` (each the pairs of one benchmark); `None` when no task has a pair.
pub fn compare(tasks: &[TaskPairs]) -> Option<ItemComparison> {
    let tasks: Vec<&TaskPairs> = tasks.iter().filter(|t| !t.items.is_empty()).collect();
    if tasks.is_empty() {
        return None;
    }
    let mean_over_tasks = |f: &dyn Fn(&TaskPairs) -> f64| {
        tasks.iter().map(|t| f(t)).sum::<f64>() / tasks.len() as f64
    };
    let difference = mean_over_tasks(&|t| t.difference());
    let all_pairs = || tasks.iter().flat_map(|t| t.items.values().flatten());
    let pairs = all_pairs().count();
    let only_method = all_pairs().filter(|&&(a, b)| a && !b).count();
    let only_reference = all_pairs().filter(|&&(a, b)| !a && b).count();

    let per_task: Vec<Vec<f64>> = tasks
        .iter()
        .map(|t| {
            t.items
                .values()
                .map(|p| TaskPairs::item_difference(p))
                .collect()
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(0);
    let mut resampled: Vec<f64> = (0..2000)
        .map(|_| {
            per_task
                .iter()
                .map(|d| {
                    (0..d.len())
                        .map(|_| d[rng.random_range(0..d.len())])
                        .sum::<f64>()
                        / d.len() as f64
                })
                .sum::<f64>()
                / per_task.len() as f64
        })
        .collect();
    resampled.sort_by(f64::total_cmp);
    let discordant = (only_method + only_reference) as f64 / pairs as f64;
    Some(ItemComparison {
        pairs,
        difference,
        lo: resampled[50],
        hi: resampled[1949],
        only_method,
        only_reference,
        mcnemar_p: mcnemar_exact(only_method, only_reference),
        min_detectable: (1.959_964 + 0.841_621) * (discordant / pairs as f64).sqrt(),
    })
}

/// One method at one rate and style against the reference.
#[derive(Clone)]
pub struct ItemRow {
    pub method: String,
    pub reference: String,
    pub learning_rate: f64,
    pub style: String,
    pub seeds: Vec<u64>,
    pub domain: Option<ItemComparison>,
    pub general: Option<ItemComparison>,
}

/// Pairs of (method, reference) outcomes for each task both cells have.
fn pair_tasks(method: &Outcomes, reference: &Outcomes, into: &mut BTreeMap<String, TaskPairs>) {
    for (task, items) in method {
        let Some(ref_items) = reference.get(task) else {
            continue;
        };
        let entry = into.entry(task.clone()).or_default();
        for (id, &right) in items {
            if let Some(&ref_right) = ref_items.get(id) {
                entry
                    .items
                    .entry(id.clone())
                    .or_default()
                    .push((right, ref_right));
            }
        }
    }
}

/// Rows for every method of `grid` with a reference run at its rate, style and seed; outcomes
/// are read from the cells' evaluation directories under `root`.
pub fn item_rows(results: &[CellResult], grid: &str, root: &Path) -> Result<Vec<ItemRow>> {
    let Some((reference, groups)) = crate::paired::reference_pairs(results, grid) else {
        return Ok(Vec::new());
    };
    let dir = ResultsDir::new(root);
    // A reference cell partners every method of its rate, style and seed: read it once.
    let mut read: BTreeMap<String, Outcomes> = BTreeMap::new();
    let outcomes_of = |id: &str, read: &mut BTreeMap<String, Outcomes>| -> Result<()> {
        if !read.contains_key(id) {
            read.insert(
                id.to_string(),
                cell_outcomes(&dir.cell_dir(id).join("eval"))?,
            );
        }
        Ok(())
    };
    let mut rows = Vec::new();
    for pairs in groups.values() {
        let mut tasks: BTreeMap<String, TaskPairs> = BTreeMap::new();
        for (cell, partner) in pairs {
            outcomes_of(&cell.cell, &mut read)?;
            outcomes_of(&partner.cell, &mut read)?;
            pair_tasks(&read[&cell.cell], &read[&partner.cell], &mut tasks);
        }
        let cells: Vec<&CellResult> = pairs.iter().map(|(c, _)| *c).collect();
        rows.push(item_row(&cells, reference, &tasks));
    }
    Ok(rows)
}

/// The name [`base_rows`] give their reference.
pub const BASE_MODEL: &str = "base model";

/// Rows for every fine-tuned method, rate and style of `grid` against the base model's outcomes
/// in `<root>/base/`. The base model is evaluated once, so its answer to an item partners that
/// item at every seed. Empty when the base model has no per-item results.
pub fn base_rows(results: &[CellResult], grid: &str, root: &Path) -> Result<Vec<ItemRow>> {
    let dir = ResultsDir::new(root);
    if !dir.base_dir().is_dir() {
        return Ok(Vec::new());
    }
    let base = cell_outcomes(&dir.base_dir())?;
    let mut groups: BTreeMap<crate::paired::RowKey, Vec<&CellResult>> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| !r.is_base() && r.grids.iter().any(|g| g == grid))
    {
        groups.entry(crate::paired::row_key(r)).or_default().push(r);
    }
    let mut rows = Vec::new();
    for cells in groups.values() {
        let mut tasks: BTreeMap<String, TaskPairs> = BTreeMap::new();
        for cell in cells {
            let outcomes = cell_outcomes(&dir.cell_dir(&cell.cell).join("eval"))?;
            pair_tasks(&outcomes, &base, &mut tasks);
        }
        if tasks.values().any(|t| !t.items.is_empty()) {
            rows.push(item_row(cells, BASE_MODEL, &tasks));
        }
    }
    Ok(rows)
}

/// One row from the paired outcomes of `cells` (one method, rate and style) against `reference`.
fn item_row(
    cells: &[&CellResult],
    reference: &str,
    tasks: &BTreeMap<String, TaskPairs>,
) -> ItemRow {
    let first = cells[0];
    let pick = |general: bool| -> Vec<TaskPairs> {
        tasks
            .iter()
            .filter(|(t, _)| first.general.contains_key(t.as_str()) == general)
            .map(|(_, p)| p.clone())
            .collect()
    };
    let mut seeds: Vec<u64> = cells.iter().map(|c| c.seed).collect();
    seeds.sort();
    ItemRow {
        method: first.method.clone(),
        reference: reference.to_string(),
        learning_rate: first.learning_rate.unwrap_or_default(),
        style: first.style.clone(),
        seeds,
        domain: compare(&pick(false)),
        general: compare(&pick(true)),
    }
}

fn cell_text(c: &Option<ItemComparison>) -> [String; 4] {
    match c {
        None => ["–".into(), "–".into(), "–".into(), "–".into()],
        Some(c) => [
            format!("{:+.3} [{:+.3}, {:+.3}]", c.difference, c.lo, c.hi),
            format!("{} / {} of {}", c.only_method, c.only_reference, c.pairs),
            if c.mcnemar_p < 0.001 {
                "<0.001".into()
            } else {
                format!("{:.3}", c.mcnemar_p)
            },
            format!("{:.3}", c.min_detectable),
        ],
    }
}

pub fn markdown(rows: &[ItemRow], grid: &str) -> String {
    let mut out = format!(
        "### {grid}: item by item against the reference run\n\n\
         Each method minus the reference method (same rate, target style and seed) on the same \
         items; against the base model, each seed's answer to an item against the base model's \
         one answer to it. Difference: mean over benchmarks of the accuracy difference, with a 95% paired \
         bootstrap interval (2000 resamples of items within each benchmark, an item carrying all \
         its seeds). Discordant: (seed, item) pairs only the method / only the reference got \
         right. p: McNemar's exact test on those pairs. MDD: the smallest difference McNemar's \
         test would detect with 80% power at α = 0.05 with these pairs.\n\n\
         | method | vs | lr | style | seeds | domain difference | discordant | p | MDD | general difference | discordant | p | MDD |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let [dd, dn, dp, dm] = cell_text(&r.domain);
        let [gd, gn, gp, gm] = cell_text(&r.general);
        out.push_str(&format!(
            "| {} | {} | {:.0e} | {} | {} | {dd} | {dn} | {dp} | {dm} | {gd} | {gn} | {gp} | {gm} |\n",
            r.method,
            r.reference,
            r.learning_rate,
            r.style,
            r.seeds.len()
        ));
    }
    out
}

/// Writes `<root>/<grid>_items.md` from the grid's [`item_rows`]; nothing when it has no pair.
pub fn write_item_table(rows: &[ItemRow], grid: &str, root: &Path) -> Result<Option<PathBuf>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let path = root.join(format!("{}_items.md", grid.replace('-', "_")));
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, markdown(rows, grid))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        // 8 discordant pairs split 1 / 7: 2 · (1 + 8) / 256.
        assert!((mcnemar_exact(1, 7) - 18.0 / 256.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!(mcnemar_exact(0, 2000) < 1e-300 || mcnemar_exact(0, 2000) == 0.0);
    }

    fn task(pairs: &[(bool, bool)]) -> TaskPairs {
        TaskPairs {
            items: pairs
                .iter()
                .enumerate()
                .map(|(i, &p)| (i.to_string(), vec![p]))
                .collect(),
        }
    }

    #[test]
    fn the_general_difference_is_the_mean_of_the_benchmarks_differences() {
        // Benchmark A: +2 of 4; benchmark B: −1 of 2.
        let a = task(&[(true, false), (true, false), (true, true), (false, false)]);
        let b = task(&[(false, true), (false, false)]);
        let c = compare(&[a, b]).unwrap();
        assert!((c.difference - (0.5 + -0.5) / 2.0).abs() < 1e-12);
        assert_eq!((c.pairs, c.only_method, c.only_reference), (6, 2, 1));
        assert!(c.lo <= c.difference && c.difference <= c.hi);
        assert!((c.mcnemar_p - 1.0).abs() < 1e-12);
        assert!(compare(&[]).is_none());
    }

    /// `<dir>/<task>/result.json` with MedCalc-style items: row `i` right where `right[i]`.
    fn write_outcomes(dir: &Path, task: &str, right: &[bool]) {
        let items: Vec<serde_json::Value> = right
            .iter()
            .enumerate()
            .map(|(i, &r)| serde_json::json!({"row_number": i, "correct": r}))
            .collect();
        std::fs::create_dir_all(dir.join(task)).unwrap();
        let doc = serde_json::json!({ "items": items });
        std::fs::write(dir.join(task).join("result.json"), doc.to_string()).unwrap();
    }

    #[test]
    fn every_fine_tuned_row_is_set_against_the_base_models_answers_at_each_seed() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write_outcomes(&root.join("base"), "medcalc", &[false, false, true, false]);
        write_outcomes(&root.join("base"), "medcalc-cot", &[true, true, true, true]);
        let results: Vec<CellResult> = [
            (0, [true, true, true, false]),
            (1, [true, false, false, false]),
        ]
        .into_iter()
        .map(|(seed, right)| {
            let cell = crate::test_cell("sft", seed, 0.0, 0.0, &[]);
            write_outcomes(
                &root.join("cells").join(&cell.cell).join("eval"),
                "medcalc",
                &right,
            );
            cell
        })
        .chain([crate::test_cell("base", 0, 0.0, 0.0, &[])])
        .collect();
        let rows = base_rows(&results, "table2", root).unwrap();
        assert_eq!(rows.len(), 1, "one row for SFT; the base model is no row");
        let row = &rows[0];
        assert_eq!(
            (row.reference.as_str(), row.seeds.clone()),
            (BASE_MODEL, vec![0, 1])
        );
        // A label-only cell pairs with the base model's label-only prompts only: seed 0 gains
        // rows 0 and 1, seed 1 gains row 0 and loses row 2, over 8 (seed, row) pairs.
        let domain = row.domain.as_ref().unwrap();
        assert_eq!(
            (domain.pairs, domain.only_method, domain.only_reference),
            (8, 3, 1)
        );
        assert!((domain.difference - 2.0 / 8.0).abs() < 1e-12);
        assert!(row.general.is_none());
        assert!(base_rows(&results, "lr_sweep", root).unwrap().is_empty());
    }

    #[test]
    fn identical_runs_differ_by_nothing() {
        let same = task(&[(true, true), (false, false), (true, true)]);
        let c = compare(&[same]).unwrap();
        assert_eq!(
            (c.difference, c.lo, c.hi, c.min_detectable),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(c.mcnemar_p, 1.0);
    }
}
