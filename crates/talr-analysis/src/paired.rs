//! Each method against the grid's reference run, seed for seed: SFT in the method grids, and
//! batch-median TALR in the τ ablation (which has no SFT run), so its variants read as changes to
//! TALR.
//!
//! A cell's seed fixes the order of its training rows, and on a short run that order moves the
//! results as much as the choice of method does. Cells of one seed, rate and target style share
//! it, so their differences cancel it; the table reports those differences (mean over the seeds
//! both have, with their range) and how many seeds went each way. Over several
//! models each is paired with its own reference run, and the pooled row takes every (model, seed)
//! pair.

use crate::tables::estimate_text;
use crate::{estimate, method_rank, CellResult, Estimate};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One method at one rate and style, minus the reference method at the same rate, style and seed.
pub struct PairedRow {
    pub method: String,
    /// The method it is compared with ([`reference_method`]).
    pub reference: String,
    pub learning_rate: f64,
    pub style: String,
    /// The seed of each pair (repeated when pairs from several models are pooled).
    pub seeds: Vec<u64>,
    pub domain: Estimate,
    pub general: Estimate,
    /// Difference in code-length drift ΔL (negative: drifts less than the reference).
    pub drift: Option<Estimate>,
    /// Pairs in which the method's general score is (higher, equal, lower) than the reference's.
    pub general_sign: (usize, usize, usize),
}

/// Method order (the paper's first), rate, then label-only before CoT: it is the main table.
pub(crate) type RowKey = ((usize, String), u64, (bool, String));

/// A rate as an exact key (`0` for the base model, which has none).
fn lr_key(r: &CellResult) -> u64 {
    r.learning_rate.map_or(0, f64::to_bits)
}

/// The row a cell belongs to: its method, rate and target style.
pub(crate) fn row_key(r: &CellResult) -> RowKey {
    let style_key = (r.style != "label-only", r.style.clone());
    (method_rank(&r.method), lr_key(r), style_key)
}

/// (method cell, reference cell) pairs by row.
pub(crate) type PairsByRow<'a> = BTreeMap<RowKey, Vec<(&'a CellResult, &'a CellResult)>>;

/// The per-pair differences behind one [`PairedRow`].
#[derive(Clone)]
struct Differences {
    method: String,
    reference: String,
    learning_rate: f64,
    style: String,
    seeds: Vec<u64>,
    domain: Vec<f64>,
    general: Vec<f64>,
    drift: Option<Vec<f64>>,
}

impl Differences {
    fn append(&mut self, other: &Differences) {
        self.seeds.extend(&other.seeds);
        self.domain.extend(&other.domain);
        self.general.extend(&other.general);
        self.drift = match (self.drift.take(), &other.drift) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
    }

    fn summary(&self) -> PairedRow {
        let mut sign = (0, 0, 0);
        for d in &self.general {
            // Scores are fractions of at most a few hundred items, so a tie is exact up to
            // rounding in the averaging.
            match (d.abs() < 1e-9, d.total_cmp(&0.0)) {
                (true, _) => sign.1 += 1,
                (false, Ordering::Greater) => sign.0 += 1,
                (false, _) => sign.2 += 1,
            }
        }
        PairedRow {
            method: self.method.clone(),
            reference: self.reference.clone(),
            learning_rate: self.learning_rate,
            style: self.style.clone(),
            seeds: self.seeds.clone(),
            domain: estimate(&self.domain),
            general: estimate(&self.general),
            drift: self.drift.as_deref().map(estimate),
            general_sign: sign,
        }
    }
}

/// Candidates for a grid's reference, first present wins: every method grid has SFT; the τ
/// ablation has only TALR and its variants.
const REFERENCES: [&str; 2] = ["sft", "talr"];

/// The method the rest of `grid` is compared with: SFT where the grid has it, else TALR; `None`
/// when it has neither.
pub fn reference_method(results: &[CellResult], grid: &str) -> Option<&'static str> {
    REFERENCES.into_iter().find(|m| {
        results
            .iter()
            .any(|r| r.method == *m && r.grids.iter().any(|g| g == grid))
    })
}

/// Each other method of `grid` (by row) paired with the reference method's cell at the same
/// rate, style and seed; runs without a reference partner at their seed are left out.
pub(crate) fn reference_pairs<'a>(
    results: &'a [CellResult],
    grid: &str,
) -> Option<(&'static str, PairsByRow<'a>)> {
    let reference = reference_method(results, grid)?;
    let cells: Vec<&CellResult> = results
        .iter()
        .filter(|r| !r.is_base() && r.grids.iter().any(|g| g == grid))
        .collect();
    let partners: BTreeMap<(u64, &str, u64), &CellResult> = cells
        .iter()
        .filter(|r| r.method == reference)
        .map(|r| ((lr_key(r), r.style.as_str(), r.seed), *r))
        .collect();
    let mut pairs = PairsByRow::new();
    for r in cells.iter().filter(|r| r.method != reference) {
        if let Some(s) = partners.get(&(lr_key(r), r.style.as_str(), r.seed)) {
            pairs.entry(row_key(r)).or_default().push((*r, *s));
        }
    }
    Some((reference, pairs))
}

/// Differences for every other method of `grid` that shares at least one (rate, style, seed)
/// with the reference method.
fn differences(results: &[CellResult], grid: &str) -> BTreeMap<RowKey, Differences> {
    let Some((reference, pairs)) = reference_pairs(results, grid) else {
        return BTreeMap::new();
    };
    let base_cl = crate::base_code_lengths(results);
    pairs
        .into_iter()
        .map(|(key, mut ps)| {
            ps.sort_by_key(|(r, _)| r.seed);
            let diff = |f: &dyn Fn(&CellResult) -> f64| -> Vec<f64> {
                ps.iter().map(|(r, s)| f(r) - f(s)).collect()
            };
            let (first, _) = ps[0];
            let differences = Differences {
                method: first.method.clone(),
                reference: reference.to_string(),
                learning_rate: first.learning_rate.unwrap_or_default(),
                style: first.style.clone(),
                seeds: ps.iter().map(|(r, _)| r.seed).collect(),
                domain: diff(&|r| r.domain_accuracy),
                general: diff(&|r| r.general_avg),
                drift: ps
                    .iter()
                    .map(|(r, s)| {
                        Some(r.code_length_drift(&base_cl)? - s.code_length_drift(&base_cl)?)
                    })
                    .collect(),
            };
            (key, differences)
        })
        .collect()
}

/// Rows for every method of `grid` that shares at least one (rate, style, seed) with the grid's
/// [`reference_method`].
pub fn paired_with_reference(results: &[CellResult], grid: &str) -> Vec<PairedRow> {
    differences(results, grid)
        .values()
        .map(Differences::summary)
        .collect()
}

/// Each model's rows (every model paired with its own reference run and drifting from its own
/// base), then `N models (pooled)`: every (model, seed) pair of the rows that all models have
/// against the same reference.
pub fn paired_across_models(
    per_model: &[(String, Vec<CellResult>)],
    grid: &str,
) -> Vec<(String, Vec<PairedRow>)> {
    let each: Vec<(&String, BTreeMap<RowKey, Differences>)> = per_model
        .iter()
        .map(|(model, results)| (model, differences(results, grid)))
        .collect();
    let mut groups: Vec<(String, Vec<PairedRow>)> = each
        .iter()
        .map(|(model, d)| {
            (
                model.to_string(),
                d.values().map(Differences::summary).collect(),
            )
        })
        .collect();
    if let Some(((_, first), rest)) = each.split_first() {
        let pooled: Vec<PairedRow> = first
            .iter()
            .filter_map(|(key, d)| {
                let mut all = d.clone();
                for (_, other) in rest {
                    let theirs = other.get(key).filter(|o| o.reference == d.reference)?;
                    all.append(theirs);
                }
                Some(all.summary())
            })
            .collect();
        if !rest.is_empty() && !pooled.is_empty() {
            groups.push((format!("{} models (pooled)", each.len()), pooled));
        }
    }
    groups
}

fn intro(reference: &str) -> String {
    let r = reference.to_uppercase();
    format!(
        "Against {r}, seed for seed: the method's score minus {r}'s at the same rate, target style and seed (the seed fixes the order of the training rows), mean over the seeds both have [range over those seeds]; ΔL lower = drifts less than {r}."
    )
}

fn columns(reference: &str) -> String {
    let r = reference.to_uppercase();
    format!(
        "| method | style | seeds | domain − {r} | general − {r} | ΔL − {r}'s ΔL | general vs {r} (higher / same / lower) |"
    )
}

/// A Markdown section for the grid's table; empty when no method shares a seed with the
/// reference.
pub fn markdown(rows: &[PairedRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let reference = &first.reference;
    let mut out = format!(
        "\n{}\n\n{}\n|---|---|---|---|---|---|---|\n",
        intro(reference),
        columns(reference)
    );
    for r in rows {
        out += &row_text(r);
    }
    out
}

/// The section for several models side by side ([`paired_across_models`]): a `model` column,
/// each model's rows, then the pooled ones. A model whose grid lacks SFT is paired with TALR, so
/// rows are grouped by reference, each group under a header that names its own.
pub fn markdown_across_models(groups: &[(String, Vec<PairedRow>)]) -> String {
    let mut references: Vec<&str> = Vec::new();
    for r in groups.iter().flat_map(|(_, rows)| rows) {
        if !references.contains(&r.reference.as_str()) {
            references.push(&r.reference);
        }
    }
    let mut out = String::new();
    for reference in references {
        out += &format!(
            "\n{} Each model is paired with its own {} run and drifts from its own base model; the pooled rows take every (model, seed) pair of the rows all models have.\n\n| model {}\n|---|---|---|---|---|---|---|---|\n",
            intro(reference),
            reference.to_uppercase(),
            columns(reference)
        );
        for (model, rows) in groups {
            for r in rows.iter().filter(|r| r.reference == reference) {
                out += &format!("| {model} {}", row_text(r));
            }
        }
    }
    out
}

fn row_text(r: &PairedRow) -> String {
    let mut seeds = r.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let (up, same, down) = r.general_sign;
    format!(
        "| {} (lr {:.0e}) | {} | {} | {} | {} | {} | {up} / {same} / {down} |\n",
        r.method,
        r.learning_rate,
        r.style,
        seeds.join(", "),
        estimate_text(&r.domain, true),
        estimate_text(&r.general, true),
        r.drift.map_or("–".to_string(), |d| estimate_text(&d, true)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(method: &str, seed: u64, domain: f64, general: f64, code_length: f64) -> CellResult {
        crate::test_cell(method, seed, domain, general, &[("humaneval", code_length)])
    }

    #[test]
    fn differences_are_taken_at_the_same_seed_and_only_where_sft_has_it() {
        let results = [
            cell("base", 0, 0.0, 0.5, 1.0),
            cell("sft", 0, 0.2, 0.3, 2.0),
            cell("sft", 1, 0.4, 0.1, 3.0),
            cell("talr", 0, 0.1, 0.4, 1.5),
            cell("talr", 1, 0.4, 0.0, 3.5),
            // No SFT run at seed 2: left out rather than paired with another seed's.
            cell("talr", 2, 0.9, 0.9, 9.0),
            cell("wise_ft", 1, 0.5, 0.1, 1.0),
        ];
        let rows = paired_with_reference(&results, "table2");
        let names: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(names, ["wise_ft", "talr"], "in the paper's method order");

        let talr = &rows[1];
        assert_eq!(talr.seeds, [0, 1]);
        // Domain: (0.1 − 0.2, 0.4 − 0.4); general: (+0.1, −0.1); drift: (−0.5, +0.5).
        assert!((talr.domain.mean + 0.05).abs() < 1e-12 && talr.domain.n == 2);
        assert!(talr.general.mean.abs() < 1e-12);
        assert_eq!(talr.general_sign, (1, 0, 1));
        let drift = talr.drift.unwrap();
        assert!(drift.mean.abs() < 1e-12 && drift.lo < 0.0 && drift.hi > 0.0);

        let wise = &rows[0];
        assert_eq!(wise.seeds, [1]);
        assert_eq!(wise.general_sign, (0, 1, 0));
        assert!((wise.drift.unwrap().mean + 2.0).abs() < 1e-12);

        let md = markdown(&rows);
        assert!(
            md.contains("| talr (lr 3e-4) | label-only | 0, 1 | -0.050 [")
                && md.contains("| 1 / 0 / 1 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| wise_ft (lr 3e-4) | label-only | 1 | +0.100 | +0.000 | -2.000 | 0 / 1 / 0 |"
            ),
            "{md}"
        );
        assert!(
            markdown(&paired_with_reference(&results[..3], "table2")).is_empty(),
            "SFT alone has nothing to be compared with"
        );
    }

    #[test]
    fn a_grid_without_sft_is_compared_with_batch_median_talr() {
        let in_tau_ablation = |mut c: CellResult| {
            c.grids = vec!["tau_ablation".into()];
            c
        };
        let results: Vec<CellResult> = [
            cell("base", 0, 0.0, 0.5, 1.0),
            cell("talr", 0, 0.2, 0.3, 2.0),
            cell("talr", 1, 0.4, 0.1, 3.0),
            cell("talr_tau_1", 0, 0.1, 0.3, 2.5),
            cell("talr_tau_1", 1, 0.2, 0.2, 2.5),
        ]
        .into_iter()
        .map(in_tau_ablation)
        .collect();
        assert_eq!(reference_method(&results, "tau_ablation"), Some("talr"));
        assert_eq!(reference_method(&results, "table2"), None);

        let rows = paired_with_reference(&results, "tau_ablation");
        assert_eq!(rows.len(), 1, "TALR is not compared with itself");
        let tau_1 = &rows[0];
        assert_eq!(
            (tau_1.method.as_str(), tau_1.reference.as_str()),
            ("talr_tau_1", "talr")
        );
        // Domain: (−0.1, −0.2); general: (0, +0.1); drift: (+0.5, −0.5).
        assert!((tau_1.domain.mean + 0.15).abs() < 1e-12);
        assert_eq!(tau_1.general_sign, (1, 1, 0));
        assert!(tau_1.drift.unwrap().mean.abs() < 1e-12);

        let md = markdown(&rows);
        assert!(
            md.contains("Against TALR, seed for seed")
                && md.contains("| domain − TALR | general − TALR | ΔL − TALR's ΔL |")
                && !md.contains("SFT"),
            "{md}"
        );
        assert!(
            paired_with_reference(&results[..3], "tau_ablation").is_empty(),
            "TALR alone has nothing to be compared with"
        );
    }

    #[test]
    fn each_model_pairs_with_its_own_sft_and_the_pooled_row_takes_every_pair() {
        let model_a = vec![
            cell("base", 0, 0.0, 0.5, 1.0),
            cell("sft", 0, 0.2, 0.3, 2.0),
            cell("talr", 0, 0.2, 0.4, 1.5),
            cell("wise_ft", 0, 0.3, 0.5, 1.0),
        ];
        // Model B's base is far from A's: its drift is taken against its own.
        let model_b = vec![
            cell("base", 0, 0.0, 0.6, 5.0),
            cell("sft", 0, 0.1, 0.5, 7.0),
            cell("sft", 1, 0.1, 0.5, 7.0),
            cell("talr", 0, 0.1, 0.5, 6.0),
            cell("talr", 1, 0.1, 0.4, 8.0),
        ];
        let per_model = vec![("a".to_string(), model_a), ("b".to_string(), model_b)];
        let groups = paired_across_models(&per_model, "table2");
        let names: Vec<&str> = groups.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["a", "b", "2 models (pooled)"]);

        let pooled = &groups[2].1;
        assert_eq!(pooled.len(), 1, "wise_ft ran on one model only: not pooled");
        let talr = &pooled[0];
        assert_eq!(talr.seeds, [0, 0, 1], "one pair from a, two from b");
        // General: +0.1 (a), 0.0 and −0.1 (b); drift: −0.5, −1.0, +1.0.
        assert_eq!(talr.general_sign, (1, 1, 1));
        assert!(talr.general.mean.abs() < 1e-12 && talr.general.n == 3);
        assert!((talr.drift.unwrap().mean + 0.5 / 3.0).abs() < 1e-12);

        let md = markdown_across_models(&groups);
        assert!(
            md.contains(
                "| a | wise_ft (lr 3e-4) | label-only | 0 | +0.100 | +0.200 | -1.000 | 1 / 0 / 0 |"
            ) && md.contains("| 2 models (pooled) | talr (lr 3e-4) | label-only | 0, 1 | +0.000 ["),
            "{md}"
        );
        assert!(md.contains("| model | method |"), "{md}");
    }

    #[test]
    fn rows_against_different_references_are_not_pooled() {
        let with_sft = vec![
            cell("base", 0, 0.0, 0.5, 1.0),
            cell("sft", 0, 0.2, 0.3, 2.0),
            cell("wise_ft", 0, 0.3, 0.5, 1.0),
        ];
        // No SFT run here: wise_ft is paired with TALR, and a difference from TALR is not one
        // from SFT.
        let without_sft = vec![
            cell("base", 0, 0.0, 0.5, 1.0),
            cell("talr", 0, 0.2, 0.3, 2.0),
            cell("wise_ft", 0, 0.3, 0.5, 1.0),
        ];
        let per_model = vec![("a".to_string(), with_sft), ("c".to_string(), without_sft)];
        let groups = paired_across_models(&per_model, "table2");
        let names: Vec<&str> = groups.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["a", "c"], "no pooled group");
        assert_eq!(groups[1].1[0].reference, "talr");

        let md = markdown_across_models(&groups);
        let (against_sft, against_talr) = md
            .split_once("Against TALR, seed for seed")
            .expect("a section against TALR");
        assert!(
            against_sft.contains("Against SFT, seed for seed")
                && against_sft.contains("| a | wise_ft (lr 3e-4) |")
                && !against_sft.contains("| c |"),
            "{md}"
        );
        assert!(
            against_talr.contains("| model | method | style | seeds | domain − TALR |")
                && against_talr.contains("| c | wise_ft (lr 3e-4) |")
                && !against_talr.contains("| a |"),
            "{md}"
        );
    }
}
