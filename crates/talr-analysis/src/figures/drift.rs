//! General code-length drift against the learning rate, with Theorem 3.1's k1·Δ + k2·Δ²·λ fitted
//! over each target style's SFT cells ([`crate::drift_fit`]).

use crate::chart::{write_chart, Chart, Series, Spread, XScale};
use crate::drift_fit::{fits_per_style, DriftPoint};
use crate::CellResult;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Draws `code_length_drift`: every fine-tuned cell's ΔL against its rate, and each target
/// style's fit at each of its SFT cells.
pub(super) fn draw(results: &[CellResult], out: &Path) -> Result<Vec<PathBuf>> {
    // Theorem 3.1 models plain fine-tuning, so the fit uses the SFT cells; the other methods are
    // shown beside them, unfitted.
    let fits = fits_per_style(results);
    let at_log_rate = |p: &DriftPoint| (p.learning_rate.log10(), p.drift);
    let others = fits.iter().flat_map(|f| f.others.iter().map(at_log_rate));
    let mut series = vec![Series::scatter("other methods", others.collect())];
    let several = fits.len() > 1;
    let named = |name: &str, style: &str| super::style_suffixed(name, style, several);
    // SFT drawn after the other methods so that its points stay visible where theirs coincide.
    for f in &fits {
        let measured = f.sft.iter().map(at_log_rate).collect();
        series.push(Series::scatter(named("SFT cells", &f.style), measured));
    }
    for f in &fits {
        let Some((k1, k2)) = f.k else { continue };
        // The fit depends on each cell's own Δ, so it is a value per SFT cell, not a curve over
        // the rate: drawn at each cell, with a whisker to the measured ΔL (the residual).
        let (fitted, residuals) = f
            .sft
            .iter()
            .filter_map(|p| {
                let at = (p.learning_rate.log10(), f.fitted(p)?);
                Some((at, Spread::of(&[at, (at.0, p.drift)])))
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
