use anyhow::{Context, Result};
use clap::Args;
use talr_model::generate::{generate, GenerationConfig, Sampling};
use talr_model::{ChatMessage, LoadedModel, ModelSource, Trainability};

#[derive(Args)]
pub struct GenerateArgs {
    /// A known model name, a .gguf file, a model directory, or a hub repo id (org/name[@rev]).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// A user message (repeat for a batch).
    #[arg(long = "prompt", required = true)]
    prompts: Vec<String>,
    /// Use prompts as they are, without the chat template.
    #[arg(long)]
    raw: bool,
    /// A system message placed before each prompt (chat template only).
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Stop a row when its text contains this string (repeatable).
    #[arg(long = "stop")]
    stop_strings: Vec<String>,
    /// Sampling temperature; 0 (the default) decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object per prompt instead of plain text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: crate::DeviceArg,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let source = ModelSource::parse(&args.model)?;
    let model = LoadedModel::load(&source, &args.device.open()?, Trainability::Frozen)?;
    let tok = &model.tokenizer;
    let mut prompts = Vec::with_capacity(args.prompts.len());
    for p in &args.prompts {
        let text = if args.raw {
            p.clone()
        } else {
            let mut messages = Vec::new();
            if let Some(sys) = &args.system {
                messages.push(ChatMessage::new("system", sys));
            }
            messages.push(ChatMessage::new("user", p));
            tok.apply_chat_template(&messages, true)
                .context("applying the chat template (use --raw to skip it)")?
        };
        prompts.push(tok.encode(&text)?);
    }
    let sampling = if args.temperature > 0.0 {
        Sampling::TopP {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        }
    } else {
        Sampling::Greedy
    };
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        stop_strings: args.stop_strings.clone(),
        sampling,
        ignore_eos: false,
    };
    let bar = indicatif::ProgressBar::new(args.max_new_tokens as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} tokens {msg} [{elapsed} < {eta}]",
        )
        .expect("valid template"),
    );
    let start = std::time::Instant::now();
    let out = generate(&model.decoder, tok, &prompts, &cfg, |running| {
        bar.inc(1);
        bar.set_message(format!("{running} running"));
    })?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    for (prompt, g) in args.prompts.iter().zip(&out) {
        if args.json {
            let line = serde_json::json!({
                "prompt": prompt,
                "response": g.text,
                "tokens": g.tokens.len(),
                "finish": g.finish,
            });
            println!("{line}");
        } else {
            if args.prompts.len() > 1 {
                println!("### {prompt}");
            }
            println!("{}", g.text);
        }
    }
    let total: usize = out.iter().map(|g| g.tokens.len()).sum();
    eprintln!(
        "{total} tokens in {secs:.2}s ({:.1} tok/s) from {}",
        total as f64 / secs,
        model.origin
    );
    Ok(())
}
