//! `--dry-run`'s time estimate: what the cells still to run should take, from the cells already
//! finished in the same results directory. A CoT cell costs about twice a label-only one (its
//! targets are ~140 tokens instead of ~15), so each cell is priced at the mean of its own style.

use crate::spec::Cell;
use std::collections::BTreeMap;
use talr_analysis::CellResult;

/// Train + eval seconds of every finished cell among `results` (any grid), keyed by target style.
pub fn finished_seconds(results: &[CellResult]) -> BTreeMap<String, Vec<f64>> {
    let mut by_style: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results.iter().filter(|r| !r.is_base()) {
        if let Some(talr_analysis::schema::Seconds {
            train: Some(train),
            eval,
        }) = r.seconds
        {
            by_style
                .entry(r.style.clone())
                .or_default()
                .push(train + eval);
        }
    }
    by_style
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Seconds the `to_run` cells should take: each at the mean of finished cells of its style, or
/// of all finished cells when none of its style has finished. `None` when nothing has finished.
pub fn seconds_to_run(to_run: &[&Cell], finished: &BTreeMap<String, Vec<f64>>) -> Option<f64> {
    let all: Vec<f64> = finished.values().flatten().copied().collect();
    if all.is_empty() {
        return None;
    }
    let overall = mean(&all);
    // A fold from +0.0, not `sum()`: f64's `Sum` starts at -0.0, which printed "about -0 min"
    // for a grid with nothing left to run.
    Some(
        to_run
            .iter()
            .map(|c| finished.get(c.style.name()).map_or(overall, |xs| mean(xs)))
            .fold(0.0, |total, seconds| total + seconds),
    )
}

/// One line naming the per-style means the estimate used, e.g. "cot 2056 s (1 cell), label-only
/// 1063 s (23 cells)".
pub fn describe(finished: &BTreeMap<String, Vec<f64>>) -> String {
    finished
        .iter()
        .map(|(style, xs)| {
            let n = xs.len();
            let s = if n == 1 { "" } else { "s" };
            format!("{style} {:.0} s ({n} cell{s})", mean(xs))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use talr_evals::Style;

    fn cell(style: Style) -> Cell {
        crate::spec::smoke_table2_cells()
            .into_iter()
            .find(|c| c.style == style)
            .unwrap()
    }

    #[test]
    fn each_cell_is_priced_at_the_mean_of_its_own_style() {
        let finished = BTreeMap::from([
            ("label-only".to_string(), vec![1000.0, 1200.0]),
            ("cot".to_string(), vec![2000.0]),
        ]);
        let (cot, label) = (cell(Style::Cot), cell(Style::LabelOnly));
        assert_eq!(seconds_to_run(&[&cot, &label], &finished), Some(3100.0));
        // No CoT cell finished yet: priced at the mean over every finished cell.
        let only_label = BTreeMap::from([("label-only".to_string(), vec![900.0, 1100.0])]);
        assert_eq!(seconds_to_run(&[&cot], &only_label), Some(1000.0));
        assert_eq!(seconds_to_run(&[&cot], &BTreeMap::new()), None);
        let nothing_left = seconds_to_run(&[], &finished).unwrap();
        assert_eq!(format!("{:.0} min", nothing_left / 60.0), "0 min");
        assert_eq!(
            describe(&finished),
            "cot 2000 s (1 cell), label-only 1100 s (2 cells)"
        );
    }
}
