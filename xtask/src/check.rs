//! `cargo xtask check`: first, every preset's committed tables must be what its committed cells
//! give and its cells must name clean commits (`committed`); then it reruns the smoke preset's
//! table2 in a scratch directory and compares every result with the committed `results/smoke/`:
//! metrics within an absolute tolerance, losses and code lengths within a relative one. Prints a
//! readable diff and fails on any difference.

mod committed;

use anyhow::{bail, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Accuracy-like metrics may move by at most this much.
const METRIC_ABS_TOL: f64 = 1e-6;
/// Losses, NLLs and code lengths may move by at most this fraction.
const LOSS_REL_TOL: f64 = 1e-3;

fn is_loss_like(path: &str) -> bool {
    ["nll", "loss", "code_length", "tau"]
        .iter()
        .any(|k| path.contains(k))
}

/// Compares the numeric leaves of `want` and `got` under the result keys that matter.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, out),
                    None => out.push(format!("  {p}: missing in the rerun")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            let ok = if is_loss_like(path) {
                (a - b).abs() <= LOSS_REL_TOL * a.abs().max(1e-9)
            } else {
                (a - b).abs() <= METRIC_ABS_TOL
            };
            if !ok {
                out.push(format!(
                    "  {path}: committed {a:.6}, now {b:.6} ({:+.6})",
                    b - a
                ));
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: committed {a}, now {b}")),
        _ => {}
    }
}

/// A cell's identity across config changes: what it is, not its config hash.
fn cell_key(v: &Value) -> String {
    format!(
        "{} {} lr {} seed {}",
        v["method"].as_str().unwrap_or("?"),
        v["style"].as_str().unwrap_or("?"),
        v["learning_rate"],
        v["seed"]
    )
}

fn compare(name: &str, want: &Value, got: &Value, report: &mut Vec<String>) {
    let mut out = Vec::new();
    for key in ["config", "metrics", "training"] {
        if let Some(w) = want.get(key) {
            diff(key, w, got.get(key).unwrap_or(&Value::Null), &mut out);
        }
    }
    if !out.is_empty() {
        report.push(format!("{name}:\n{}", out.join("\n")));
    }
}

/// Result files under `root` (base and cells), keyed by what they are.
fn results_by_key(root: &Path) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for record in talr_analysis::ResultsDir::new(root).records()? {
        let v = serde_json::to_value(&record)?;
        out.insert(cell_key(&v), v);
    }
    Ok(out)
}

/// The committed-results half of the check over every preset with committed results.
fn check_committed() -> Result<()> {
    let repo = crate::repo_root();
    let mut report = Vec::new();
    let mut checked = Vec::new();
    for name in crate::spec::preset_names() {
        if !repo.join("results").join(&name).is_dir() {
            continue;
        }
        let preset = crate::spec::load_preset(&name)?;
        let files = committed::tracked(&repo, &name)?;
        let mut problems = committed::provenance_problems(&repo, &name, &files)?;
        problems.extend(committed::table_problems(&repo, &preset, &files)?);
        if !problems.is_empty() {
            report.push(format!("results/{name}:\n{}", problems.join("\n")));
        }
        checked.push(name);
    }
    if !report.is_empty() {
        bail!(
            "committed results disagree with themselves:\n{}\n\nIf the analysis changed on purpose, \
             `cargo xtask collect all --preset NAME` rewrites a preset's tables from its cells; \
             commit them with the change.",
            report.join("\n")
        );
    }
    println!(
        "check passed: the committed tables of {} are what their committed cells give",
        checked.join(", ")
    );
    Ok(())
}

pub fn run() -> Result<()> {
    check_committed()?;
    let committed = crate::repo_root().join("results").join("smoke");
    if !committed.exists() {
        bail!("no committed {} to check against; run `cargo xtask reproduce table2 --preset smoke` and commit it", committed.display());
    }
    let scratch = tempfile::tempdir()?;
    let args = crate::ReproduceArgs {
        table: "table2".into(),
        preset: "smoke".into(),
        seeds: None,
        limit: None,
        styles: Vec::new(),
        methods: Vec::new(),
        jobs: 1,
        shard: None,
        dry_run: false,
        // The rerun goes to a scratch directory and is only compared, never kept.
        allow_dirty: true,
        results: Some(scratch.path().to_path_buf()),
        // The committed smoke results were computed on the CPU; another device's rounding
        // would show up as a diff that is not a regression.
        device: talr_model::DeviceSpec::Cpu,
    };
    let fresh = results_by_key(&crate::reproduce(&args)?)?;
    let want = results_by_key(&committed)?;
    let mut report = Vec::new();
    for (key, got) in &fresh {
        match want.get(key) {
            Some(w) => compare(key, w, got, &mut report),
            None => report.push(format!("{key}: not in the committed results")),
        }
    }
    for key in want.keys().filter(|k| !fresh.contains_key(*k)) {
        report.push(format!("{key}: committed but not produced by the rerun"));
    }
    if !report.is_empty() {
        bail!(
            "smoke results differ from results/smoke/ in {} of {} results:\n{}\n\nIf the change is intended, rerun `cargo xtask reproduce table2 --preset smoke` and commit results/smoke/.",
            report.len(),
            fresh.len(),
            report.join("\n")
        );
    }
    println!(
        "check passed: {} smoke results match results/smoke/",
        fresh.len()
    );
    Ok(())
}
