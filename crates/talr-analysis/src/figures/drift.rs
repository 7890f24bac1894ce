//! General code-length drift against the learning rate, with a least-squares fit of Theorem 3.1's
//! k1·Δ + k2·Δ²·λ over each target style's SFT cells.

use crate::chart::{write_chart, Chart, Series, Spread, XScale};
use crate::CellResult;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Least squares for ΔL ≈ k1·Δ + k2·Δ²·λ; returns (k1, k2).
pub fn fit_theorem_3_1(points: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    // points: (Δ, λ, ΔL); normal equations of the 2-parameter linear model.
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

/// One target style's SFT cells as (Δ, λ, ΔL) and Theorem 3.1's fit over them.
struct StyleFit {
    style: String,
    sft: Vec<(f64, f64, f64)>,
    k: Option<(f64, f64)>,
}

/// Fits Theorem 3.1 per target style, label-only first. Its constants depend on the fine-tuning
/// data: a 141-token CoT target and a 13-token label move the model differently for the same drop
/// in NLL, so one fit over both styles describes neither. Returns the fits and the other methods'
/// (λ, ΔL) points, which are drawn unfitted.
fn fits_per_style(
    results: &[CellResult],
    cells: &[&CellResult],
) -> (Vec<StyleFit>, Vec<(f64, f64)>) {
    let base_cl = crate::base_code_lengths(results);
    let mut fits: Vec<StyleFit> = Vec::new();
    let mut others = Vec::new();
    for r in cells {
        let (Some(lr), Some(first), Some(last), Some(dl)) = (
            r.learning_rate,
            r.first_mean_nll,
            r.last_mean_nll,
            r.code_length_drift(&base_cl),
        ) else {
            continue;
        };
        if r.method != "sft" {
            others.push((lr, dl));
            continue;
        }
        let point = (first - last, lr, dl);
        match fits.iter_mut().find(|f| f.style == r.style) {
            Some(f) => f.sft.push(point),
            None => fits.push(StyleFit {
                style: r.style.clone(),
                sft: vec![point],
                k: None,
            }),
        }
    }
    fits.sort_by_key(|f| (f.style != "label-only", f.style.clone()));
    for f in &mut fits {
        // At one rate the Δ²·λ term is just a Δ² term: the fit would say nothing about λ.
        let spans_rates = f.sft.iter().any(|p| p.1 != f.sft[0].1);
        f.k = spans_rates.then(|| fit_theorem_3_1(&f.sft)).flatten();
    }
    (fits, others)
}

/// Draws `code_length_drift`: every fine-tuned cell's ΔL against its rate, and each target
/// style's fit at each of its SFT cells.
pub(super) fn draw(
    results: &[CellResult],
    cells: &[&CellResult],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    // Theorem 3.1 models plain fine-tuning, so the fit uses the SFT cells; the other methods are
    // shown beside them, unfitted.
    let (fits, others) = fits_per_style(results, cells);
    let log_rate = |pts: &[(f64, f64)]| pts.iter().map(|(lr, dl)| (lr.log10(), *dl)).collect();
    let mut series = vec![Series::scatter("other methods", log_rate(&others))];
    let several = fits.len() > 1;
    let named = |name: &str, style: &str| super::style_suffixed(name, style, several);
    // SFT drawn after the other methods so that its points stay visible where theirs coincide.
    for f in &fits {
        let measured: Vec<(f64, f64)> = f.sft.iter().map(|&(_, lr, dl)| (lr, dl)).collect();
        series.push(Series::scatter(
            named("SFT cells", &f.style),
            log_rate(&measured),
        ));
    }
    for f in &fits {
        let Some((k1, k2)) = f.k else { continue };
        // The fit depends on each cell's own Δ, so it is a value per SFT cell, not a curve over
        // the rate: drawn at each cell, with a whisker to the measured ΔL (the residual).
        let (fitted, residuals) = f
            .sft
            .iter()
            .map(|&(d, lr, measured)| {
                let at = (lr.log10(), k1 * d + k2 * d * d * lr);
                (at, Spread::of(&[at, (at.0, measured)]))
            })
            .unzip();
        series.push(
            Series::scatter(
                format!(
                    "{} k1={k1:.3}, k2={k2:.3e} (whisker: to the cell)",
                    named("SFT fit", &f.style)
                ),
                fitted,
            )
            .with_spreads(residuals),
        );
    }
    write_chart(
        out,
        "code_length_drift",
        &Chart {
            title: "General code-length drift ΔL vs learning rate".into(),
            x_label: "learning rate (log scale)".into(),
            x_scale: XScale::Log10,
            y_label: "ΔL (nats/token)".into(),
            series,
            name_points: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_style_gets_its_own_fit() {
        // Base code length 1.0; each cell's drift follows its style's own constants.
        let base = crate::test_cell("base", 0, 0.0, 0.1, &[("humaneval", 1.0)]);
        let sft = |style: &str, d: f64, lr: f64, (k1, k2): (f64, f64)| {
            let mut c = crate::test_cell("sft", 0, 0.0, 0.1, &[("humaneval", 1.0)]);
            c.code_length
                .insert("humaneval".into(), 1.0 + k1 * d + k2 * d * d * lr);
            c.style = style.into();
            c.learning_rate = Some(lr);
            c.first_mean_nll = Some(2.0);
            c.last_mean_nll = Some(2.0 - d);
            c
        };
        let (label, cot) = ((0.2, 50.0), (0.05, 5.0));
        let mut results = vec![base];
        for (d, lr) in [(0.5, 1e-4), (1.0, 1e-3), (1.5, 3e-4)] {
            results.push(sft("cot", d, lr, cot));
            results.push(sft("label-only", d * 1.3, lr, label));
        }
        // A style run at one rate only is drawn but not fitted.
        results.push(sft("other-style", 1.0, 3e-4, cot));
        results.push(sft("other-style", 0.5, 3e-4, cot));
        let mut talr = sft("label-only", 1.0, 3e-4, (9.0, 9.0));
        talr.method = "talr".into();
        results.push(talr);
        let cells: Vec<&CellResult> = results.iter().filter(|r| !r.is_base()).collect();

        let (fits, others) = fits_per_style(&results, &cells);
        let styles: Vec<&str> = fits.iter().map(|f| f.style.as_str()).collect();
        assert_eq!(styles, ["label-only", "cot", "other-style"]);
        assert!(fits[2].k.is_none() && fits[2].sft.len() == 2);
        assert_eq!(others.len(), 1, "other methods are drawn, not fitted");
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
