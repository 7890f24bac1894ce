//! Method and training specs, read from YAML.
//!
//! A method is a composition of independent parts, so "TALR + LoRA" is configuration:
//!
//! ```yaml
//! method:
//!   token_weighting: {kind: talr, tau: batch_median, floor: 0.1, renormalize: false, tau_min: 0.01}
//!   sample_weighting: none          # or flow
//!   regularizer: none               # or {l2_to_init: {lambda: 0.01}}
//!   adapter: full                   # or {lora: {rank: 64, alpha: 64, targets: [q_proj, v_proj]}}
//!   merge: none                     # or {wise_ft: {alpha: 0.5}}
//! training:
//!   learning_rate: 1.0e-5
//!   epochs: 1
//! ```
//!
//! Unknown fields and values are errors that name the field and list what is allowed.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use talr_methods::TokenWeighting;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default)]
    pub method: MethodSpec,
    #[serde(default)]
    pub training: TrainingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    #[serde(default = "default_token_weighting")]
    pub token_weighting: TokenWeighting,
    #[serde(default)]
    pub sample_weighting: SampleWeighting,
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub regularizer: Regularizer,
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub adapter: Adapter,
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub merge: Merge,
}

fn default_token_weighting() -> TokenWeighting {
    TokenWeighting::Uniform
}

impl Default for MethodSpec {
    fn default() -> Self {
        Self {
            token_weighting: default_token_weighting(),
            sample_weighting: SampleWeighting::None,
            regularizer: Regularizer::None,
            adapter: Adapter::Full,
            merge: Merge::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleWeighting {
    #[default]
    None,
    /// FLOW: w_s = exp(−L_s/τ) from the initial model's mean loss per sample.
    Flow,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regularizer {
    #[default]
    None,
    /// λ · mean (θ − θ0)².
    L2ToInit { lambda: f64 },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adapter {
    /// Every parameter trains.
    #[default]
    Full,
    /// Only LoRA matrices on the named projections train.
    Lora {
        rank: usize,
        alpha: f64,
        #[serde(default = "default_lora_targets")]
        targets: Vec<String>,
    },
}

/// The projections LoRA can target, by their short Hugging Face names (`q_proj`, ...).
pub fn lora_targets() -> Vec<&'static str> {
    talr_model::layout::Proj::ALL
        .iter()
        .map(|p| p.short_name())
        .collect()
}

fn default_lora_targets() -> Vec<String> {
    lora_targets().into_iter().map(String::from).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    #[default]
    None,
    /// Export θ = (1 − α)·θ0 + α·θ_ft.
    WiseFt { alpha: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Constant,
    Cosine,
    Linear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSpec {
    pub learning_rate: f64,
    pub schedule: Schedule,
    /// Share of all optimiser steps spent warming the rate up linearly from 0.
    pub warmup_ratio: f64,
    pub epochs: usize,
    /// Examples per forward/backward pass.
    pub micro_batch_size: usize,
    /// Examples per optimiser step (a multiple of micro_batch_size: gradient accumulation).
    pub batch_size: usize,
    /// Global gradient-norm clip; 0 disables it.
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    pub seed: u64,
    /// Write a resumable checkpoint every this many optimiser steps (and at the end); 0: end only.
    pub checkpoint_every: usize,
    /// Recompute decoder blocks in the backward pass instead of storing activations.
    pub activation_checkpointing: bool,
    /// Prompt + response tokens per example; longer prompts lose their oldest tokens.
    pub max_length: usize,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        Self {
            learning_rate: 1e-5,
            schedule: Schedule::Constant,
            warmup_ratio: 0.0,
            epochs: 1,
            micro_batch_size: 4,
            batch_size: 8,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            seed: 0,
            checkpoint_every: 0,
            activation_checkpointing: true,
            max_length: 1024,
        }
    }
}

impl TrainConfig {
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        cfg.validate().with_context(|| format!("in {origin}"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    pub fn validate(&self) -> Result<()> {
        let t = &self.training;
        let positive = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("training.{name} must be a positive number, got {v}");
            }
            Ok(())
        };
        positive("learning_rate", t.learning_rate)?;
        positive("adam_eps", t.adam_eps)?;
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            bail!(
                "training.warmup_ratio must be in [0, 1), got {}",
                t.warmup_ratio
            );
        }
        for (name, b) in [("beta1", t.beta1), ("beta2", t.beta2)] {
            if !(0.0..1.0).contains(&b) {
                bail!("training.{name} must be in [0, 1), got {b}");
            }
        }
        if t.epochs == 0 || t.micro_batch_size == 0 || t.max_length < 2 {
            bail!("training.epochs and training.micro_batch_size must be >= 1, training.max_length >= 2");
        }
        if t.batch_size == 0 || !t.batch_size.is_multiple_of(t.micro_batch_size) {
            bail!(
                "training.batch_size ({}) must be a positive multiple of training.micro_batch_size ({})",
                t.batch_size,
                t.micro_batch_size
            );
        }
        if t.max_grad_norm < 0.0 || t.weight_decay < 0.0 {
            bail!("training.max_grad_norm and training.weight_decay must be >= 0");
        }
        if let TokenWeighting::Talr {
            floor,
            tau_min,
            tau,
            ..
        } = self.method.token_weighting
        {
            if floor < 0.0 || tau_min < 0.0 {
                bail!("method.token_weighting.floor and .tau_min must be >= 0");
            }
            if let talr_methods::token_weighting::Tau::Fixed(v) = tau {
                if v.is_nan() || v <= 0.0 {
                    bail!("method.token_weighting.tau must be batch_median or {{fixed: τ > 0}}, got {v}");
                }
            }
        }
        if let Regularizer::L2ToInit { lambda } = self.method.regularizer {
            if lambda.is_nan() || lambda < 0.0 {
                bail!("method.regularizer.l2_to_init.lambda must be >= 0, got {lambda}");
            }
        }
        if let Adapter::Lora {
            rank,
            alpha,
            targets,
        } = &self.method.adapter
        {
            if *rank == 0 || alpha.is_nan() || *alpha <= 0.0 {
                bail!("method.adapter.lora: rank must be >= 1 and alpha > 0");
            }
            if let Some(bad) = targets
                .iter()
                .find(|t| !lora_targets().contains(&t.as_str()))
            {
                bail!(
                    "method.adapter.lora.targets: unknown projection {bad:?} (allowed: {})",
                    lora_targets().join(", ")
                );
            }
        }
        if let Merge::WiseFt { alpha } = self.method.merge {
            if !(0.0..=1.0).contains(&alpha) {
                bail!("method.merge.wise_ft.alpha must be in [0, 1], got {alpha}");
            }
        }
        Ok(())
    }

    /// Gradient-accumulation micro-batches per optimiser step.
    pub fn accumulation(&self) -> usize {
        self.training.batch_size / self.training.micro_batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talr_plus_lora_is_configuration() {
        let cfg = TrainConfig::from_yaml(
            "method:\n  token_weighting: {kind: talr, tau: batch_median, floor: 0.1, renormalize: false, tau_min: 0.01}\n  adapter: {lora: {rank: 8, alpha: 16}}\ntraining:\n  learning_rate: 2.0e-4\n  batch_size: 8\n  micro_batch_size: 2\n",
            "x.yaml",
        )
        .unwrap();
        assert_eq!(cfg.method.token_weighting, TokenWeighting::talr());
        assert!(matches!(cfg.method.adapter, Adapter::Lora { rank: 8, .. }));
        assert_eq!(cfg.accumulation(), 4);
        let fixed = TrainConfig::from_yaml(
            "method: {token_weighting: {kind: talr, tau: {fixed: 1.0}, floor: 0.0, renormalize: true, tau_min: 0.0}}",
            "y.yaml",
        )
        .unwrap();
        assert!(matches!(
            fixed.method.token_weighting,
            TokenWeighting::Talr {
                renormalize: true,
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_field_and_the_allowed_values() {
        let err = |yaml: &str| {
            format!(
                "{:#}",
                TrainConfig::from_yaml(yaml, "bad.yaml").unwrap_err()
            )
        };
        let e = err("method: {token_weighting: {kind: softmax}}");
        assert!(
            e.contains("bad.yaml") && e.contains("softmax") && e.contains("talr"),
            "{e}"
        );
        let e = err("training: {learning_rat: 1.0}");
        assert!(
            e.contains("learning_rat") && e.contains("learning_rate"),
            "{e}"
        );
        let e = err("training: {learning_rate: -1.0}");
        assert!(e.contains("training.learning_rate"), "{e}");
        let e = err("training: {batch_size: 6, micro_batch_size: 4}");
        assert!(e.contains("training.batch_size"), "{e}");
        let e = err("method: {adapter: {lora: {rank: 4, alpha: 4, targets: [qkv]}}}");
        assert!(e.contains("qkv") && e.contains("q_proj"), "{e}");
        let e = err("method: {merge: {wise_ft: {alpha: 2.0}}}");
        assert!(e.contains("method.merge.wise_ft.alpha"), "{e}");
        let e = err("method: {sample_weighting: flw}");
        assert!(e.contains("flw") && e.contains("flow"), "{e}");
    }
}
