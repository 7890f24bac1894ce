//! Resumable checkpoints: trainable parameters, optimiser moments and the step, written
//! atomically (a fresh directory renamed into place), so a crash never leaves a half-written one.

use crate::optim::AdamW;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: usize,
    pub total_steps: usize,
    /// The resolved config the run was started with (a resume must match it).
    pub config: serde_json::Value,
    pub talr_version: String,
}

pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

pub fn save(out: &Path, params: &[(String, Var)], opt: &AdamW, state: &TrainState) -> Result<()> {
    let dir = checkpoint_dir(out);
    let tmp = out.join(format!("checkpoint.tmp{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let trainable: HashMap<String, Tensor> = params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&trainable, tmp.join("trainable.safetensors"))?;
    let mut moments: HashMap<String, Tensor> = HashMap::new();
    for (n, t) in &opt.m {
        moments.insert(format!("m.{n}"), t.clone());
    }
    for (n, t) in &opt.v {
        moments.insert(format!("v.{n}"), t.clone());
    }
    candle_core::safetensors::save(&moments, tmp.join("optimizer.safetensors"))?;
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
    let old = out.join("checkpoint.old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&dir, &old)?;
    }
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("moving the checkpoint to {}", dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Restores parameters and optimiser state from `out/checkpoint` when it exists; returns the
/// step to continue from (0 for a fresh run).
pub fn restore(
    out: &Path,
    params: &[(String, Var)],
    opt: &mut AdamW,
    config: &serde_json::Value,
    device: &Device,
) -> Result<usize> {
    let dir = checkpoint_dir(out);
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        return Ok(0);
    }
    let state: TrainState = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
        .with_context(|| format!("parsing {}", state_path.display()))?;
    if &state.config != config {
        bail!(
            "{} was written by a run with a different config; use another --out or remove it",
            dir.display()
        );
    }
    let trainable = candle_core::safetensors::load(dir.join("trainable.safetensors"), device)?;
    let moments = candle_core::safetensors::load(dir.join("optimizer.safetensors"), device)?;
    for (name, var) in params {
        let t = trainable
            .get(name)
            .with_context(|| format!("{}: no parameter `{name}`", dir.display()))?;
        var.set(t)?;
        for (prefix, store) in [("m", &mut opt.m), ("v", &mut opt.v)] {
            let key = format!("{prefix}.{name}");
            let t = moments
                .get(&key)
                .with_context(|| format!("{}: no optimiser state `{key}`", dir.display()))?;
            store.insert(name.clone(), t.clone());
        }
    }
    opt.step = state.step;
    Ok(state.step)
}
