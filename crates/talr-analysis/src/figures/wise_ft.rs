//! WiSE-FT's α sweep: domain accuracy and general average along θ = (1 − α)·θ0 + α·θ_ft, from the
//! base model (α = 0) through the `wise_ft_alpha` grid's cells to SFT (α = 1).

use crate::chart::{write_chart, Chart, Series, Spread, XScale};
use crate::CellResult;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const GRID: &str = "wise_ft_alpha";

/// What a curve plots of each cell.
type Metric = fn(&CellResult) -> f64;

/// Where a cell of the sweep lies: SFT is α = 1, a WiSE-FT cell its merge's α.
fn alpha_of(r: &CellResult) -> Option<f64> {
    match r.method.as_str() {
        "sft" => Some(1.0),
        _ => r.config.pointer("/method/merge/wise_ft/alpha")?.as_f64(),
    }
}

/// Per target style, per metric: a curve over α (the mean of the seeds at each α, whiskers over
/// their range), starting at the base model.
pub(super) fn alpha_curves(results: &[CellResult]) -> Vec<Series> {
    let cells: Vec<&CellResult> = results
        .iter()
        .filter(|r| !r.is_base() && r.grids.iter().any(|g| g == GRID))
        .collect();
    let styles = super::styles(cells.iter().copied());
    let several = styles.len() > 1;
    let metrics: [(&str, Metric); 2] = [
        ("domain", |r| r.domain_accuracy),
        ("general", |r| r.general_avg),
    ];
    let mut series = Vec::new();
    for style in &styles {
        let mut by_alpha: BTreeMap<u64, Vec<&CellResult>> = BTreeMap::new();
        for r in cells.iter().filter(|r| &r.style == style) {
            if let Some(alpha) = alpha_of(r) {
                by_alpha.entry(alpha.to_bits()).or_default().push(r);
            }
        }
        let base = results.iter().find(|r| r.is_base() && &r.style == style);
        for (name, metric) in metrics {
            let mut points = Vec::new();
            let mut spreads = Vec::new();
            if let Some(base) = base {
                points.push((0.0, metric(base)));
                spreads.push(None);
            }
            for (bits, rs) in &by_alpha {
                let alpha = f64::from_bits(*bits);
                let runs: Vec<(f64, f64)> = rs.iter().map(|r| (alpha, metric(r))).collect();
                points.push((alpha, super::mean(runs.iter().map(|p| p.1))));
                spreads.push(Spread::of(&runs));
            }
            series.push(
                Series::line(super::style_suffixed(name, style, several), points)
                    .with_spreads(spreads),
            );
        }
    }
    series
}

/// Draws `wise_ft_alpha` once the grid has a cell.
pub(super) fn draw(results: &[CellResult], out: &Path) -> Result<Vec<PathBuf>> {
    let series = alpha_curves(results);
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let whiskers = super::whiskers_note(&series);
    write_chart(
        out,
        "wise_ft_alpha",
        &Chart {
            title: format!("WiSE-FT: accuracy along alpha (0 = base model, 1 = SFT){whiskers}"),
            x_label: "alpha".into(),
            x_scale: XScale::Linear,
            y_label: "accuracy".into(),
            series,
            name_points: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_runs_from_the_base_model_through_each_alpha_to_sft() {
        let cell = |method: &str, alpha: Option<f64>, seed: u64, general: f64| {
            let mut c = crate::test_cell(method, seed, 0.1, general, &[]);
            c.grids = vec![GRID.into()];
            if let Some(a) = alpha {
                c.config = serde_json::json!({"method": {"merge": {"wise_ft": {"alpha": a}}}});
            }
            c
        };
        let results = [
            crate::test_cell("base", 0, 0.0, 0.5, &[]),
            cell("sft", None, 0, 0.1),
            cell("wise_ft", Some(0.75), 0, 0.2),
            cell("wise_ft", Some(0.25), 0, 0.4),
            cell("wise_ft", Some(0.25), 1, 0.3),
            // Another grid's WiSE-FT cell is not on this path.
            crate::test_cell("wise_ft", 0, 0.9, 0.9, &[]),
        ];
        let curves = alpha_curves(&results);
        let names: Vec<&str> = curves.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["domain", "general"]);
        let general = &curves[1];
        let xs: Vec<f64> = general.points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [0.0, 0.25, 0.75, 1.0]);
        assert!(
            (general.points[1].1 - 0.35).abs() < 1e-12,
            "the seeds' mean"
        );
        assert_eq!(general.points[0].1, 0.5, "alpha 0 is the base model");
        assert_eq!(general.spreads[1].unwrap().y, (0.3, 0.4));
    }
}
