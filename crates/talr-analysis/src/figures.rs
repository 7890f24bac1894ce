//! The figures, each as PNG and SVG: the learning-rate trade-off (paper Fig. 1), methods at two
//! rates (Fig. 2), hard-token share over training and the base model's token probabilities on the
//! SFT targets (Fig. 3), the domain-vs-general Pareto frontier, general code-length drift
//! against the learning rate with a least-squares fit of Theorem 3.1's k1·Δ + k2·Δ²·λ, and
//! WiSE-FT's α sweep.

use crate::chart::{write_chart, write_panels, Chart, Series, Spread, XScale};
use crate::{method_rank, CellResult};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod drift;
mod wise_ft;

fn by_method<'a>(
    rs: impl Iterator<Item = &'a CellResult>,
) -> BTreeMap<(usize, String), Vec<&'a CellResult>> {
    let mut m: BTreeMap<(usize, String), Vec<&CellResult>> = BTreeMap::new();
    for r in rs {
        m.entry(method_rank(&r.method)).or_default().push(r);
    }
    m
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// One method's runs of one target style, by learning rate (ascending).
fn runs_per_rate<'a>(
    results: &'a [CellResult],
    method: &str,
    style: &str,
) -> Vec<(f64, Vec<&'a CellResult>)> {
    let mut m: BTreeMap<u64, Vec<&CellResult>> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.method == method && r.style == style)
    {
        if let Some(lr) = r.learning_rate {
            m.entry(lr.to_bits()).or_default().push(r);
        }
    }
    m.into_iter()
        .map(|(bits, rs)| (f64::from_bits(bits), rs))
        .collect()
}

/// A curve over log10 learning rate: at each rate the mean of `metric` over the runs there, with
/// whiskers over their range where they differ.
fn rate_curve(
    name: String,
    per_rate: &[(f64, Vec<&CellResult>)],
    metric: impl Fn(&CellResult) -> f64,
) -> Series {
    let (points, spreads) = per_rate
        .iter()
        .map(|(lr, rs)| {
            let x = lr.log10();
            let runs: Vec<(f64, f64)> = rs.iter().map(|r| (x, metric(r))).collect();
            ((x, mean(runs.iter().map(|p| p.1))), Spread::of(&runs))
        })
        .unzip();
    Series::line(name, points).with_spreads(spreads)
}

/// The note a chart's title carries when some of its points average runs that differ.
fn whiskers_note(series: &[Series]) -> &'static str {
    match series.iter().any(Series::has_spread) {
        true => " (whiskers: seed range)",
        false => "",
    }
}

/// Adds a training curve, or names it on an existing curve it matches to 1e-3: WiSE-FT trains
/// exactly as SFT does (it averages afterwards), and L2's penalty barely moves it.
fn push_curve(series: &mut Vec<Series>, name: String, points: Vec<(f64, f64)>) {
    if points.is_empty() {
        return;
    }
    let same = |s: &Series| {
        s.points.len() == points.len()
            && s.points
                .iter()
                .zip(&points)
                .all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-3)
    };
    match series.iter_mut().find(|s| same(s)) {
        Some(existing) => existing.name = format!("{} = {name}", existing.name),
        None => series.push(Series::line(name, points)),
    }
}

/// `(step, value)` for one numeric field of a cell's `train/metrics.jsonl` (none if the cell has
/// no training log, e.g. results copied without it).
fn step_values(root: &Path, cell: &str, field: &str) -> Result<Vec<(f64, f64)>> {
    let path = crate::ResultsDir::new(root)
        .cell_dir(cell)
        .join("train/metrics.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON line", path.display(), i + 1))?;
        if let (Some(step), Some(y)) = (v["step"].as_f64(), v[field].as_f64()) {
            points.push((step, y));
        }
    }
    Ok(points)
}

/// A horizontal reference line at `y` across the x values given.
fn flat(name: String, xs: &[f64], y: f64) -> Series {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Series::line(name, vec![(lo, y), (hi, y)])
}

/// The cells of `grid`.
fn in_grid<'a>(cells: &[&'a CellResult], grid: &str) -> Vec<&'a CellResult> {
    cells
        .iter()
        .copied()
        .filter(|r| r.grids.iter().any(|g| g == grid))
        .collect()
}

/// One cell per target style, its lowest seed: the run a per-step curve is drawn from.
fn first_seed_per_style<'a>(rs: &[&'a CellResult]) -> Vec<&'a CellResult> {
    let mut first: BTreeMap<&str, &CellResult> = BTreeMap::new();
    for r in rs {
        let entry = first.entry(r.style.as_str()).or_insert(r);
        if r.seed < entry.seed {
            *entry = r;
        }
    }
    first.into_values().collect()
}

/// One per-step curve per (method, style) of `grid`, from that style's first seed; `values` gives a
/// cell's (step, value) points.
fn per_step_series(
    cells: &[&CellResult],
    grid: &str,
    values: impl Fn(&CellResult) -> Result<Vec<(f64, f64)>>,
) -> Result<Vec<Series>> {
    let grid_cells = in_grid(cells, grid);
    let several = styles(grid_cells.iter().copied()).len() > 1;
    let mut series = Vec::new();
    for ((_, method), rs) in by_method(grid_cells.iter().copied()) {
        for r in first_seed_per_style(&rs) {
            push_curve(
                &mut series,
                style_suffixed(&method, &r.style, several),
                values(r)?,
            );
        }
    }
    Ok(series)
}

/// `name (a; b)`, or just `name` with no qualifiers.
fn qualified(name: &str, qualifiers: &[String]) -> String {
    if qualifiers.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", qualifiers.join("; "))
    }
}

/// `name (style)` when the figure shows more than one target style, else just `name`.
fn style_suffixed(name: &str, style: &str, several_styles: bool) -> String {
    let style = several_styles.then(|| style.to_string());
    qualified(name, style.as_slice())
}

/// A method's point in Fig. 2 (one panel per style): how many seeds its mean is over where that
/// is more than one (the seed spread is as large as some method gaps).
fn method_point_name(method: &str, seeds: usize) -> String {
    match seeds {
        0 | 1 => method.to_string(),
        n => format!("{method} (mean of {n} seeds)"),
    }
}

/// The target styles of the fine-tuned cells (a base evaluation of another style does not count).
fn styles<'a>(results: impl IntoIterator<Item = &'a CellResult>) -> Vec<String> {
    let mut s: Vec<String> = results
        .into_iter()
        .filter(|r| !r.is_base())
        .map(|r| r.style.clone())
        .collect();
    s.sort();
    s.dedup();
    s
}

/// Draws every figure `results` (loaded from `root`) support into `out`.
pub fn draw_all(results: &[CellResult], root: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    if results.is_empty() {
        bail!(
            "no results under {} (run `cargo xtask reproduce` first)",
            root.display()
        );
    }
    let mut written = Vec::new();
    let cells: Vec<&CellResult> = results.iter().filter(|r| !r.is_base()).collect();

    // Fig. 1: SFT across learning rates, with the base model (rate 0) as flat reference lines.
    let mut series = Vec::new();
    let mut swept = Vec::new();
    let mut base_lines = Vec::new();
    let mut base_general = None;
    let all_styles = styles(results);
    let several = all_styles.len() > 1;
    for style in all_styles {
        let per_rate = runs_per_rate(results, "sft", &style);
        if per_rate.is_empty() {
            continue;
        }
        swept.extend(per_rate.iter().map(|(lr, _)| lr.log10()));
        series.push(rate_curve(
            style_suffixed("domain", &style, several),
            &per_rate,
            |r| r.domain_accuracy,
        ));
        series.push(rate_curve(
            style_suffixed("general", &style, several),
            &per_rate,
            |r| r.general_avg,
        ));
        if let Some(base) = results.iter().find(|r| r.is_base() && r.style == style) {
            base_lines.push((
                style_suffixed("base domain", &style, several),
                base.domain_accuracy,
            ));
            base_general = Some(base.general_avg);
        }
    }
    let whiskers = whiskers_note(&series);
    // The general benchmarks do not depend on the target style: one base line for them; and the
    // styles' base domain lines share one line where they coincide (the base model scores 0 on both).
    base_lines.extend(base_general.map(|y| ("base general".to_string(), y)));
    let mut reference_lines = Vec::new();
    for (name, y) in base_lines {
        let line = flat(name, &swept, y);
        push_curve(&mut reference_lines, line.name, line.points);
    }
    series.extend(reference_lines);
    written.extend(write_chart(
        out,
        "fig1_lr_tradeoff",
        &Chart {
            title: format!("SFT: domain and general accuracy vs learning rate{whiskers}"),
            x_label: "learning rate (log scale)".into(),
            x_scale: XScale::Log10,
            y_label: "accuracy".into(),
            series,
            name_points: false,
        },
    )?);

    // Fig. 2: one domain-vs-general chart per method grid (table1 and table2 are the paper's two
    // rates), each point named in place and the base model as the reference.
    let mut method_grids: Vec<&str> = cells
        .iter()
        .flat_map(|r| r.grids.iter().map(String::as_str))
        .filter(|g| *g != "lr_sweep")
        .collect();
    method_grids.sort();
    method_grids.dedup();
    for grid in method_grids {
        let grid_cells = in_grid(&cells, grid);
        let mut rates: Vec<f64> = grid_cells.iter().filter_map(|r| r.learning_rate).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        let rates: Vec<String> = rates.iter().map(|lr| format!("{lr:.0e}")).collect();
        // One panel per target style, label-only (the main table) first, on shared axes.
        let mut grid_styles = styles(grid_cells.iter().copied());
        grid_styles.sort_by_key(|s| s != "label-only");
        let mut panels = Vec::new();
        for style in &grid_styles {
            let mut series = Vec::new();
            for ((_, method), rs) in by_method(grid_cells.iter().copied()) {
                let rs: Vec<&&CellResult> = rs.iter().filter(|r| &r.style == style).collect();
                if rs.is_empty() {
                    continue;
                }
                let mut seeds: Vec<u64> = rs.iter().map(|r| r.seed).collect();
                seeds.sort();
                seeds.dedup();
                let runs: Vec<(f64, f64)> = rs
                    .iter()
                    .map(|r| (r.domain_accuracy, r.general_avg))
                    .collect();
                let at_mean = (
                    mean(runs.iter().map(|p| p.0)),
                    mean(runs.iter().map(|p| p.1)),
                );
                series.push(
                    Series::scatter(method_point_name(&method, seeds.len()), vec![at_mean])
                        .with_spreads(vec![Spread::of(&runs)]),
                );
            }
            for base in results.iter().filter(|r| r.is_base() && &r.style == style) {
                series.push(Series::scatter(
                    "base model",
                    vec![(base.domain_accuracy, base.general_avg)],
                ));
            }
            let whiskers = whiskers_note(&series);
            panels.push(Chart {
                title: format!(
                    "{grid} (lr {}), {style} targets{whiskers}",
                    rates.join(", ")
                ),
                x_label: "domain accuracy".into(),
                x_scale: XScale::Linear,
                y_label: "general average".into(),
                series,
                name_points: true,
            });
        }
        written.extend(write_panels(out, &format!("fig2_methods_{grid}"), &panels)?);
    }

    // Fig. 3b: hard-token share over training, per method (first seed, each style).
    let series = per_step_series(&cells, "table2", |r| {
        Ok(r.hard_token_share
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 1.0, *v))
            .collect())
    })?;
    written.extend(write_chart(
        out,
        "fig3_hard_token_share",
        &Chart {
            title: "Share of hard target tokens (p < 0.2) during training".into(),
            x_label: "optimiser step".into(),
            x_scale: XScale::Linear,
            y_label: "hard-token share".into(),
            series,
            name_points: false,
        },
    )?);

    // Batch NLL of the SFT targets at each step, per method grid at one rate: a weighting that
    // favours easy tokens shows here as a rising NLL (the hard tokens get worse).
    for grid in ["table2", "tau_ablation"] {
        let series = per_step_series(&cells, grid, |r| step_values(root, &r.cell, "mean_nll"))?;
        written.extend(write_chart(
            out,
            &format!("training_nll_{grid}"),
            &Chart {
                title: format!("{grid}: mean NLL of each batch's target tokens"),
                x_label: "optimiser step".into(),
                x_scale: XScale::Linear,
                y_label: "NLL (nats/token, before the step)".into(),
                series,
                name_points: false,
            },
        )?);
    }

    // Fig. 3a: base-model token probabilities of the SFT targets.
    let mut series = Vec::new();
    for base in results.iter().filter(|r| r.is_base()) {
        let h = &base.token_probability_histogram;
        if !h.is_empty() {
            let n = h.len().max(1) as f64;
            let total: f64 = (h.iter().sum::<u64>() as f64).max(1.0);
            series.push(Series::line(
                format!("targets ({})", base.style),
                h.iter()
                    .enumerate()
                    .map(|(i, v)| ((i as f64 + 0.5) / n, *v as f64 / total))
                    .collect(),
            ));
        }
    }
    written.extend(write_chart(
        out,
        "fig3_token_probabilities",
        &Chart {
            title: "Base-model probability of each SFT target token".into(),
            x_label: "p(token) under the base model".into(),
            x_scale: XScale::Linear,
            y_label: "share of tokens".into(),
            series,
            name_points: false,
        },
    )?);

    // Pareto frontier over all cells.
    let pts: Vec<(f64, f64)> = cells
        .iter()
        .map(|r| (r.domain_accuracy, r.general_avg))
        .collect();
    let mut frontier: Vec<(f64, f64)> = pts
        .iter()
        .copied()
        .filter(|p| {
            !pts.iter()
                .any(|q| q.0 >= p.0 && q.1 >= p.1 && (q.0 > p.0 || q.1 > p.1))
        })
        .collect();
    frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut series: Vec<Series> = by_method(cells.iter().copied())
        .into_iter()
        .map(|((_, m), rs)| {
            Series::scatter(
                m,
                rs.iter()
                    .map(|r| (r.domain_accuracy, r.general_avg))
                    .collect(),
            )
        })
        .collect();
    series.push(Series::line("Pareto frontier", frontier));
    written.extend(write_chart(
        out,
        "pareto_frontier",
        &Chart {
            title: "Domain vs general: every cell".into(),
            x_label: "domain accuracy".into(),
            x_scale: XScale::Linear,
            y_label: "general average".into(),
            series,
            name_points: false,
        },
    )?);

    written.extend(drift::draw(results, out)?);
    written.extend(wise_ft::draw(results, out)?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_step_curves_come_from_each_styles_first_seed() {
        let cell = |style: &str, seed: u64| CellResult {
            style: style.into(),
            cell: format!("{style}-{seed}"),
            ..crate::test_cell("sft", seed, 0.0, 0.0, &[])
        };
        let cells = [cell("label-only", 1), cell("cot", 0), cell("label-only", 0)];
        let refs: Vec<&CellResult> = cells.iter().collect();
        let ids: Vec<&str> = first_seed_per_style(&refs)
            .iter()
            .map(|r| r.cell.as_str())
            .collect();
        // "cot" sorts before "label-only", so picking the lowest (seed, style) would have drawn
        // the CoT run alone as SFT's label-only curve.
        assert_eq!(ids, ["cot-0", "label-only-0"]);
    }

    #[test]
    fn a_learning_rate_curve_averages_the_seeds_and_spans_them() {
        let at = |lr: f64, seed: u64, general: f64| CellResult {
            learning_rate: Some(lr),
            ..crate::test_cell("sft", seed, 0.05, general, &[])
        };
        let cells = [
            at(1e-3, 0, 0.01),
            at(1e-4, 0, 0.10),
            at(1e-4, 1, 0.30),
            at(1e-4, 2, 0.20),
            at(1e-5, 0, 0.13),
            at(1e-5, 1, 0.13),
        ];
        let per_rate = runs_per_rate(&cells, "sft", "label-only");
        let curve = rate_curve("general".into(), &per_rate, |r| r.general_avg);
        let xs: Vec<f64> = curve.points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [1e-5f64.log10(), -4.0, -3.0], "ascending rates");
        assert!((curve.points[1].1 - 0.2).abs() < 1e-12, "the seeds' mean");
        let spread = curve.spreads[1].unwrap();
        assert_eq!((spread.x, spread.y), ((-4.0, -4.0), (0.10, 0.30)));
        assert_eq!(curve.spreads[2], None, "one seed, no whisker");
        assert!(curve.has_spread());
        let equal_seeds = rate_curve("domain".into(), &per_rate, |r| r.domain_accuracy);
        assert!(
            !equal_seeds.has_spread(),
            "seeds that agree draw no whisker and earn no note in the title"
        );
    }

    #[test]
    fn matching_training_curves_share_one_line() {
        let curve = |ys: &[f64]| -> Vec<(f64, f64)> {
            ys.iter()
                .enumerate()
                .map(|(i, y)| (i as f64 + 1.0, *y))
                .collect()
        };
        let mut series = Vec::new();
        push_curve(&mut series, "sft".into(), curve(&[1.72, 1.87, 1.58]));
        push_curve(&mut series, "l2".into(), curve(&[1.72, 1.87, 1.5801]));
        push_curve(&mut series, "talr".into(), curve(&[1.72, 2.17, 2.78]));
        push_curve(&mut series, "no log".into(), Vec::new());
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["sft = l2", "talr"]);
    }

    #[test]
    fn method_points_say_how_many_seeds_they_average() {
        assert_eq!(method_point_name("talr", 1), "talr");
        assert_eq!(method_point_name("sft", 3), "sft (mean of 3 seeds)");
        assert_eq!(
            style_suffixed("base model", "cot", true),
            "base model (cot)"
        );
        assert_eq!(style_suffixed("base model", "cot", false), "base model");
    }
}
