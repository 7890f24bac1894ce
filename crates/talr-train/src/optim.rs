//! AdamW with f32 moments, learning-rate schedules with warm-up, global-norm clipping.

use crate::config::{Schedule, TrainingSpec};
use anyhow::Result;
use candle_core::{DType, Tensor, Var};
use std::collections::BTreeMap;

/// AdamW (decoupled weight decay). Moments are kept in f32 whatever the parameter dtype.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimiser steps taken so far (bias correction uses step + 1 for the next one).
    pub step: usize,
    pub m: BTreeMap<String, Tensor>,
    pub v: BTreeMap<String, Tensor>,
}

impl AdamW {
    pub fn new(spec: &TrainingSpec, params: &[(String, Var)]) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like()?.to_dtype(DType::F32);
        let mut m = BTreeMap::new();
        let mut vv = BTreeMap::new();
        for (name, var) in params {
            m.insert(name.clone(), zeros(var)?);
            vv.insert(name.clone(), zeros(var)?);
        }
        Ok(Self {
            beta1: spec.beta1,
            beta2: spec.beta2,
            eps: spec.adam_eps,
            weight_decay: spec.weight_decay,
            step: 0,
            m,
            v: vv,
        })
    }

    /// θ ← θ − lr·(m̂/(√v̂ + ε) + wd·θ) for every parameter with a gradient. Returns how far the
    /// step moved the weights, ‖θ_after − θ_before‖₂: Adam's step size does not follow the
    /// gradient's size, so a method that shrinks its gradient need not take smaller steps.
    pub fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<f64> {
        let mut moved_sq: Option<Tensor> = None;
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for (name, var) in params {
            let Some(g) = grads.get(name) else { continue };
            let g = g.to_dtype(DType::F32)?;
            let m = ((&self.m[name] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[name] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let before = var.as_tensor().to_dtype(DType::F32)?;
            let theta = if self.weight_decay > 0.0 {
                (&before * (1.0 - lr * self.weight_decay))?
            } else {
                before.clone()
            };
            let next = (theta - (update * lr)?)?.to_dtype(var.dtype())?;
            // Before `set`: an f32 `before` shares the variable's storage. Measured on the stored
            // dtype, so a low-precision dtype's rounding counts; summed on the device and read once
            // after the loop (one sync per step, not one per tensor).
            let sq = (next.to_dtype(DType::F32)? - before)?.sqr()?.sum_all()?;
            moved_sq = Some(match moved_sq {
                Some(total) => (total + sq)?,
                None => sq,
            });
            var.set(&next)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        let moved_sq = match moved_sq {
            Some(total) => total.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            None => 0.0,
        };
        Ok(moved_sq.sqrt())
    }
}

/// The learning rate at optimiser step `step` (0-based) of `total`: linear warm-up over the first
/// ceil(warmup_ratio·total) steps, then constant, cosine to 0, or linear to 0.
pub fn learning_rate(spec: &TrainingSpec, step: usize, total: usize) -> f64 {
    let peak = spec.learning_rate;
    let warmup = (spec.warmup_ratio * total as f64).ceil() as usize;
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    match spec.schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        Schedule::Linear => peak * (1.0 - progress),
    }
}

/// Global L2 norm of all gradients; when it exceeds `max_norm` (> 0) they are scaled to it.
/// Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.values() {
        sq += g
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        // With bias correction, step 1 gives m̂ = g, v̂ = g², so Δθ = −lr·sign(g) (ε aside).
        let spec = TrainingSpec::default();
        let var = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let params = vec![("w".to_string(), var.clone())];
        let mut opt = AdamW::new(&spec, &params).unwrap();
        let mut grads = BTreeMap::new();
        grads.insert(
            "w".to_string(),
            Tensor::new(&[0.3f32, -4.0, 0.0], &Device::Cpu).unwrap(),
        );
        let moved = opt.step(&params, &grads, 0.1).unwrap();
        let v = var.as_tensor().to_vec1::<f32>().unwrap();
        for (a, b) in v.iter().zip([0.9f32, -1.9, 0.5]) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
        // Two weights moved by lr each, whatever their gradients' sizes (0.3 and 4.0).
        assert!((moved - 0.1 * 2f64.sqrt()).abs() < 1e-6, "{moved}");
    }

    #[test]
    fn schedules_warm_up_then_decay() {
        let mut spec = TrainingSpec {
            learning_rate: 1.0,
            warmup_ratio: 0.2,
            ..Default::default()
        };
        // 10 steps: 2 warm-up steps (0.5, 1.0), then the schedule over 8 steps.
        assert_eq!(learning_rate(&spec, 0, 10), 0.5);
        assert_eq!(learning_rate(&spec, 1, 10), 1.0);
        assert_eq!(learning_rate(&spec, 9, 10), 1.0);
        spec.schedule = Schedule::Linear;
        assert!((learning_rate(&spec, 6, 10) - 0.5).abs() < 1e-12);
        spec.schedule = Schedule::Cosine;
        assert!((learning_rate(&spec, 2, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&spec, 6, 10) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut grads = BTreeMap::new();
        grads.insert(
            "a".to_string(),
            Tensor::new(&[3.0f32], &Device::Cpu).unwrap(),
        );
        grads.insert(
            "b".to_string(),
            Tensor::new(&[4.0f32], &Device::Cpu).unwrap(),
        );
        assert_eq!(clip_global_norm(&mut grads, 10.0).unwrap(), 5.0);
        assert_eq!(grads["a"].to_vec1::<f32>().unwrap(), vec![3.0]);
        assert_eq!(clip_global_norm(&mut grads, 1.0).unwrap(), 5.0);
        let a = grads["a"].to_vec1::<f32>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-5);
    }
}
