//! A grid's headline table, one per target style: each method's scores beside its difference
//! from the reference method (SFT) item by item. It is the table a README quotes, so it holds
//! means only: the seeds' ranges are in `<grid>.md`, the tests and detectable differences in
//! `<grid>_items.md`.

use crate::item_paired::{ItemComparison, ItemRow};
use crate::tables::{grid_rows, paper_rate, rate_text, signed_text, styles, write_atomic, Row};
use crate::CellResult;
use anyhow::Result;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn difference_text(c: &ItemComparison) -> String {
    format!("{:+.3} [{:+.3}, {:+.3}]", c.difference, c.lo, c.hi)
}

/// The headline tables of `grid` from its rows ([`grid_rows`]) and item comparisons against
/// `reference` ([`item_rows`](crate::item_paired::item_rows)); empty when the grid has no
/// fine-tuned row.
pub fn markdown(rows: &[Row], items: &[ItemRow], reference: &str, grid: &str) -> String {
    let mut out = String::new();
    for style in styles(rows) {
        let tasks: BTreeSet<&String> = rows
            .iter()
            .filter_map(|r| r.benchmarks.get(&style))
            .flat_map(|b| b.keys())
            .collect();
        let _ = write!(
            out,
            "### {grid}, {style} targets\n\n\
             Scores are means over the seeds. General: the mean of {}. ΔL: general code-length \
             drift from the base model (nats/token, lower keeps more). Against {reference}: the \
             method's score minus {reference}'s on the same items, rate and seeds, with a 95% \
             paired bootstrap interval over items. Ranges over seeds: `{grid}.md`; McNemar tests \
             and the smallest detectable differences: `{}_items.md`.\n\n\
             | method | seeds | domain | general |",
            tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            grid.replace('-', "_"),
        );
        for t in &tasks {
            let _ = write!(out, " {t} |");
        }
        // The paper's averages, where it reports the grid's methods, for another scale and rate.
        let paper = paper_rate(grid).filter(|_| rows.iter().any(|r| r.paper.is_some()));
        let _ = write!(out, " ΔL | domain − {reference} | general − {reference} |");
        if let Some(rate) = paper {
            let _ = write!(out, " paper, 3-4B models at lr {rate}: domain / general |");
        }
        let _ = writeln!(
            out,
            "\n|---|{}",
            "---|".repeat(tasks.len() + 6 + usize::from(paper.is_some()))
        );
        for r in rows {
            let Some((domain, general, _)) = r.cols.get(&style) else {
                continue;
            };
            let (name, seeds) = match rate_text(r) {
                Some(rate) => (format!("{} (lr {rate})", r.method), domain.n.to_string()),
                None => ("base model".to_string(), "–".to_string()),
            };
            let _ = write!(
                out,
                "| {name} | {seeds} | {:.3} | {:.3} |",
                domain.mean, general.mean
            );
            for t in &tasks {
                match r.benchmarks.get(&style).and_then(|b| b.get(*t)) {
                    Some(e) => {
                        let _ = write!(out, " {:.3} |", e.mean);
                    }
                    None => out.push_str(" – |"),
                }
            }
            match r.drift.get(&style) {
                Some(e) => {
                    let _ = write!(out, " {} |", signed_text(e.mean));
                }
                None => out.push_str(" – |"),
            }
            let item = items.iter().find(|i| {
                i.method == r.method && i.style == style && Some(i.learning_rate) == r.learning_rate
            });
            let text = |c: &Option<ItemComparison>| c.as_ref().map_or("–".into(), difference_text);
            match item {
                Some(i) => {
                    let _ = write!(out, " {} | {} |", text(&i.domain), text(&i.general));
                }
                None => out.push_str(" – | – |"),
            }
            if paper.is_some() {
                match r.paper {
                    Some((d, g)) => {
                        let _ = write!(out, " {d:.3} / {g:.3} |");
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Writes `<root>/<grid>_summary.md` from the grid's cells and [`item_rows`](crate::item_paired::item_rows); nothing while the
/// grid has no finished fine-tuned cell.
pub fn write_summary(
    results: &[CellResult],
    items: &[ItemRow],
    grid: &str,
    root: &Path,
) -> Result<Option<PathBuf>> {
    let reference = crate::paired::reference_method(results, grid).unwrap_or("sft");
    let text = markdown(&grid_rows(results, grid), items, reference, grid);
    if text.is_empty() {
        return Ok(None);
    }
    let path = root.join(format!("{}_summary.md", grid.replace('-', "_")));
    write_atomic(&path, &text)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(method: &str, seed: u64, style: &str, domain: f64, ifeval: f64) -> CellResult {
        let mut c = crate::test_cell(method, seed, domain, ifeval, &[("gsm8k", 1.0)]);
        c.style = style.into();
        c.general.insert("ifeval".into(), ifeval);
        c
    }

    fn comparison(difference: f64) -> ItemComparison {
        ItemComparison {
            pairs: 110,
            difference,
            lo: difference - 0.05,
            hi: difference + 0.05,
            only_method: 3,
            only_reference: 1,
            mcnemar_p: 0.625,
            min_detectable: 0.07,
        }
    }

    #[test]
    fn each_style_gets_a_table_with_the_item_paired_differences_against_sft() {
        let mut base = cell("base", 0, "label-only", 0.0, 0.2);
        base.code_length.insert("gsm8k".into(), 0.5);
        let results = [
            base,
            cell("sft", 0, "label-only", 0.1, 0.1),
            cell("sft", 1, "label-only", 0.3, 0.1),
            cell("talr", 0, "label-only", 0.2, 0.3),
            cell("talr", 0, "cot", 0.4, 0.2),
        ];
        let items = [ItemRow {
            method: "talr".into(),
            reference: "sft".into(),
            learning_rate: 3e-4,
            style: "label-only".into(),
            seeds: vec![0],
            domain: Some(comparison(0.1)),
            general: Some(comparison(-0.02)),
        }];
        let md = markdown(&grid_rows(&results, "table2"), &items, "sft", "table2");
        assert!(md.contains("### table2, label-only targets"), "{md}");
        assert!(md.contains("| domain − sft | general − sft |"), "{md}");
        assert!(
            md.contains("| base model | – | 0.000 | 0.200 | 0.200 | – | – | – |"),
            "{md}"
        );
        // SFT's two seeds are averaged; its ΔL is 1.0 − 0.5 at both. The paper's averages stand
        // beside the methods it reports, labelled with their scale and rate.
        assert!(
            md.contains("| paper, 3-4B models at lr 5e-6: domain / general |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| sft (lr 3e-4) | 2 | 0.200 | 0.100 | 0.100 | +0.500 | – | – | 0.558 / 0.381 |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| base model | – | 0.000 | 0.200 | 0.200 | – | – | – | – |\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| talr (lr 3e-4) | 1 | 0.200 | 0.300 | 0.300 | +0.500 | +0.100 [+0.050, +0.150] | -0.020 [-0.070, +0.030] |"
            ),
            "{md}"
        );
        // The CoT table has TALR alone, with no comparison to show.
        let cot = &md[md.find("### table2, cot targets").expect("a CoT table")..];
        assert!(
            cot.contains("| talr (lr 3e-4) | 1 | 0.400 | 0.200 | 0.200 | +0.500 | – | – |"),
            "{cot}"
        );
        assert!(!cot.contains("| sft"), "{cot}");
    }

    #[test]
    fn a_grid_with_only_the_base_model_has_no_summary() {
        let results = [cell("base", 0, "label-only", 0.0, 0.2)];
        assert_eq!(
            markdown(&grid_rows(&results, "table2"), &[], "sft", "table2"),
            ""
        );
    }
}
