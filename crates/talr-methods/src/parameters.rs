//! Methods that act on parameters rather than on losses: L2 toward the initial weights and
//! WiSE-FT weight averaging.

use anyhow::{bail, ensure, Context, Result};
use candle_core::Tensor;
use std::collections::BTreeMap;

/// λ · mean over all parameter entries of (θ − θ0)², with θ0 frozen (detached).
/// `pairs` are (trainable θ, initial θ0) of the same shapes.
pub fn l2_to_init(pairs: &[(Tensor, Tensor)], lambda: f64) -> Result<Tensor> {
    ensure!(!pairs.is_empty(), "L2-to-init: no parameters");
    let mut total: Option<Tensor> = None;
    let mut count = 0usize;
    for (theta, theta0) in pairs {
        ensure!(
            theta.dims() == theta0.dims(),
            "L2-to-init: shapes {:?} and {:?} differ",
            theta.dims(),
            theta0.dims()
        );
        let sq = theta.sub(&theta0.detach())?.sqr()?.sum_all()?;
        count += theta.elem_count();
        total = Some(match total {
            Some(t) => (t + sq)?,
            None => sq,
        });
    }
    Ok((total.expect("non-empty") * (lambda / count as f64))?)
}

/// WiSE-FT: θ = (1 − α)·θ0 + α·θ_ft for every named tensor. α = 0 and α = 1 return the endpoints
/// exactly (no arithmetic is done on them).
pub fn wise_ft(
    initial: &BTreeMap<String, Tensor>,
    finetuned: &BTreeMap<String, Tensor>,
    alpha: f64,
) -> Result<BTreeMap<String, Tensor>> {
    ensure!(
        (0.0..=1.0).contains(&alpha),
        "WiSE-FT: alpha must be in [0, 1], got {alpha}"
    );
    if let Some(extra) = finetuned.keys().find(|k| !initial.contains_key(*k)) {
        bail!("WiSE-FT: `{extra}` is in the fine-tuned weights but not in the initial ones");
    }
    let mut out = BTreeMap::new();
    for (name, t0) in initial {
        let t1 = finetuned
            .get(name)
            .with_context(|| format!("WiSE-FT: `{name}` is missing from the fine-tuned weights"))?;
        let merged = if alpha == 0.0 {
            t0.clone()
        } else if alpha == 1.0 {
            t1.clone()
        } else {
            ((t0 * (1.0 - alpha))? + (t1 * alpha)?)?
        };
        out.insert(name.clone(), merged);
    }
    Ok(out)
}

/// WiSE-FT at each α of `alphas`, for sweeping the domain/general trade-off.
pub fn wise_ft_sweep(
    initial: &BTreeMap<String, Tensor>,
    finetuned: &BTreeMap<String, Tensor>,
    alphas: &[f64],
) -> Result<Vec<(f64, BTreeMap<String, Tensor>)>> {
    alphas
        .iter()
        .map(|&a| Ok((a, wise_ft(initial, finetuned, a)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn l2_gradient_is_two_lambda_delta_over_n() {
        let theta0 = Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let b0 = Tensor::new(&[0.5f64], &Device::Cpu).unwrap();
        let theta = Var::new(&[[1.5f64, 2.0], [2.0, 4.0]], &Device::Cpu).unwrap();
        let b = Var::new(&[1.5f64], &Device::Cpu).unwrap();
        let lambda = 0.3;
        let reg = l2_to_init(
            &[
                (theta.as_tensor().clone(), theta0.clone()),
                (b.as_tensor().clone(), b0.clone()),
            ],
            lambda,
        )
        .unwrap();
        // N = 5 entries; Σ(Δ²) = 0.25 + 1 + 1 = 2.25 → 0.3 · 2.25 / 5 = 0.135.
        assert!((reg.to_scalar::<f64>().unwrap() - 0.135).abs() < 1e-12);
        let grads = reg.backward().unwrap();
        let g = grads
            .get(theta.as_tensor())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let expected = [[2.0 * lambda * 0.5 / 5.0, 0.0], [-2.0 * lambda / 5.0, 0.0]];
        for (row, erow) in g.iter().zip(expected) {
            for (a, b) in row.iter().zip(erow) {
                assert!((a - b).abs() < 1e-12, "{g:?}");
            }
        }
    }

    #[test]
    fn wise_ft_endpoints_are_exact_and_midpoint_interpolates() {
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        a.insert(
            "w".to_string(),
            Tensor::new(&[0.1f32, 0.7], &Device::Cpu).unwrap(),
        );
        b.insert(
            "w".to_string(),
            Tensor::new(&[0.3f32, -0.9], &Device::Cpu).unwrap(),
        );
        let sweep = wise_ft_sweep(&a, &b, &[0.0, 0.5, 1.0]).unwrap();
        let v = |m: &BTreeMap<String, Tensor>| m["w"].to_vec1::<f32>().unwrap();
        assert_eq!(v(&sweep[0].1), vec![0.1, 0.7]);
        assert_eq!(v(&sweep[2].1), vec![0.3, -0.9]);
        let mid = v(&sweep[1].1);
        assert!((mid[0] - 0.2).abs() < 1e-7 && (mid[1] + 0.1).abs() < 1e-7);

        b.insert(
            "extra".to_string(),
            Tensor::new(&[1f32], &Device::Cpu).unwrap(),
        );
        let err = wise_ft(&a, &b, 0.5).unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
        let err = wise_ft(&a, &a, 1.5).unwrap_err().to_string();
        assert!(err.contains("alpha"), "{err}");
    }
}
