//! `--dry-run`'s time estimate: what the cells still to run should take, from the cells already
//! finished in the same results directory. A CoT cell costs about twice a label-only one (its
//! targets are ~140 tokens instead of ~15), so each cell is priced at the mean of its own style.

use crate::spec::Cell;
use std::collections::{BTreeMap, BTreeSet};
use talr_analysis::CellResult;

/// What finished cells took, per target style: whole cells (train + eval) that trained, and the
/// evaluations of every cell.
#[derive(Debug, Default)]
pub struct Finished {
    pub cells: BTreeMap<String, Vec<f64>>,
    pub evals: BTreeMap<String, Vec<f64>>,
}

/// The seconds of every finished cell among `results` (any grid). A cell that reused another's
/// training counts among evaluations only: its train seconds are a merge.
pub fn finished_seconds(results: &[CellResult]) -> Finished {
    let mut finished = Finished::default();
    for r in results.iter().filter(|r| !r.is_base()) {
        if let Some(talr_analysis::schema::Seconds {
            train: Some(train),
            eval,
        }) = r.seconds
        {
            finished
                .evals
                .entry(r.style.clone())
                .or_default()
                .push(eval);
            if !r.training_reused {
                finished
                    .cells
                    .entry(r.style.clone())
                    .or_default()
                    .push(train + eval);
            }
        }
    }
    finished
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The mean for `style` in `by_style`, or over every style when none of it has finished.
fn style_mean(by_style: &BTreeMap<String, Vec<f64>>, style: &str) -> Option<f64> {
    if let Some(xs) = by_style.get(style) {
        return Some(mean(xs));
    }
    let all: Vec<f64> = by_style.values().flatten().copied().collect();
    (!all.is_empty()).then(|| mean(&all))
}

/// Seconds the `to_run` cells (in run order) should take: each at the mean of finished cells of
/// its style, or only an evaluation when its training is already `stored` or an earlier cell
/// trains it. `None` when nothing has finished.
pub fn seconds_to_run(
    to_run: &[&Cell],
    finished: &Finished,
    stored: impl Fn(&str) -> bool,
) -> Option<f64> {
    let mut will_store: BTreeSet<&str> = BTreeSet::new();
    // A fold from +0.0, not `sum()`: f64's `Sum` starts at -0.0, which printed "about -0 min"
    // for a grid with nothing left to run.
    to_run.iter().try_fold(0.0, |total, c| {
        let style = c.style.name();
        let reuses =
            c.training_shared && (stored(&c.training) || !will_store.insert(c.training.as_str()));
        let seconds = match reuses {
            true => style_mean(&finished.evals, style)?,
            false => style_mean(&finished.cells, style)?,
        };
        Some(total + seconds)
    })
}

/// One line naming the per-style means the estimate used, e.g. "cot 2056 s (1 cell), label-only
/// 1063 s (23 cells)".
pub fn describe(finished: &Finished) -> String {
    finished
        .cells
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

    fn finished(cells: &[(&str, &[f64])], evals: &[(&str, &[f64])]) -> Finished {
        let map = |xs: &[(&str, &[f64])]| {
            xs.iter()
                .map(|(style, s)| (style.to_string(), s.to_vec()))
                .collect()
        };
        Finished {
            cells: map(cells),
            evals: map(evals),
        }
    }

    #[test]
    fn each_cell_is_priced_at_the_mean_of_its_own_style() {
        let none_stored = |_: &str| false;
        let done = finished(
            &[("label-only", &[1000.0, 1200.0]), ("cot", &[2000.0])],
            &[("label-only", &[400.0]), ("cot", &[700.0])],
        );
        let (cot, label) = (cell(Style::Cot), cell(Style::LabelOnly));
        assert_eq!(
            seconds_to_run(&[&cot, &label], &done, none_stored),
            Some(3100.0)
        );
        // No CoT cell finished yet: priced at the mean over every finished cell.
        let only_label = finished(&[("label-only", &[900.0, 1100.0])], &[]);
        assert_eq!(
            seconds_to_run(&[&cot], &only_label, none_stored),
            Some(1000.0)
        );
        assert_eq!(
            seconds_to_run(&[&cot], &Finished::default(), none_stored),
            None
        );
        let nothing_left = seconds_to_run(&[], &done, none_stored).unwrap();
        assert_eq!(format!("{:.0} min", nothing_left / 60.0), "0 min");
        assert_eq!(
            describe(&done),
            "cot 2000 s (1 cell), label-only 1100 s (2 cells)"
        );
    }

    #[test]
    fn a_cell_whose_training_is_kept_or_trained_earlier_costs_its_evaluation() {
        let label = crate::spec::smoke_label_only_cell;
        let (sft, wise_ft, talr) = (label("sft"), label("wise_ft"), label("talr"));
        let (sft, wise_ft, talr) = (&sft, &wise_ft, &talr);
        let done = finished(&[("label-only", &[1000.0])], &[("label-only", &[300.0])]);
        let none_stored = |_: &str| false;
        assert_eq!(
            seconds_to_run(&[sft, wise_ft, talr], &done, none_stored),
            Some(2300.0)
        );
        let sft_stored = |key: &str| key == sft.training;
        assert_eq!(
            seconds_to_run(&[wise_ft, talr], &done, sft_stored),
            Some(1300.0)
        );
        assert_eq!(
            seconds_to_run(&[wise_ft, talr], &done, none_stored),
            Some(2000.0)
        );
    }
}
