//! Token weightings: uniform (standard SFT), TALR, DFT.

use anyhow::{ensure, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Tokens whose probability under the current model is below this count as "hard"
/// (the paper's Theorem 3.2: degradation is driven by the few low-probability tokens).
pub const HARD_TOKEN_PROBABILITY: f64 = 0.2;

/// How TALR picks its temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tau {
    /// τ = median of the batch's token losses, recomputed every step (the paper's choice).
    BatchMedian,
    /// A constant τ (the paper's ablation uses τ = 1).
    Fixed(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenWeighting {
    /// Standard SFT: w_i = 1/n, the mean over the batch's response tokens.
    Uniform,
    /// TALR (Lin et al., 2025, eq. for the closed form of
    ///   min_w Σ w_i ℓ_i + τ Σ w_i log w_i  over the simplex):
    ///   w = softmax(−ℓ/τ), i.e. w_i ∝ p_i^(1/τ),
    /// then floored, w_i ← max(w_i, floor/n).
    ///
    /// The paper leaves the floor, renormalisation, a floor on τ and the scope open; ours:
    /// - `floor` is relative to the uniform weight (default 0.1: every token keeps at least a tenth
    ///   of the weight plain SFT would give it), so it means the same at any batch size;
    /// - `renormalize` (default false) rescales to Σw = 1 after the floor; the paper's loss is
    ///   Σ w_i ℓ_i with the floored weights as they are;
    /// - `tau_min` (default 0.01 nats) keeps τ = median(ℓ) from collapsing to 0 late in training,
    ///   where softmax(−ℓ/τ) would put all weight on the single easiest token;
    /// - scope: the tokens passed in, i.e. one optimiser micro-batch.
    Talr {
        tau: Tau,
        floor: f64,
        renormalize: bool,
        tau_min: f64,
    },
    /// Dynamic fine-tuning (Wu et al., 2025): w_i = p_i / n with p_i = exp(−ℓ_i) detached.
    Dft,
    /// TALR as one public third-party implementation reads it (an ablation row, not our
    /// default): τ = median over the batch's sequences of each sequence's mean token loss
    /// (at least 1e-6), w_i = max(p_i^(1/τ), `weight_floor`) with p_i = max(exp(−ℓ_i), 1e-6), no
    /// normalisation over the simplex; the loss is the mean of w_i·ℓ_i over the tokens.
    TalrSequenceTau { weight_floor: f64 },
}

impl TokenWeighting {
    /// TALR with the defaults documented on [`TokenWeighting::Talr`].
    pub fn talr() -> Self {
        Self::Talr {
            tau: Tau::BatchMedian,
            floor: 0.1,
            renormalize: false,
            tau_min: 0.01,
        }
    }
}

/// What a weighting did on one batch; logged every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightDiagnostics {
    /// The temperature used (TALR only).
    pub tau: Option<f64>,
    /// 1 / Σ ŵ², with ŵ the weights normalised to sum to 1: how many tokens effectively train.
    pub effective_tokens: f64,
    /// Share of tokens with p < 0.2 under the current model.
    pub hard_token_share: f64,
    /// Share of the batch's total weight that those hard tokens get (their share of the gradient
    /// signal): equal to `hard_token_share` for SFT, lower where a weighting favours easy tokens.
    #[serde(default)]
    pub hard_token_weight: f64,
    pub min_weight: f64,
    pub median_weight: f64,
    pub max_weight: f64,
}

pub struct WeightedLoss {
    /// Σ w_i ℓ_i, differentiable through ℓ only.
    pub loss: Tensor,
    /// The detached weights, shape (n,).
    pub weights: Tensor,
    pub diagnostics: WeightDiagnostics,
}

/// Median of a non-empty slice (mean of the two middle values for even lengths).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// softmax(−ℓ/τ), computed stably.
pub fn talr_softmax(losses: &[f64], tau: f64) -> Vec<f64> {
    let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let e: Vec<f64> = losses.iter().map(|l| (-(l - min) / tau).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// τ of [`TokenWeighting::TalrSequenceTau`]: the median of the sequences' mean token losses.
fn median_sequence_loss(losses: &[f64], offsets: &[usize]) -> f64 {
    let means: Vec<f64> = offsets
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| losses[w[0]..w[1]].iter().sum::<f64>() / (w[1] - w[0]) as f64)
        .collect();
    median(&means).max(1e-6)
}

impl TokenWeighting {
    /// Weights for per-token losses `losses` (detached values), the whole batch taken as one
    /// sequence, and the τ used.
    pub fn weights(&self, losses: &[f64]) -> Result<(Vec<f64>, Option<f64>)> {
        self.weights_in_rows(losses, &[0, losses.len()])
    }

    /// Weights for per-token losses `losses` whose rows are `offsets[r]..offsets[r + 1]`, and the
    /// τ used. Only the sequence-τ reading of TALR looks at the rows.
    pub fn weights_in_rows(
        &self,
        losses: &[f64],
        offsets: &[usize],
    ) -> Result<(Vec<f64>, Option<f64>)> {
        ensure!(
            !losses.is_empty(),
            "token weighting: no response tokens in the batch"
        );
        ensure!(
            offsets.first() == Some(&0) && offsets.last() == Some(&losses.len()),
            "token weighting: row offsets {offsets:?} do not span {} tokens",
            losses.len()
        );
        let n = losses.len() as f64;
        Ok(match *self {
            Self::TalrSequenceTau { weight_floor } => {
                let tau = median_sequence_loss(losses, offsets);
                let w = losses
                    .iter()
                    .map(|l| ((-l).exp().max(1e-6)).powf(1.0 / tau).max(weight_floor) / n)
                    .collect();
                (w, Some(tau))
            }
            Self::Uniform => (vec![1.0 / n; losses.len()], None),
            Self::Dft => (losses.iter().map(|l| (-l).exp() / n).collect(), None),
            Self::Talr {
                tau,
                floor,
                renormalize,
                tau_min,
            } => {
                let tau = match tau {
                    Tau::BatchMedian => median(losses),
                    Tau::Fixed(t) => t,
                }
                .max(tau_min);
                let mut w = talr_softmax(losses, tau);
                let w_min = floor / n;
                w.iter_mut().for_each(|x| *x = x.max(w_min));
                if renormalize {
                    let s: f64 = w.iter().sum();
                    w.iter_mut().for_each(|x| *x /= s);
                }
                (w, Some(tau))
            }
        })
    }

    /// Σ w_i·ℓ_i over `nll` (shape (n,)), with weights from its detached values, the whole
    /// batch taken as one sequence.
    pub fn apply(&self, nll: &Tensor) -> Result<WeightedLoss> {
        self.apply_in_rows(nll, &[0, nll.dim(0)?])
    }

    /// Σ w_i·ℓ_i over `nll` (shape (n,)) whose rows are `offsets[r]..offsets[r + 1]`.
    pub fn apply_in_rows(&self, nll: &Tensor, offsets: &[usize]) -> Result<WeightedLoss> {
        let losses: Vec<f64> = nll
            .detach()
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?;
        let (w, tau) = self.weights_in_rows(&losses, offsets)?;
        let diagnostics = diagnostics(&losses, &w, tau);
        let weights = Tensor::new(w.as_slice(), nll.device())?.to_dtype(nll.dtype())?;
        let loss = nll.mul(&weights)?.sum_all()?;
        Ok(WeightedLoss {
            loss,
            weights,
            diagnostics,
        })
    }
}

pub fn diagnostics(losses: &[f64], weights: &[f64], tau: Option<f64>) -> WeightDiagnostics {
    let total: f64 = weights.iter().sum();
    let effective_tokens = if total > 0.0 {
        1.0 / weights.iter().map(|w| (w / total).powi(2)).sum::<f64>()
    } else {
        0.0
    };
    let is_hard = |l: f64| (-l).exp() < HARD_TOKEN_PROBABILITY;
    let hard = losses.iter().filter(|&&l| is_hard(l)).count();
    let hard_weight: f64 = losses
        .iter()
        .zip(weights)
        .filter(|(&l, _)| is_hard(l))
        .map(|(_, w)| w)
        .sum();
    WeightDiagnostics {
        tau,
        effective_tokens,
        hard_token_share: hard as f64 / losses.len() as f64,
        hard_token_weight: if total > 0.0 {
            hard_weight / total
        } else {
            0.0
        },
        min_weight: weights.iter().copied().fold(f64::INFINITY, f64::min),
        median_weight: median(weights),
        max_weight: weights.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn talr_golden_values_by_hand() {
        // ℓ = [0.1, 0.5, 2.0]; median τ = 0.5; w ∝ exp(−ℓ/τ) = [e^-0.2, e^-1, e^-4].
        let l = [0.1, 0.5, 2.0];
        let e = [(-0.2f64).exp(), (-1.0f64).exp(), (-4.0f64).exp()];
        let z: f64 = e.iter().sum();
        let expected_raw: Vec<f64> = e.iter().map(|x| x / z).collect();
        let no_floor = TokenWeighting::Talr {
            tau: Tau::BatchMedian,
            floor: 0.0,
            renormalize: false,
            tau_min: 0.0,
        };
        let (w, tau) = no_floor.weights(&l).unwrap();
        assert_eq!(tau, Some(0.5));
        close(&w, &expected_raw, 1e-12);
        assert!(
            (w.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "sums to 1 before the floor"
        );
        // By hand: e^-0.2 = 0.818731, e^-1 = 0.367879, e^-4 = 0.018316; Σ = 1.204926.
        close(&w, &[0.679_486, 0.305_313, 0.015_201], 1e-6);

        // Default floor 0.1/n = 0.0333 lifts the hard token only.
        let (w, _) = TokenWeighting::talr().weights(&l).unwrap();
        close(&w, &[expected_raw[0], expected_raw[1], 0.1 / 3.0], 1e-12);
        // Renormalised after the floor.
        let renorm = TokenWeighting::Talr {
            tau: Tau::BatchMedian,
            floor: 0.1,
            renormalize: true,
            tau_min: 0.01,
        };
        let (w, _) = renorm.weights(&l).unwrap();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);

        // Even count: median is the mean of the middle two; the τ floor holds near-zero losses.
        let (_, tau) = no_floor.weights(&[0.0, 1.0, 3.0, 4.0]).unwrap();
        assert_eq!(tau, Some(2.0));
        let (_, tau) = TokenWeighting::talr().weights(&[1e-6, 2e-6, 3e-6]).unwrap();
        assert_eq!(tau, Some(0.01));
    }

    #[test]
    fn limits_uniform_and_dft() {
        let l = [0.05, 0.3, 1.2, 4.0, 0.7];
        let (u, _) = TokenWeighting::Uniform.weights(&l).unwrap();
        close(&u, &[0.2; 5], 1e-15);
        // τ → ∞ is uniform.
        let hot = TokenWeighting::Talr {
            tau: Tau::Fixed(1e9),
            floor: 0.0,
            renormalize: false,
            tau_min: 0.0,
        };
        close(&hot.weights(&l).unwrap().0, &u, 1e-8);
        // τ = 1 is DFT normalised over the batch: p_i / Σ p_j.
        let one = TokenWeighting::Talr {
            tau: Tau::Fixed(1.0),
            floor: 0.0,
            renormalize: false,
            tau_min: 0.0,
        };
        let (dft, _) = TokenWeighting::Dft.weights(&l).unwrap();
        let s: f64 = dft.iter().sum();
        let dft_norm: Vec<f64> = dft.iter().map(|w| w / s).collect();
        close(&one.weights(&l).unwrap().0, &dft_norm, 1e-12);
        // DFT by hand: p_i / n.
        close(&dft, &l.map(|x: f64| (-x).exp() / 5.0), 1e-15);
    }

    #[test]
    fn no_gradient_flows_through_the_weights() {
        // d/dℓ_i Σ w_i ℓ_i must be exactly w_i: any path through w would add terms.
        let l = Var::new(&[0.1f64, 0.5, 2.0, 0.02], &Device::Cpu).unwrap();
        for weighting in [
            TokenWeighting::Uniform,
            TokenWeighting::talr(),
            TokenWeighting::Dft,
        ] {
            let out = weighting.apply(l.as_tensor()).unwrap();
            let grads = out.loss.backward().unwrap();
            let g = grads.get(l.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
            let w = out.weights.to_vec1::<f64>().unwrap();
            close(&g, &w, 1e-15);
        }
    }

    #[test]
    fn diagnostics_report_tau_effective_tokens_and_hard_share() {
        let l = [0.01, 0.02, 3.0, 0.05];
        let d = diagnostics(&l, &[0.25; 4], None);
        assert!((d.effective_tokens - 4.0).abs() < 1e-12);
        assert!((d.hard_token_share - 0.25).abs() < 1e-12, "exp(-3) < 0.2");
        assert!(
            (d.hard_token_weight - 0.25).abs() < 1e-12,
            "uniform weights: weight = count"
        );
        let nll = Tensor::new(&l, &Device::Cpu).unwrap();
        let out = TokenWeighting::talr().apply(&nll).unwrap();
        let d = out.diagnostics;
        assert!(d.tau.unwrap() > 0.0 && d.effective_tokens < 4.0);
        // τ = median loss 0.035: the hard token keeps only what the floor gives it.
        assert!(d.hard_token_weight < 0.05, "{}", d.hard_token_weight);
        assert!(d.min_weight <= d.median_weight && d.median_weight <= d.max_weight);
    }

    #[test]
    fn the_sequence_tau_reading_takes_the_median_of_sequence_means_and_does_not_normalise() {
        let weighting = TokenWeighting::TalrSequenceTau { weight_floor: 0.01 };
        // Three sequences with mean losses 0.5, 1.0 and 3.0: τ = 1.0.
        let losses = [0.0, 1.0, 1.0, 2.0, 4.0];
        let offsets = [0, 2, 3, 5];
        let (w, tau) = weighting.weights_in_rows(&losses, &offsets).unwrap();
        assert_eq!(tau, Some(1.0));
        let n = losses.len() as f64;
        let want: Vec<f64> = losses
            .iter()
            .map(|l: &f64| (-l).exp().max(0.01) / n)
            .collect();
        close(&w, &want, 1e-12);
        assert!(
            w.iter().sum::<f64>() < 1.0,
            "not normalised over the simplex"
        );
        // A near-impossible token keeps the floor's weight.
        let (w, tau) = weighting
            .weights_in_rows(&[0.1, 0.2, 30.0], &[0, 1, 2, 3])
            .unwrap();
        assert_eq!(tau, Some(0.2));
        assert!((w[2] - 0.01 / 3.0).abs() < 1e-15, "{w:?}");
        assert!(weighting.weights_in_rows(&losses, &[0, 2]).is_err());
    }
}
