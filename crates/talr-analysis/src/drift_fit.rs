//! Theorem 3.1's ΔL ≈ k1·Δ + k2·Δ²·λ, fitted per target style over its SFT cells, and every other
//! method's cell set against that fit at its own Δ and λ.
//!
//! Δ is the drop in training NLL from the first step to the last (nats/token), λ the learning
//! rate and ΔL the general code-length drift. A method that drifts less than SFT only because it
//! learned less lands on SFT's fit; one that protects general skills lands below it. The
//! residual against the fit says which, where the raw ΔL cannot.

use crate::CellResult;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Least squares for ΔL ≈ k1·Δ + k2·Δ²·λ over (Δ, λ, ΔL) points; returns (k1, k2).
pub fn fit_theorem_3_1(points: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    // Normal equations of the 2-parameter linear model.
    let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(d, lr, dl) in points {
        let (u, v) = (d, d * d * lr);
        a11 += u * u;
        a12 += u * v;
        a22 += v * v;
        b1 += u * dl;
        b2 += v * dl;
    }
    let det = a11 * a22 - a12 * a12;
    if det.abs() < 1e-300 || points.len() < 2 {
        return None;
    }
    Some(((b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det))
}

/// One fine-tuned cell as the fit sees it.
#[derive(Debug, Clone)]
pub struct DriftPoint<'a> {
    pub cell: &'a CellResult,
    /// Δ: first-step minus last-step mean training NLL (nats/token).
    pub nll_drop: f64,
    /// λ: the grid's learning rate for the cell.
    pub learning_rate: f64,
    /// ΔL: general code-length drift against the base model (nats/token).
    pub drift: f64,
}

impl DriftPoint<'_> {
    fn as_fit_input(&self) -> (f64, f64, f64) {
        (self.nll_drop, self.learning_rate, self.drift)
    }

    /// An adapter's step moves other parameters than full fine-tuning's, so the full-model fit
    /// says nothing about it.
    fn is_adapter(&self) -> bool {
        let adapter = &self.cell.config["method"]["adapter"];
        !(adapter.is_null() || adapter == "full")
    }
}

/// One target style's SFT cells, the fit over them, and the style's other cells.
#[derive(Debug)]
pub struct StyleFit<'a> {
    pub style: String,
    pub sft: Vec<DriftPoint<'a>>,
    pub others: Vec<DriftPoint<'a>>,
    /// `None` when the SFT cells span fewer than two rates (at one rate the Δ²·λ term is just a
    /// Δ² term and says nothing about λ).
    pub k: Option<(f64, f64)>,
}

impl StyleFit<'_> {
    /// The style's fitted ΔL at `p`'s own Δ and λ. `None` without a fit, for an adapter cell,
    /// and where training NLL rose (Δ ≤ 0): the theorem's Δ is a gain on the domain, and its
    /// Δ² term would count a loss as one.
    pub fn fitted(&self, p: &DriftPoint) -> Option<f64> {
        let (k1, k2) = self.k?;
        let d = p.nll_drop;
        (d > 0.0 && !p.is_adapter()).then_some(k1 * d + k2 * d * d * p.learning_rate)
    }

    /// ΔL − fit: below zero, `p` drifts less than SFT does for the same drop in NLL and rate.
    pub fn residual(&self, p: &DriftPoint) -> Option<f64> {
        Some(p.drift - self.fitted(p)?)
    }
}

/// Fits Theorem 3.1 per target style, label-only first. The constants depend on the fine-tuning
/// data: a 141-token CoT target and a 13-token label move the model differently for the same drop
/// in NLL, so one fit over both styles describes neither. Cells without a rate, training NLL or
/// drift (the base model among them) are left out.
pub fn fits_per_style(results: &[CellResult]) -> Vec<StyleFit<'_>> {
    let base_cl = crate::base_code_lengths(results);
    let mut fits: Vec<StyleFit> = Vec::new();
    for r in results.iter().filter(|r| !r.is_base()) {
        let (Some(learning_rate), Some(first), Some(last), Some(drift)) = (
            r.learning_rate,
            r.first_mean_nll,
            r.last_mean_nll,
            r.code_length_drift(&base_cl),
        ) else {
            continue;
        };
        let point = DriftPoint {
            cell: r,
            nll_drop: first - last,
            learning_rate,
            drift,
        };
        let i = match fits.iter().position(|f| f.style == r.style) {
            Some(i) => i,
            None => {
                fits.push(StyleFit {
                    style: r.style.clone(),
                    sft: Vec::new(),
                    others: Vec::new(),
                    k: None,
                });
                fits.len() - 1
            }
        };
        match r.method.as_str() {
            "sft" => fits[i].sft.push(point),
            _ => fits[i].others.push(point),
        }
    }
    fits.sort_by_key(|f| (f.style != "label-only", f.style.clone()));
    for f in &mut fits {
        let spans_rates = f
            .sft
            .iter()
            .any(|p| p.learning_rate != f.sft[0].learning_rate);
        let points: Vec<_> = f.sft.iter().map(DriftPoint::as_fit_input).collect();
        f.k = spans_rates.then(|| fit_theorem_3_1(&points)).flatten();
        for points in [&mut f.sft, &mut f.others] {
            points.sort_by(|a, b| {
                crate::method_rank(&a.cell.method)
                    .cmp(&crate::method_rank(&b.cell.method))
                    .then(a.learning_rate.total_cmp(&b.learning_rate))
                    .then(a.cell.seed.cmp(&b.cell.seed))
            });
        }
    }
    fits
}

fn signed(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:+.3}"))
}

/// The fits and every cell against its style's fit, as Markdown.
pub fn markdown(fits: &[StyleFit]) -> String {
    let mut out = String::from(
        "### Theorem 3.1: general code-length drift against the drop in training NLL\n\n\
         ΔL ≈ k1·Δ + k2·Δ²·λ, fitted by least squares over each target style's SFT cells \
         (Δ = first-step minus last-step training NLL, λ = learning rate, ΔL = general \
         code-length drift, all in nats/token). Every other cell is set against its style's fit \
         at its own Δ and λ: ΔL − fit below zero drifts less than SFT does for the same drop in \
         NLL at the same rate. LoRA cells get no fit value (an adapter's step is another \
         parameterisation than the full fine-tuning the fit is made of), nor do cells whose \
         training NLL rose (Δ ≤ 0: the theorem's Δ is a gain).\n",
    );
    for f in fits {
        let _ = write!(out, "\n#### {}: ", f.style);
        match f.k {
            Some((k1, k2)) => {
                let worst = f
                    .sft
                    .iter()
                    .filter_map(|p| Some(f.residual(p)?.abs()))
                    .fold(0.0, f64::max);
                let _ = writeln!(
                    out,
                    "k1 = {k1:.3}, k2 = {k2:.3e} over {} SFT cells (largest |ΔL − fit| {worst:.3})\n",
                    f.sft.len()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "no fit: its SFT cells span fewer than two learning rates ({} of them)\n",
                    f.sft.len()
                );
            }
        }
        out.push_str(
            "| method | lr | seed | Δ | ΔL | fit | ΔL − fit |\n|---|---|---|---|---|---|---|\n",
        );
        for p in f.sft.iter().chain(&f.others) {
            let _ = writeln!(
                out,
                "| {} | {:.0e} | {} | {:.3} | {:+.3} | {} | {} |",
                p.cell.method,
                p.learning_rate,
                p.cell.seed,
                p.nll_drop,
                p.drift,
                signed(f.fitted(p)),
                signed(f.residual(p)),
            );
        }
    }
    out
}

/// The same rows as CSV, one line per cell, with the style's constants on each line.
pub fn csv(fits: &[StyleFit]) -> String {
    let mut out = String::from("style,method,lr,seed,cell,nll_drop,drift,k1,k2,fit,residual\n");
    let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
    for f in fits {
        for p in f.sft.iter().chain(&f.others) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                f.style,
                p.cell.method,
                p.learning_rate,
                p.cell.seed,
                p.cell.cell,
                p.nll_drop,
                p.drift,
                opt(f.k.map(|k| k.0)),
                opt(f.k.map(|k| k.1)),
                opt(f.fitted(p)),
                opt(f.residual(p)),
            );
        }
    }
    out
}

/// Writes `<root>/drift_fit.{md,csv}`; nothing while no style has a fine-tuned cell.
pub fn write_tables(results: &[CellResult], root: &Path) -> Result<Vec<PathBuf>> {
    let fits = fits_per_style(results);
    if fits.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for (ext, text) in [("md", markdown(&fits)), ("csv", csv(&fits))] {
        let path = root.join(format!("drift_fit.{ext}"));
        crate::tables::write_atomic(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell whose drift follows (k1, k2) exactly, plus `excess`, against a base code length 1.0.
    fn cell(method: &str, style: &str, d: f64, lr: f64, k: (f64, f64), excess: f64) -> CellResult {
        let drift = k.0 * d + k.1 * d * d * lr + excess;
        let mut c = crate::test_cell(method, 0, 0.0, 0.1, &[("humaneval", 1.0 + drift)]);
        c.style = style.into();
        c.learning_rate = Some(lr);
        c.first_mean_nll = Some(2.0);
        c.last_mean_nll = Some(2.0 - d);
        c
    }

    fn base() -> CellResult {
        crate::test_cell("base", 0, 0.0, 0.1, &[("humaneval", 1.0)])
    }

    #[test]
    fn each_target_style_gets_its_own_fit() {
        let (label, cot) = ((0.2, 50.0), (0.05, 5.0));
        let mut results = vec![base()];
        for (d, lr) in [(0.5, 1e-4), (1.0, 1e-3), (1.5, 3e-4)] {
            results.push(cell("sft", "cot", d, lr, cot, 0.0));
            results.push(cell("sft", "label-only", d * 1.3, lr, label, 0.0));
        }
        // A style run at one rate only is listed but not fitted.
        results.push(cell("sft", "other-style", 1.0, 3e-4, cot, 0.0));
        results.push(cell("sft", "other-style", 0.5, 3e-4, cot, 0.0));
        results.push(cell("talr", "label-only", 1.0, 3e-4, label, 0.3));

        let fits = fits_per_style(&results);
        let styles: Vec<&str> = fits.iter().map(|f| f.style.as_str()).collect();
        assert_eq!(styles, ["label-only", "cot", "other-style"]);
        assert!(fits[2].k.is_none() && fits[2].sft.len() == 2);
        assert_eq!(fits[0].others.len(), 1, "other methods are not fitted");
        for (f, (k1, k2)) in fits[..2].iter().zip([label, cot]) {
            let (fk1, fk2) = f.k.unwrap();
            assert!(
                (fk1 - k1).abs() < 1e-9 && (fk2 - k2).abs() < 1e-6,
                "{}: {fk1} {fk2}",
                f.style
            );
        }
    }

    #[test]
    fn other_methods_are_measured_against_their_styles_sft_fit() {
        let k = (-0.02, 700.0);
        let mut results = vec![base()];
        for (d, lr) in [(0.6, 1e-5), (1.2, 1e-4), (1.3, 3e-4)] {
            results.push(cell("sft", "cot", d, lr, k, 0.0));
        }
        // On SFT's curve for its own (smaller) drop, then below it, then an adapter.
        results.push(cell("talr", "cot", 1.1, 1e-4, k, 0.0));
        results.push(cell("wise_ft", "cot", 1.3, 3e-4, k, -0.25));
        // Training NLL that rose is no gain to set against the fit.
        results.push(cell("dft", "cot", -0.4, 3e-4, k, 0.5));
        let mut lora = cell("lora", "cot", 1.2, 3e-4, k, -0.1);
        lora.config = serde_json::json!({"method": {"adapter": {"lora": {"rank": 64}}}});
        results.push(lora);

        let fits = fits_per_style(&results);
        let f = &fits[0];
        let residual = |method: &str| {
            let p = f.others.iter().find(|p| p.cell.method == method).unwrap();
            f.residual(p)
        };
        assert!(residual("talr").unwrap().abs() < 1e-9);
        assert!((residual("wise_ft").unwrap() + 0.25).abs() < 1e-9);
        assert_eq!(
            residual("lora"),
            None,
            "an adapter is not set against the fit"
        );
        assert_eq!(
            residual("dft"),
            None,
            "a rise in NLL is not set against the fit"
        );

        let md = markdown(&fits);
        assert!(
            md.contains("k1 = -0.020, k2 = 7.000e2 over 3 SFT cells"),
            "{md}"
        );
        assert!(md.contains("| wise_ft | 3e-4 | 0 | 1.300 | "), "{md}");
        assert!(md.contains("| -0.250 |"), "{md}");
        assert!(
            md.contains("| lora | 3e-4 | 0 | 1.200 | +0.178 | – | – |"),
            "{md}"
        );
        let csv = csv(&fits);
        assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    }

    #[test]
    fn theorem_fit_recovers_known_coefficients() {
        let pts: Vec<(f64, f64, f64)> = [(0.5, 1e-4), (1.0, 1e-3), (1.5, 3e-4), (2.0, 1e-3)]
            .iter()
            .map(|&(d, lr)| (d, lr, 0.2 * d + 50.0 * d * d * lr))
            .collect();
        let (k1, k2) = fit_theorem_3_1(&pts).unwrap();
        assert!(
            (k1 - 0.2).abs() < 1e-9 && (k2 - 50.0).abs() < 1e-6,
            "{k1} {k2}"
        );
    }
}
