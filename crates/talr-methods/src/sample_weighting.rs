//! Sample weighting: FLOW (per-sample weights from the initial model's losses).

use crate::token_weighting::median;
use anyhow::{ensure, Result};

/// FLOW's weights, computed once before training from one pass of the initial model:
/// L_i = mean token loss of sample i, τ = median over the dataset of L_i,
/// w_i = exp(−L_i / τ), not normalised (defaults of the FLOW authors' code).
pub fn flow_weights(mean_losses: &[f64]) -> Result<(Vec<f64>, f64)> {
    ensure!(!mean_losses.is_empty(), "FLOW: the training set is empty");
    ensure!(
        mean_losses.iter().all(|l| l.is_finite() && *l >= 0.0),
        "FLOW: sample losses must be finite and non-negative"
    );
    let tau = median(mean_losses);
    ensure!(
        tau > 0.0,
        "FLOW: the median sample loss is 0, so τ = 0 (the initial model already fits the data)"
    );
    Ok((mean_losses.iter().map(|l| (-l / tau).exp()).collect(), tau))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_golden_values() {
        // L = [0.5, 1.0, 3.0]: τ = 1.0, w = [e^-0.5, e^-1, e^-3] (no normalisation).
        let (w, tau) = flow_weights(&[0.5, 1.0, 3.0]).unwrap();
        assert_eq!(tau, 1.0);
        let expected = [0.606_530_66, 0.367_879_44, 0.049_787_07];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-8, "{w:?}");
        }
        let err = flow_weights(&[0.0, 0.0, 1.0]).unwrap_err().to_string();
        assert!(err.contains("τ = 0"), "{err}");
    }
}
