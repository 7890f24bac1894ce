//! General code-length drift against the learning rate, with a least-squares fit of Theorem 3.1's
//! k1·Δ + k2·Δ²·λ over the SFT cells.

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

/// Draws `code_length_drift`: every fine-tuned cell's ΔL against its rate, and the fit at each SFT
/// cell.
pub(super) fn draw(
    results: &[CellResult],
    cells: &[&CellResult],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    // Theorem 3.1 models plain fine-tuning, so the fit uses the SFT cells; the other methods are
    // shown beside them, unfitted.
    let base_cl = crate::base_code_lengths(results);
    let (mut sft_drift, mut other_drift) = (Vec::new(), Vec::new());
    for r in cells {
        let (Some(lr), Some(first), Some(last), Some(dl)) = (
            r.learning_rate,
            r.first_mean_nll,
            r.last_mean_nll,
            r.code_length_drift(&base_cl),
        ) else {
            continue;
        };
        let point = (first - last, lr, dl);
        match r.method.as_str() {
            "sft" => sft_drift.push(point),
            _ => other_drift.push(point),
        }
    }
    let scatter = |name: &str, pts: &[(f64, f64, f64)]| {
        Series::scatter(
            name,
            pts.iter().map(|(_, lr, dl)| (lr.log10(), *dl)).collect(),
        )
    };
    // SFT drawn last so that its points stay visible where another method's coincide.
    let mut series = vec![
        scatter("other methods", &other_drift),
        scatter("SFT cells", &sft_drift),
    ];
    if let Some((k1, k2)) = fit_theorem_3_1(&sft_drift) {
        // The fit depends on each cell's own Δ, so it is a value per SFT cell, not a curve over
        // the rate: drawn at each cell, with a whisker to the measured ΔL (the residual).
        let (fitted, residuals) = sft_drift
            .iter()
            .map(|&(d, lr, measured)| {
                let at = (lr.log10(), k1 * d + k2 * d * d * lr);
                (at, Spread::of(&[at, (at.0, measured)]))
            })
            .unzip();
        series.push(
            Series::scatter(
                format!("SFT fit k1={k1:.3}, k2={k2:.3e} (whisker: to the cell)"),
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
