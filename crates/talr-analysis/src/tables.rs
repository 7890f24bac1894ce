//! Tables in the paper's layout: one row per method (and learning rate, where a grid has
//! several), columns domain / general / average per target style, means over seeds with
//! their range, and the paper's reported three-model averages beside ours where it reports them.

use crate::{estimate, method_rank, CellResult, Estimate};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The paper's reported averages over its three models (domain, general), DESIGN.md §2.
pub fn paper_reference(grid: &str, method: &str) -> Option<(f64, f64)> {
    let table1 = [
        ("sft", (0.534, 0.692)),
        ("l2", (0.506, 0.697)),
        ("lora", (0.181, 0.490)),
        ("wise_ft", (0.198, 0.727)),
        ("flow", (0.469, 0.692)),
        ("talr", (0.501, 0.717)),
    ];
    let table2 = [
        ("sft", (0.558, 0.381)),
        ("l2", (0.555, 0.395)),
        ("flow", (0.553, 0.450)),
        ("talr", (0.542, 0.502)),
    ];
    let rows: &[(&str, (f64, f64))] = match grid {
        "table1" => &table1,
        "table2" => &table2,
        _ => return None,
    };
    rows.iter().find(|(m, _)| *m == method).map(|(_, v)| *v)
}

/// The rate of the paper's table that [`paper_reference`] quotes.
pub(crate) fn paper_rate(grid: &str) -> Option<&'static str> {
    match grid {
        "table1" => Some("1e-6"),
        "table2" => Some("5e-6"),
        _ => None,
    }
}

pub struct Row {
    pub method: String,
    pub learning_rate: Option<f64>,
    /// The rate the method trained at, where its `lr_scale` makes it differ from the grid's.
    pub own_rate: Option<f64>,
    /// Per style: (domain, general, average).
    pub cols: BTreeMap<String, (Estimate, Estimate, Estimate)>,
    pub paper: Option<(f64, f64)>,
    /// Per style: general code-length drift ΔL against the base model (nats/token).
    pub drift: BTreeMap<String, Estimate>,
    /// Per style, per general benchmark: its headline metric.
    pub benchmarks: BTreeMap<String, BTreeMap<String, Estimate>>,
    /// Columns that pool the cells of several models (see [`model_rows`]); seed counts ignore them.
    pub pooled: BTreeSet<String>,
}

/// Rows for `grid`: its cells grouped by (method, rate), plus the base model.
pub fn grid_rows(results: &[CellResult], grid: &str) -> Vec<Row> {
    type Key = ((usize, String), u64);
    type Group<'a> = (String, Option<f64>, BTreeMap<String, Vec<&'a CellResult>>);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.is_base() || r.grids.iter().any(|g| g == grid))
    {
        let lr_key = r.learning_rate.map_or(0, f64::to_bits);
        let e = groups
            .entry((method_rank(&r.method), lr_key))
            .or_insert_with(|| (r.method.clone(), r.learning_rate, BTreeMap::new()));
        e.2.entry(r.style.clone()).or_default().push(r);
    }
    let base_cl = crate::base_code_lengths(results);
    groups
        .into_values()
        .map(|(method, lr, by_style)| Row {
            own_rate: by_style
                .values()
                .flatten()
                .find_map(|r| r.trained_rate)
                .filter(|&own| Some(own) != lr),
            paper: paper_reference(grid, &method),
            drift: by_style
                .iter()
                .filter_map(|(style, rs)| {
                    let dl = rs
                        .iter()
                        .filter(|r| !r.is_base())
                        .map(|r| r.code_length_drift(&base_cl))
                        .collect::<Option<Vec<f64>>>()?;
                    (!dl.is_empty()).then(|| (style.clone(), estimate(&dl)))
                })
                .collect(),
            benchmarks: by_style
                .iter()
                .map(|(style, rs)| {
                    let tasks: BTreeSet<&String> =
                        rs.iter().flat_map(|r| r.general.keys()).collect();
                    let per_task = tasks
                        .into_iter()
                        .map(|task| {
                            let v: Vec<f64> = rs
                                .iter()
                                .filter_map(|r| r.general.get(task).copied())
                                .collect();
                            (task.clone(), estimate(&v))
                        })
                        .collect();
                    (style.clone(), per_task)
                })
                .collect(),
            cols: by_style
                .into_iter()
                .map(|(style, rs)| {
                    let d: Vec<f64> = rs.iter().map(|r| r.domain_accuracy).collect();
                    let g: Vec<f64> = rs.iter().map(|r| r.general_avg).collect();
                    let a: Vec<f64> = rs
                        .iter()
                        .map(|r| (r.domain_accuracy + r.general_avg) / 2.0)
                        .collect();
                    (style, (estimate(&d), estimate(&g), estimate(&a)))
                })
                .collect(),
            method,
            learning_rate: lr,
            pooled: BTreeSet::new(),
        })
        .collect()
}

fn row_key(r: &Row) -> ((usize, String), u64) {
    (
        method_rank(&r.method),
        r.learning_rate.map_or(0, f64::to_bits),
    )
}

/// Rows for `grid` over several models (one preset each), in the paper's layout: a column group
/// per model and style, `MODEL STYLE`, each with its own base model and drift, then per style the
/// cells of every model pooled (`STYLE (N models)`), which is what the paper's three-model
/// averages are compared with.
pub fn model_rows(per_model: &[(String, Vec<CellResult>)], grid: &str) -> Vec<Row> {
    let n = per_model.len();
    let pooled_key = |style: &str| format!("{style} ({n} models)");
    let mut pooled_results = Vec::new();
    let mut merged: BTreeMap<((usize, String), u64), Row> = BTreeMap::new();
    for (model, results) in per_model {
        for row in grid_rows(results, grid) {
            let key = row_key(&row);
            let entry = merged.entry(key).or_insert_with(|| Row {
                method: row.method.clone(),
                learning_rate: row.learning_rate,
                own_rate: row.own_rate,
                cols: BTreeMap::new(),
                paper: row.paper,
                drift: BTreeMap::new(),
                benchmarks: BTreeMap::new(),
                pooled: BTreeSet::new(),
            });
            entry.cols.extend(
                row.cols
                    .into_iter()
                    .map(|(s, v)| (format!("{model} {s}"), v)),
            );
            entry.drift.extend(
                row.drift
                    .into_iter()
                    .map(|(s, v)| (format!("{model} {s}"), v)),
            );
            entry.benchmarks.extend(
                row.benchmarks
                    .into_iter()
                    .map(|(s, v)| (format!("{model} {s}"), v)),
            );
        }
        pooled_results.extend(results.iter().cloned());
    }
    // A style is pooled only where every model has the row, so the pooled columns always average
    // all of them; drift is left out, each model's being against its own base.
    for row in grid_rows(&pooled_results, grid) {
        let Some(entry) = merged.get_mut(&row_key(&row)) else {
            continue;
        };
        for (style, value) in row.cols {
            let everywhere = per_model
                .iter()
                .all(|(model, _)| entry.cols.contains_key(&format!("{model} {style}")));
            if everywhere {
                entry.pooled.insert(pooled_key(&style));
                entry.cols.insert(pooled_key(&style), value);
            }
        }
    }
    merged.into_values().collect()
}

/// The target styles the grid's fine-tuned rows have (a base evaluation alone adds no columns).
pub(crate) fn styles(rows: &[Row]) -> Vec<String> {
    let mut s: Vec<String> = rows
        .iter()
        .filter(|r| r.method != "base")
        .flat_map(|r| r.cols.keys().cloned())
        .collect();
    s.sort();
    s.dedup();
    // Label-only is the main table; a style's pooled columns follow its per-model ones.
    let pooled: BTreeSet<&String> = rows.iter().flat_map(|r| &r.pooled).collect();
    s.sort_by_key(|x| (!x.contains("label-only"), pooled.contains(x)));
    s
}

/// The rate a row trained at: the grid's ("3e-4"), or a method's own where its `lr_scale` makes
/// it differ ("3e-3 = 10 × 3e-4"); `None` for the base model.
pub(crate) fn rate_text(r: &Row) -> Option<String> {
    let grid_lr = r.learning_rate?;
    Some(match r.own_rate {
        Some(own) => {
            let factor = own / grid_lr;
            let factor = if (factor - factor.round()).abs() < 1e-6 {
                format!("{factor:.0}")
            } else {
                format!("{factor:.2}")
            };
            format!("{own:.0e} = {factor} × {grid_lr:.0e}")
        }
        None => format!("{grid_lr:.0e}"),
    })
}

/// "method (lr X)", with the seed count where a row averages several; a method trained at its own
/// rate says so ("lora (lr 3e-3 = 10 × 3e-4)"), so no row reads as trained at the table's rate.
/// Rows of one table can differ in how many seeds have finished, and so can the styles of one row; then each style's
/// count is named, so a single CoT run is not read as a three-seed mean.
fn label(r: &Row) -> String {
    let Some(lr) = rate_text(r) else {
        return "base model".to_string();
    };
    let counts: Vec<(&String, usize)> = r
        .cols
        .iter()
        .filter(|(s, _)| !r.pooled.contains(*s))
        .map(|(s, (d, _, _))| (s, d.n))
        .collect();
    let most = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
    if counts.iter().all(|&(_, n)| n == most) {
        return match most {
            0 | 1 => format!("{} (lr {lr})", r.method),
            n => format!("{} (lr {lr}, {n} seeds)", r.method),
        };
    }
    let mut per_style: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    per_style.sort_by_key(|x| !x.contains("label-only"));
    format!("{} (lr {lr}, seeds: {})", r.method, per_style.join(", "))
}

/// The mean, with its range where there are several seeds; `signed` for differences (ΔL). A
/// difference that rounds to zero prints as +0.000 whichever side of zero it fell on (L2's
/// penalty moves it by 1e-9).
pub(crate) fn estimate_text(e: &Estimate, signed: bool) -> String {
    let num = |x: f64| {
        if signed {
            signed_text(x)
        } else {
            format!("{x:.3}")
        }
    };
    if e.n > 1 {
        format!("{} [{}, {}]", num(e.mean), num(e.lo), num(e.hi))
    } else {
        num(e.mean)
    }
}

/// A difference to three decimals, +0.000 whichever side of zero it rounds from.
pub(crate) fn signed_text(x: f64) -> String {
    match format!("{x:+.3}") {
        s if s == "-0.000" => "+0.000".to_string(),
        s => s,
    }
}

fn cell_text(e: &Estimate) -> String {
    estimate_text(e, false)
}

pub fn markdown(rows: &[Row], grid: &str) -> String {
    let styles = styles(rows);
    let mut out = format!("### {grid}\n\nMean over seeds [range: smallest, largest seed]; general = mean of the general benchmarks' headline metrics (each is in the next table).\n\n| method |");
    for s in &styles {
        let _ = write!(out, " {s} domain | {s} general | {s} avg |");
    }
    let paper = match paper_rate(grid) {
        Some(rate) => format!(
            "paper domain / general (another scale: Qwen2.5-3B, Qwen3-4B, Gemma3-4B averaged, lr {rate}, 20 epochs)"
        ),
        None => "paper domain / general".to_string(),
    };
    let _ = write!(out, " {paper} |\n|---|");
    out.push_str(&"---|".repeat(styles.len() * 3 + 1));
    out.push('\n');
    for r in rows {
        let _ = write!(out, "| {} |", label(r));
        for s in &styles {
            match r.cols.get(s) {
                Some((d, g, a)) => {
                    let _ = write!(
                        out,
                        " {} | {} | {} |",
                        cell_text(d),
                        cell_text(g),
                        cell_text(a)
                    );
                }
                None => out.push_str(" – | – | – |"),
            }
        }
        match r.paper {
            Some((d, g)) => {
                let _ = writeln!(out, " {d:.3} / {g:.3} |");
            }
            None => out.push_str(" – |\n"),
        }
    }
    out.push_str(&benchmarks_markdown(rows, &styles));
    if rows.iter().any(|r| !r.drift.is_empty()) {
        out.push_str("\nGeneral code-length drift ΔL: mean over the general reference sets of per-token NLL minus the base model's (nats/token; Theorem 3.1's quantity, lower keeps more).\n\n| method |");
        for s in &styles {
            let _ = write!(out, " {s} ΔL |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(styles.len()));
        out.push('\n');
        for r in rows.iter().filter(|r| !r.drift.is_empty()) {
            let _ = write!(out, "| {} |", label(r));
            for s in &styles {
                match r.drift.get(s) {
                    Some(e) => {
                        let _ = write!(out, " {} |", estimate_text(e, true));
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    out
}

/// Each general benchmark's headline metric on its own, per style: what the general average is
/// the mean of.
fn benchmarks_markdown(rows: &[Row], styles: &[String]) -> String {
    let columns: Vec<(&String, &String)> = styles
        .iter()
        .flat_map(|s| {
            let tasks: BTreeSet<&String> = rows
                .iter()
                .filter_map(|r| r.benchmarks.get(s))
                .flat_map(|b| b.keys())
                .collect();
            tasks.into_iter().map(move |t| (s, t))
        })
        .collect();
    if columns.is_empty() {
        return String::new();
    }
    // The metric names come from the task registry, which also makes the general average of them.
    let tasks: BTreeSet<&String> = columns.iter().map(|&(_, t)| t).collect();
    let metrics: Vec<String> = tasks
        .into_iter()
        .map(|t| {
            let metric = talr_evals::registry::headline_metric(t).unwrap_or("accuracy");
            format!("{t}: {metric}")
        })
        .collect();
    let mut out = format!(
        "\nEach general benchmark's headline metric ({}), mean over seeds [range].\n\n| method |",
        metrics.join("; ")
    );
    for (s, t) in &columns {
        let _ = write!(out, " {s} {t} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for r in rows {
        let _ = write!(out, "| {} |", label(r));
        for (s, t) in &columns {
            match r.benchmarks.get(*s).and_then(|b| b.get(*t)) {
                Some(e) => {
                    let _ = write!(out, " {} |", cell_text(e));
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("method,learning_rate,style,domain,domain_lo,domain_hi,general,general_lo,general_hi,average,seeds,paper_domain,paper_general,code_length_drift\n");
    for r in rows {
        for (s, (d, g, a)) in &r.cols {
            let _ = writeln!(
                out,
                "{},{},{s},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{}",
                r.method,
                r.learning_rate.map_or(String::new(), |l| format!("{l:e}")),
                d.mean,
                d.lo,
                d.hi,
                g.mean,
                g.lo,
                g.hi,
                a.mean,
                d.n,
                r.paper.map_or(String::new(), |p| p.0.to_string()),
                r.paper.map_or(String::new(), |p| p.1.to_string()),
                r.drift
                    .get(s)
                    .map_or(String::new(), |e| format!("{:.6}", e.mean)),
            );
        }
    }
    out
}

pub fn latex(rows: &[Row], grid: &str) -> String {
    let styles = styles(rows);
    let mut out = String::from("% Generated by `cargo xtask reproduce`; means over seeds.\n");
    let _ = writeln!(
        out,
        "\\begin{{tabular}}{{l{}cc}}",
        "ccc".repeat(styles.len())
    );
    out.push_str("\\toprule\n");
    out.push_str("Method");
    for s in &styles {
        let _ = write!(out, " & \\multicolumn{{3}}{{c}}{{{s}}}");
    }
    out.push_str(" & \\multicolumn{2}{c}{Paper (avg)} \\\\\n");
    for _ in &styles {
        out.push_str(" & Domain & General & Avg");
    }
    out.push_str(" & Domain & General \\\\\n\\midrule\n");
    for r in rows {
        out.push_str(&label(r).replace('_', "\\_"));
        for s in &styles {
            match r.cols.get(s) {
                Some((d, g, a)) => {
                    let _ = write!(out, " & {:.3} & {:.3} & {:.3}", d.mean, g.mean, a.mean);
                }
                None => out.push_str(" & -- & -- & --"),
            }
        }
        match r.paper {
            Some((d, g)) => {
                let _ = writeln!(out, " & {d:.3} & {g:.3} \\\\");
            }
            None => out.push_str(" & -- & -- \\\\\n"),
        }
    }
    let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}\n% grid: {grid}");
    out
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Writes `<root>/<grid>.{md,csv,tex}`, the Markdown with each method against the grid's
/// reference (SFT, or TALR in the τ ablation) seed for seed ([`crate::paired`]); returns the paths
/// (none while the grid has no finished cell: a table of the base model alone says nothing).
pub fn write_grid_tables(results: &[CellResult], grid: &str, root: &Path) -> Result<Vec<PathBuf>> {
    let paired = crate::paired::markdown(&crate::paired::paired_with_reference(results, grid));
    write_rows(&grid_rows(results, grid), grid, root, &paired)
}

fn write_rows(rows: &[Row], grid: &str, root: &Path, md_after: &str) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if rows.iter().all(|r| r.learning_rate.is_none()) {
        return Ok(written);
    }
    for (ext, text) in [
        ("md", markdown(rows, grid) + md_after),
        ("csv", csv(rows)),
        ("tex", latex(rows, grid)),
    ] {
        let path = root.join(format!("{grid}.{ext}"));
        write_atomic(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `<root>/<grid>.{md,csv,tex}` for several models side by side (see [`model_rows`]), the
/// Markdown with each method against the grid's reference per model and pooled over models.
pub fn write_model_tables(
    per_model: &[(String, Vec<CellResult>)],
    grid: &str,
    root: &Path,
) -> Result<Vec<PathBuf>> {
    let paired = crate::paired::markdown_across_models(&crate::paired::paired_across_models(
        per_model, grid,
    ));
    write_rows(&model_rows(per_model, grid), grid, root, &paired)
}

#[cfg(test)]
mod tests;
