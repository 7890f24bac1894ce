//! Each method against SFT, seed for seed.
//!
//! A cell's seed fixes the order of its training rows, and on a short run that order moves the
//! results as much as the choice of method does. Cells of one seed, rate and target style share
//! it, so their differences cancel it; the table reports those differences (mean over the seeds
//! both have, with a bootstrap 95% interval) and how many seeds went each way.

use crate::tables::estimate_text;
use crate::{estimate, method_rank, CellResult, Estimate};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One method at one rate and style, minus SFT at the same rate, style and seed.
pub struct PairedRow {
    pub method: String,
    pub learning_rate: f64,
    pub style: String,
    pub seeds: Vec<u64>,
    pub domain: Estimate,
    pub general: Estimate,
    /// Difference in code-length drift ΔL (negative: drifts less than SFT).
    pub drift: Option<Estimate>,
    /// Seeds at which the method's general score is (higher, equal, lower) than SFT's.
    pub general_sign: (usize, usize, usize),
}

/// Rows for every non-SFT method of `grid` that shares at least one (rate, style, seed) with SFT.
pub fn paired_with_sft(results: &[CellResult], grid: &str) -> Vec<PairedRow> {
    let cells: Vec<&CellResult> = results
        .iter()
        .filter(|r| !r.is_base() && r.grids.iter().any(|g| g == grid))
        .collect();
    let lr_key = |r: &CellResult| r.learning_rate.map_or(0, f64::to_bits);
    let sft: BTreeMap<(u64, &str, u64), &CellResult> = cells
        .iter()
        .filter(|r| r.method == "sft")
        .map(|r| ((lr_key(r), r.style.as_str(), r.seed), *r))
        .collect();
    let base_cl = crate::base_code_lengths(results);

    // Label-only first: it is the main table, CoT the second.
    type Key<'a> = ((usize, String), u64, (bool, &'a str));
    let mut pairs: BTreeMap<Key, Vec<(&CellResult, &CellResult)>> = BTreeMap::new();
    for r in cells.iter().filter(|r| r.method != "sft") {
        if let Some(s) = sft.get(&(lr_key(r), r.style.as_str(), r.seed)) {
            pairs
                .entry((
                    method_rank(&r.method),
                    lr_key(r),
                    (r.style != "label-only", r.style.as_str()),
                ))
                .or_default()
                .push((*r, *s));
        }
    }
    pairs
        .into_values()
        .map(|mut ps| {
            ps.sort_by_key(|(r, _)| r.seed);
            let diff = |f: &dyn Fn(&CellResult) -> f64| -> Vec<f64> {
                ps.iter().map(|(r, s)| f(r) - f(s)).collect()
            };
            let general = diff(&|r| r.general_avg);
            let drift: Option<Vec<f64>> = ps
                .iter()
                .map(|(r, s)| Some(r.code_length_drift(&base_cl)? - s.code_length_drift(&base_cl)?))
                .collect();
            let mut sign = (0, 0, 0);
            for d in &general {
                // Scores are fractions of at most a few hundred items, so a tie is exact up to
                // rounding in the averaging.
                match (d.abs() < 1e-9, d.total_cmp(&0.0)) {
                    (true, _) => sign.1 += 1,
                    (false, Ordering::Greater) => sign.0 += 1,
                    (false, _) => sign.2 += 1,
                }
            }
            let (first, _) = ps[0];
            PairedRow {
                method: first.method.clone(),
                learning_rate: first.learning_rate.unwrap_or_default(),
                style: first.style.clone(),
                seeds: ps.iter().map(|(r, _)| r.seed).collect(),
                domain: estimate(&diff(&|r| r.domain_accuracy)),
                general: estimate(&general),
                drift: drift.map(|d| estimate(&d)),
                general_sign: sign,
            }
        })
        .collect()
}

/// A Markdown section for the grid's table; empty when no method shares a seed with SFT.
pub fn markdown(rows: &[PairedRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nAgainst SFT, seed for seed: the method's score minus SFT's at the same rate, target style and seed (the seed fixes the order of the training rows), mean over the seeds both have [bootstrap 95% interval]; ΔL lower = drifts less than SFT.\n\n| method | style | seeds | domain − SFT | general − SFT | ΔL − SFT's ΔL | general vs SFT (higher / same / lower) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let seeds: Vec<String> = r.seeds.iter().map(u64::to_string).collect();
        let (up, same, down) = r.general_sign;
        let _ = writeln!(
            out,
            "| {} (lr {:.0e}) | {} | {} | {} | {} | {} | {up} / {same} / {down} |",
            r.method,
            r.learning_rate,
            r.style,
            seeds.join(", "),
            estimate_text(&r.domain, true),
            estimate_text(&r.general, true),
            r.drift.map_or("–".to_string(), |d| estimate_text(&d, true)),
        );
    }
    out
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
        let rows = paired_with_sft(&results, "table2");
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
            markdown(&paired_with_sft(&results[..3], "table2")).is_empty(),
            "SFT alone has nothing to be compared with"
        );
    }
}
