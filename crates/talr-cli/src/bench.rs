//! `talr bench`: throughput and peak memory of the three workloads everything else is built from.

use anyhow::{Context, Result};
use clap::Args;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;
use std::time::Instant;
use talr_model::generate::{generate, GenerationConfig, Sampling};
use talr_model::{ChatMessage, LoadedModel, ModelSource, Trainability};
use talr_train::data::TokenizedExample;
use talr_train::optim::AdamW;
use talr_train::{batch_gradients, StepInputs, TrainConfig};

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Rows per forward / training batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 2)]
    train_steps: usize,
    /// New tokens per decoding run.
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Decoding batch sizes to measure.
    #[arg(long = "decode-batch", default_values_t = vec![1, 32])]
    decode_batches: Vec<usize>,
    /// Prompt length for the prefill part: `--batch` random prompts of this many tokens, each
    /// generating one token.
    #[arg(long, default_value_t = 1024)]
    prefill_len: usize,
    /// Which parts to run.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["forward".to_string(), "prefill".to_string(), "train".to_string(), "decode".to_string()])]
    only: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Decoder blocks recomputed in the backward pass instead of keeping their activations
    /// (default: half of them, the measured sweet spot on 24 GiB / 2 cores: all 30 of SmolLM2's
    /// give ~3.7 GiB at ~95 tok/s, 15 give ~5.5 GiB at ~110 tok/s, none ~7.4 GiB at ~148 tok/s).
    #[arg(long)]
    checkpointed_blocks: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: crate::DeviceArg,
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in GiB (Linux).
fn peak_rss_gib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// Resets the kernel's peak-RSS counter (Linux >= 4.0) so each phase reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn random_pairs(
    rng: &mut StdRng,
    batch: usize,
    seq: usize,
    vocab: usize,
) -> Vec<(Vec<u32>, Vec<u32>)> {
    // One prompt token, then `seq` response tokens: every position is scored.
    (0..batch)
        .map(|_| {
            let row: Vec<u32> = (0..=seq)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect();
            (row[..1].to_vec(), row[1..].to_vec())
        })
        .collect()
}

pub fn run(args: BenchArgs) -> Result<()> {
    let source = ModelSource::parse(&args.model)?;
    let device = args.device.open()?;
    let want = |part: &str| args.only.iter().any(|p| p == part);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let tokens = args.batch * args.seq;
    let mut report = json!({
        "model": args.model,
        "device": talr_model::device_name(&device),
        "precision": if talr_model::precision::bf16_active() { "bf16" } else { "f32" },
        "threads": rayon::current_num_threads(),
        "batch": args.batch,
        "seq": args.seq,
        "talr_version": env!("CARGO_PKG_VERSION"),
    });

    if want("forward") || want("prefill") || want("decode") {
        let model = LoadedModel::load(&source, &device, Trainability::Frozen)?;
        let vocab = model.decoder.config.vocab_size;
        if want("forward") {
            let pairs = random_pairs(&mut rng, args.batch, args.seq, vocab);
            reset_peak_rss();
            let start = Instant::now();
            let out = model.response_nll(&pairs)?;
            let mean = out.nll.mean_all()?.to_scalar::<f32>()?;
            let secs = start.elapsed().as_secs_f64();
            report["forward"] = json!({
                "tokens": tokens, "seconds": secs, "tokens_per_s": tokens as f64 / secs,
                "peak_rss_gib": peak_rss_gib(), "mean_nll": mean,
            });
            eprintln!(
                "forward {}x{}: {:.1} tok/s",
                args.batch,
                args.seq,
                tokens as f64 / secs
            );
        }
        if want("prefill") {
            // Its own generator, so adding this part left the other parts' inputs unchanged.
            let mut prefill_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1));
            let len = args.prefill_len.max(2);
            let prompts: Vec<Vec<u32>> = random_pairs(&mut prefill_rng, args.batch, len - 1, vocab)
                .into_iter()
                .map(|(first, rest)| [first, rest].concat())
                .collect();
            let cfg = GenerationConfig {
                max_new_tokens: 1,
                stop_strings: vec![],
                sampling: Sampling::Greedy,
                ignore_eos: true,
            };
            reset_peak_rss();
            let start = Instant::now();
            generate(&model.decoder, &model.tokenizer, &prompts, &cfg, |_| {})?;
            let secs = start.elapsed().as_secs_f64();
            let prompt_tokens = args.batch * len;
            report["prefill"] = json!({
                "prompts": args.batch, "prompt_tokens": len, "seconds": secs,
                "tokens_per_s": prompt_tokens as f64 / secs, "peak_rss_gib": peak_rss_gib(),
            });
            eprintln!(
                "prefill {}x{len}: {:.1} tok/s",
                args.batch,
                prompt_tokens as f64 / secs
            );
        }
        if want("decode") {
            let mut runs = Vec::new();
            for &b in &args.decode_batches {
                let prompts: Vec<Vec<u32>> = (0..b)
                    .map(|i| {
                        let msg =
                            format!("Write a long story about a dragon named {}.", 100 + i * 7);
                        let text = model
                            .tokenizer
                            .apply_chat_template(&[ChatMessage::new("user", &msg)], true)?;
                        model.tokenizer.encode(&text)
                    })
                    .collect::<Result<_>>()?;
                let cfg = GenerationConfig {
                    max_new_tokens: args.decode_tokens,
                    stop_strings: vec![],
                    sampling: Sampling::Greedy,
                    ignore_eos: true,
                };
                reset_peak_rss();
                let start = Instant::now();
                let out = generate(&model.decoder, &model.tokenizer, &prompts, &cfg, |_| {})?;
                let secs = start.elapsed().as_secs_f64();
                let generated: usize = out.iter().map(|g| g.tokens.len()).sum();
                eprintln!(
                    "decode batch {b}: {:.1} tok/s aggregate",
                    generated as f64 / secs
                );
                runs.push(json!({
                    "batch": b, "new_tokens": generated, "seconds": secs,
                    "tokens_per_s": generated as f64 / secs, "peak_rss_gib": peak_rss_gib(),
                }));
            }
            report["decode"] = json!(runs);
        }
    }

    if want("train") {
        let mut model = LoadedModel::load(&source, &device, Trainability::Trainable)?;
        let checkpointed = args
            .checkpointed_blocks
            .unwrap_or(model.decoder.config.num_layers / 2);
        model.decoder.set_checkpointed_blocks(checkpointed);
        let vocab = model.decoder.config.vocab_size;
        let params = model.vars.clone();
        // Plain SFT, the whole batch in one micro-batch: the trainer's own step function.
        let config = TrainConfig::from_yaml(
            &format!(
                "method: {{token_weighting: {{kind: uniform}}}}\ntraining: {{batch_size: {b}, micro_batch_size: {b}}}",
                b = args.batch
            ),
            "talr bench",
        )?;
        let mut opt = AdamW::new(&config.training, &params)?;
        let mut step_secs = Vec::new();
        let mut optimizer_secs = Vec::new();
        reset_peak_rss();
        for step in 0..=args.train_steps {
            let pairs = random_pairs(&mut rng, args.batch, args.seq, vocab);
            let data: Vec<TokenizedExample> = pairs
                .into_iter()
                .map(|(prompt, response)| TokenizedExample { prompt, response })
                .collect();
            let batch: Vec<usize> = (0..data.len()).collect();
            let start = Instant::now();
            let inputs = StepInputs {
                sample_weights: None,
                theta0: &[],
            };
            let step_grads = batch_gradients(&model, &params, &config, &data, &batch, &inputs)?;
            let grads = step_grads.grads;
            let opt_start = Instant::now();
            opt.step(&params, &grads, 1e-5).context("AdamW step")?;
            let opt_secs = opt_start.elapsed().as_secs_f64();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "train step {step}: {secs:.2}s ({:.1} tok/s){}",
                tokens as f64 / secs,
                if step == 0 { " warm-up" } else { "" }
            );
            if step > 0 {
                step_secs.push(secs);
                optimizer_secs.push(opt_secs);
            }
        }
        let mean = step_secs.iter().sum::<f64>() / step_secs.len().max(1) as f64;
        report["train_step"] = json!({
            "tokens": tokens, "seconds_per_step": step_secs, "optimizer_seconds": optimizer_secs, "tokens_per_s": tokens as f64 / mean,
            "peak_rss_gib": peak_rss_gib(), "optimizer": "talr-train AdamW (f32 moments, weight decay 0)",
            "checkpointed_blocks": checkpointed,
        });
    }

    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
