//! The training loop: a method spec applied to a loaded model.
//!
//! Per optimiser step: for each micro-batch, per-token NLL of the responses → token weighting
//! (× FLOW sample weights) → Σ w·ℓ (+ L2-to-init once per step) → backward, gradients summed over
//! micro-batches → NaN guard → global-norm clip → AdamW. Batches come from a per-epoch seeded
//! shuffle, so a resumed run sees exactly the batches the uninterrupted run would have.

use crate::config::{Adapter, Merge, Regularizer, SampleWeighting, TrainConfig};
use crate::data::TokenizedExample;
use crate::optim::{clip_global_norm, learning_rate, AdamW};
use crate::resume::{self, TrainState};
use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use talr_methods::{flow_weights, l2_to_init, Lora, WeightDiagnostics};
use talr_model::{LinearAdapter, LoadedModel, Trainability};

/// How the model must be loaded for `cfg`: full fine-tuning trains every weight; LoRA trains
/// adapters on a frozen base.
pub fn trainability(cfg: &TrainConfig) -> Trainability {
    match cfg.method.adapter {
        Adapter::Full => Trainability::Trainable,
        Adapter::Lora { .. } => Trainability::Frozen,
    }
}

/// LoRA seen through the decoder's adapter hook.
struct LoraAdapter(Arc<Lora>);

impl LinearAdapter for LoraAdapter {
    fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.delta(x)
    }
    fn merged_weight(&self, base: &Tensor) -> candle_core::Result<Tensor> {
        self.0
            .merge(base)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many optimiser steps in this invocation (the run stays resumable).
    pub stop_after: Option<usize>,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    /// Σ w·ℓ averaged over micro-batches (before the regulariser).
    pub loss: f64,
    /// Plain mean token NLL of the batch, comparable across methods.
    pub mean_nll: f64,
    pub regularizer: f64,
    pub lr: f64,
    /// Global gradient norm before clipping to `max_grad_norm`.
    pub grad_norm: f64,
    /// ‖θ_after − θ_before‖₂ over the trained parameters.
    pub update_norm: f64,
    pub tokens: usize,
    pub seconds: f64,
    pub weighting: WeightDiagnostics,
}

pub struct TrainOutcome {
    pub steps_done: usize,
    pub total_steps: usize,
    pub metrics: Vec<StepMetrics>,
}

/// Attaches LoRA adapters when configured and returns the trainable parameters by name.
pub fn prepare(model: &mut LoadedModel, cfg: &TrainConfig) -> Result<Vec<(String, Var)>> {
    model
        .decoder
        .set_checkpointing(cfg.training.activation_checkpointing);
    match &cfg.method.adapter {
        Adapter::Full => {
            if model.vars.is_empty() {
                bail!("full fine-tuning needs a model loaded as trainable");
            }
        }
        Adapter::Lora {
            rank,
            alpha,
            targets,
        } => {
            let device = model.decoder.device().clone();
            let mut vars = Vec::new();
            for (i, (name, linear)) in model.decoder.linears_mut().into_iter().enumerate() {
                let leaf = name.rsplit('.').next().unwrap_or("");
                if !targets.iter().any(|t| t == leaf) {
                    continue;
                }
                let (out_dim, in_dim) = linear.weight.dims2()?;
                let seed = cfg
                    .training
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(i as u64);
                let lora = Arc::new(Lora::new(in_dim, out_dim, *rank, *alpha, seed, &device)?);
                vars.push((format!("{name}.lora_A"), lora.a.clone()));
                vars.push((format!("{name}.lora_B"), lora.b.clone()));
                linear.adapter = Some(Arc::new(LoraAdapter(lora)));
            }
            model.vars = vars;
        }
    }
    Ok(model.vars.clone())
}

/// FLOW's per-example weights from one pass of the (initial) model.
pub fn flow_sample_weights(
    model: &LoadedModel,
    data: &[TokenizedExample],
    batch: usize,
) -> Result<(Vec<f64>, f64)> {
    let mut means = Vec::with_capacity(data.len());
    for chunk in data.chunks(batch.max(1)) {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = chunk
            .iter()
            .map(|e| (e.prompt.clone(), e.response.clone()))
            .collect();
        let out = model.response_nll(&pairs)?;
        means.extend(out.row_means()?);
    }
    flow_weights(&means)
}

fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Trains `model` (prepared with [`prepare`]) on `data`, writing `metrics.jsonl` and resumable
/// checkpoints under `out`; an existing checkpoint there is resumed.
pub fn train(
    model: &LoadedModel,
    params: &[(String, Var)],
    cfg: &TrainConfig,
    data: &[TokenizedExample],
    out: &Path,
    opts: &RunOptions,
) -> Result<TrainOutcome> {
    let t = &cfg.training;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let device = model.decoder.device().clone();
    let config_json = serde_json::to_value(cfg)?;
    let steps_per_epoch = data.len().div_ceil(t.batch_size);
    let total_steps = steps_per_epoch * t.epochs;

    let theta0: Vec<Tensor> = params
        .iter()
        .map(|(_, v)| v.as_tensor().detach().copy())
        .collect::<candle_core::Result<_>>()?;
    let sample_weights = match cfg.method.sample_weighting {
        SampleWeighting::None => None,
        SampleWeighting::Flow => Some(flow_sample_weights(model, data, t.micro_batch_size)?.0),
    };
    let mut opt = AdamW::new(t, params)?;
    let start = resume::restore(out, params, &mut opt, &config_json, &device)?;
    let metrics_path = out.join("metrics.jsonl");
    // A resumed run's outcome covers every step, the earlier invocations' included.
    let (mut metrics_file, mut metrics) = reopen_metrics(&metrics_path, start)?;

    let bar = progress_bar(opts.progress, total_steps, start);
    let end = opts
        .stop_after
        .map_or(total_steps, |n| (start + n).min(total_steps));
    for step in start..end {
        let timer = std::time::Instant::now();
        let epoch = step / steps_per_epoch;
        let order = epoch_order(data.len(), t.seed, epoch);
        let in_epoch = step % steps_per_epoch;
        let batch =
            &order[in_epoch * t.batch_size..((in_epoch + 1) * t.batch_size).min(data.len())];

        let step_inputs = StepInputs {
            sample_weights: sample_weights.as_deref(),
            theta0: &theta0,
        };
        let BatchGradients {
            mut grads,
            loss: loss_sum,
            nll_sum,
            tokens,
            regularizer: reg_value,
            diagnostics: diags,
        } = batch_gradients(model, params, cfg, data, batch, &step_inputs)?;
        let grad_norm = clip_global_norm(&mut grads, t.max_grad_norm)?;
        if !loss_sum.is_finite() || !grad_norm.is_finite() {
            bail!(
                "step {}: loss {loss_sum} / gradient norm {grad_norm} is not finite; stopped. \
                 The last good checkpoint (if any) is in {}",
                step + 1,
                resume::checkpoint_dir(out).display()
            );
        }
        let lr = learning_rate(t, step, total_steps);
        let update_norm = opt.step(params, &grads, lr)?;
        let m = StepMetrics {
            step: step + 1,
            epoch,
            loss: loss_sum,
            mean_nll: nll_sum / tokens.max(1) as f64,
            regularizer: reg_value,
            lr,
            grad_norm,
            update_norm,
            tokens,
            seconds: timer.elapsed().as_secs_f64(),
            weighting: average(&diags),
        };
        writeln!(metrics_file, "{}", serde_json::to_string(&m)?)?;
        metrics_file.flush()?;
        bar.inc(1);
        bar.set_message(format!("loss {:.4}", m.loss));
        metrics.push(m);
        let done = step + 1;
        if done == end || (t.checkpoint_every > 0 && done % t.checkpoint_every == 0) {
            let state = TrainState {
                step: done,
                total_steps,
                config: config_json.clone(),
                talr_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            resume::save(out, params, &opt, &state)?;
        }
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        steps_done: end,
        total_steps,
        metrics,
    })
}

/// What a step needs besides the batch: FLOW's per-example weights (by data index) and, for
/// L2-to-init, the parameters' initial values (in `params` order).
pub struct StepInputs<'a> {
    pub sample_weights: Option<&'a [f64]>,
    pub theta0: &'a [Tensor],
}

/// One optimiser step's gradients, summed over its micro-batches, and what the step's metrics
/// report.
pub struct BatchGradients {
    pub grads: BTreeMap<String, Tensor>,
    /// Σ w·ℓ averaged over micro-batches (before the regulariser).
    pub loss: f64,
    pub nll_sum: f64,
    pub tokens: usize,
    pub regularizer: f64,
    pub diagnostics: Vec<WeightDiagnostics>,
}

/// The forward and backward passes of one optimiser step over the examples `batch` (indices
/// into `data`): per micro-batch, per-token NLL → token weighting (× FLOW sample weights) →
/// Σ w·ℓ (+ L2-to-init on the first micro-batch) → backward. `talr bench` times this function.
pub fn batch_gradients(
    model: &LoadedModel,
    params: &[(String, Var)],
    cfg: &TrainConfig,
    data: &[TokenizedExample],
    batch: &[usize],
    inputs: &StepInputs,
) -> Result<BatchGradients> {
    let t = &cfg.training;
    let device = model.decoder.device().clone();
    let (sample_weights, theta0) = (inputs.sample_weights, inputs.theta0);
    let mut grads: BTreeMap<String, Tensor> = BTreeMap::new();
    let (mut loss_sum, mut nll_sum, mut tokens, mut reg_value) = (0f64, 0f64, 0usize, 0f64);
    let mut diags = Vec::new();
    for (micro_index, micro) in batch.chunks(t.micro_batch_size).enumerate() {
        let share = micro.len() as f64 / batch.len() as f64;
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = micro
            .iter()
            .map(|&i| (data[i].prompt.clone(), data[i].response.clone()))
            .collect();
        let out = model.response_nll(&pairs)?;
        let weighted = cfg
            .method
            .token_weighting
            .apply_in_rows(&out.nll, &out.offsets)?;
        let mut loss = match &sample_weights {
            None => weighted.loss,
            Some(sw) => {
                let per_token: Vec<f32> = (0..out.num_rows())
                    .flat_map(|r| {
                        let w = sw[micro[r]] as f32;
                        std::iter::repeat_n(w, out.offsets[r + 1] - out.offsets[r])
                    })
                    .collect();
                let w = (weighted.weights.clone() * Tensor::new(per_token, &device)?)?;
                out.nll.mul(&w)?.sum_all()?
            }
        };
        loss_sum += share * loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        nll_sum += out
            .nll
            .detach()
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        tokens += out.nll.dim(0)?;
        diags.push(weighted.diagnostics);
        loss = (loss * share)?;
        if micro_index == 0 {
            if let Regularizer::L2ToInit { lambda } = cfg.method.regularizer {
                let pairs: Vec<(Tensor, Tensor)> = params
                    .iter()
                    .zip(theta0)
                    .map(|((_, v), t0)| (v.as_tensor().clone(), t0.clone()))
                    .collect();
                let reg = l2_to_init(&pairs, lambda)?;
                reg_value = reg.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                loss = (loss + reg)?;
            }
        }
        let g = model.backward(&loss)?;
        drop((loss, out));
        for (name, var) in params {
            if let Some(gv) = g.get(var.as_tensor()) {
                let sum = match grads.remove(name) {
                    Some(acc) => (acc + gv)?,
                    None => gv.clone(),
                };
                grads.insert(name.clone(), sum);
            }
        }
    }
    Ok(BatchGradients {
        grads,
        loss: loss_sum,
        nll_sum,
        tokens,
        regularizer: reg_value,
        diagnostics: diags,
    })
}

fn progress_bar(show: bool, total: usize, start: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "train {bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]",
        )
        .expect("valid template"),
    );
    bar.set_position(start as u64);
    bar
}

/// The per-step metrics a run wrote to its `metrics.jsonl` (a line cut short by a crash is
/// skipped).
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .collect())
}

/// Keeps the metrics of the steps up to `resumed_step` (a crash may have logged steps after the
/// checkpoint) and returns the file to append to, with those steps.
fn reopen_metrics(path: &Path, resumed_step: usize) -> Result<(std::fs::File, Vec<StepMetrics>)> {
    let kept: Vec<StepMetrics> = if path.is_file() && resumed_step > 0 {
        read_metrics(path)?
            .into_iter()
            .filter(|m| m.step <= resumed_step)
            .collect()
    } else {
        Vec::new()
    };
    if kept.len() != resumed_step {
        bail!(
            "{}: has {} of the {resumed_step} steps the checkpoint has trained; remove the run's \
             directory to train it again",
            path.display(),
            kept.len()
        );
    }
    let mut text = String::new();
    for m in &kept {
        text.push_str(&serde_json::to_string(m)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok((std::fs::OpenOptions::new().append(true).open(path)?, kept))
}

fn average(diags: &[WeightDiagnostics]) -> WeightDiagnostics {
    let n = diags.len().max(1) as f64;
    let mean = |f: &dyn Fn(&WeightDiagnostics) -> f64| diags.iter().map(f).sum::<f64>() / n;
    WeightDiagnostics {
        tau: diags
            .iter()
            .map(|d| d.tau)
            .collect::<Option<Vec<f64>>>()
            .map(|v| v.iter().sum::<f64>() / n),
        effective_tokens: mean(&|d| d.effective_tokens),
        hard_token_share: mean(&|d| d.hard_token_share),
        hard_token_weight: mean(&|d| d.hard_token_weight),
        min_weight: diags
            .iter()
            .map(|d| d.min_weight)
            .fold(f64::INFINITY, f64::min),
        median_weight: mean(&|d| d.median_weight),
        max_weight: diags
            .iter()
            .map(|d| d.max_weight)
            .fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Full weights after training, with adapters merged and WiSE-FT applied, in a directory that
/// `--model` loads (config.json, tokenizer files, model.safetensors). `model` may also be a model
/// loaded from [`export_finetuned`]'s directory: the result is the same.
pub fn export_merged(
    model: &LoadedModel,
    initial: &BTreeMap<String, Tensor>,
    cfg: &TrainConfig,
    dir: &Path,
) -> Result<()> {
    let finetuned = finetuned_weights(model)?;
    let weights = match cfg.method.merge {
        Merge::None => finetuned,
        Merge::WiseFt { alpha } => talr_methods::wise_ft(initial, &finetuned, alpha)?,
    };
    write_model_dir(model, &weights, dir)
}

/// The trained weights with adapters merged and no WiSE-FT, in a directory `--model` loads.
pub fn export_finetuned(model: &LoadedModel, dir: &Path) -> Result<()> {
    write_model_dir(model, &finetuned_weights(model)?, dir)
}

fn finetuned_weights(model: &LoadedModel) -> Result<BTreeMap<String, Tensor>> {
    model.decoder.named_weights(|w, a| Ok(a.merged_weight(w)?))
}

fn write_model_dir(
    model: &LoadedModel,
    weights: &BTreeMap<String, Tensor>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    talr_model::weights::save_safetensors(weights, &dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), model.decoder.config.to_hf_json()?)?;
    model
        .tokenizer
        .save_tokenizer_json(&dir.join("tokenizer.json"))?;
    model
        .tokenizer
        .save_tokenizer_config(&dir.join("tokenizer_config.json"))?;
    Ok(())
}
