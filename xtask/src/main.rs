//! `cargo xtask reproduce | plot | check | collect`: the paper's experiments on a preset.

mod cell;
mod check;
mod estimate;
mod plain_log;
mod provenance;
mod spec;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Reproduce the paper's tables and figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a grid (table1, table2, lr-sweep, tau-ablation, or all) and write its tables.
    Reproduce(ReproduceArgs),
    /// Draw the figures of a preset's results into figures/<preset>/.
    Plot {
        #[arg(long, default_value = "small")]
        preset: String,
        /// The `--limit` the results were run with, if any (it is part of each cell's config).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Rerun the smoke preset's table2 and compare it with the committed results/smoke/.
    Check,
    /// Write the tables of finished cells (after sharded runs) without running anything. Several
    /// presets (one per model, e.g. `paper,paper-qwen3,paper-gemma3`) give one table with a
    /// column group per model and their pooled averages, in results/<p1>+<p2>+.../.
    Collect {
        table: String,
        #[arg(long, default_value = "small", value_delimiter = ',')]
        preset: Vec<String>,
        /// Where the results are: results/<preset> by default; with several presets, the
        /// directory holding one <preset>/ each (default: results/).
        #[arg(long)]
        results: Option<PathBuf>,
        /// The `--limit` the results were run with, if any (it is part of each cell's config).
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(clap::Args, Clone)]
pub struct ReproduceArgs {
    /// table1, table2, lr-sweep, tau-ablation, or all.
    table: String,
    #[arg(long, default_value = "small")]
    preset: String,
    /// Number of seeds (the preset's first N; more than it lists counts up from 0).
    #[arg(long)]
    seeds: Option<usize>,
    /// Items per benchmark (domain test and each general task), overriding the preset.
    #[arg(long)]
    limit: Option<usize>,
    /// Only these target styles, comma-separated (label-only, cot); default: the preset's.
    #[arg(long, value_delimiter = ',')]
    styles: Vec<String>,
    /// Only these methods of the grid, comma-separated (e.g. talr,sft).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Cells run at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run only shard I of N (0-based, `I/N`); run `collect` once all shards are done.
    #[arg(long)]
    shard: Option<String>,
    /// List the cells and an estimate of their time, then stop.
    #[arg(long)]
    dry_run: bool,
    /// Where results go (default: results/<preset>).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Where cells train and generate: cpu, cuda, cuda:N, or auto (the first GPU when built with
    /// `--features cuda` on a machine with one, else the CPU). Recorded in each result.json.
    #[arg(long, env = "TALR_DEVICE", default_value = "auto")]
    device: talr_model::DeviceSpec,
    /// Run even though tracked code differs from the commit (cells then name a commit that did
    /// not make them; never commit such cells).
    #[arg(long)]
    allow_dirty: bool,
}

fn main() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // Results record the commit the runner started from, not one made while it runs.
    provenance::versions();
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Reproduce(args) => reproduce(&args).map(|_| ()),
        Command::Plot { preset, limit } => {
            let root = repo_root().join("results").join(&preset);
            let out = repo_root().join("figures").join(&preset);
            let results = results_of(&root, &effective_preset(&preset, limit)?)?;
            let written = talr_analysis::figures::draw_all(&results, &root, &out)?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(())
        }
        Command::Check => check::run(),
        Command::Collect {
            table,
            preset,
            results,
            limit,
        } => {
            if let [preset] = preset.as_slice() {
                let root = results.unwrap_or_else(|| repo_root().join("results").join(preset));
                let preset = effective_preset(preset, limit)?;
                let grids = grids_named(&table, &preset)?;
                return print_tables(&root, &preset, &grids);
            }
            let parent = results.unwrap_or_else(|| repo_root().join("results"));
            write_model_tables(&parent, &preset, &table, limit)
        }
    }
}

/// The checkout the runner works in. `cargo xtask` sets CARGO_MANIFEST_DIR when it runs the binary,
/// so that comes first; a binary run by hand looks upwards from the working directory. The path baked
/// in at compile time is only the last resort: a binary built in another checkout (a shared
/// CARGO_TARGET_DIR) would otherwise read and write that checkout's experiments and results.
pub fn repo_root() -> PathBuf {
    let is_root =
        |dir: &Path| dir.join("experiments/presets").is_dir() && dir.join("xtask").is_dir();
    if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let root = Path::new(&manifest).join("..");
        if is_root(&root) {
            return root;
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(root) = cwd.ancestors().find(|dir| is_root(dir)) {
            return root.to_path_buf();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The grids `table` names for `preset`: one grid, or every grid that applies to it (`all`).
fn grids_named(table: &str, preset: &spec::Preset) -> Result<Vec<spec::Grid>> {
    if table == "all" {
        return spec::grids_of(preset);
    }
    let grid = spec::load_grid(table)?;
    if !grid.applies_to(preset) {
        bail!(
            "grid {table} is only for the preset(s) {} (not {})",
            grid.presets.join(", "),
            preset.name
        );
    }
    Ok(vec![grid])
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard {s}: expected I/N, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.parse()
            .with_context(|| format!("--shard {s}: I is not a number"))?,
        n.parse()
            .with_context(|| format!("--shard {s}: N is not a number"))?,
    );
    if n == 0 || i >= n {
        bail!("--shard {s}: need 0 <= I < N");
    }
    Ok((i, n))
}

/// Runs a grid; returns the results root.
pub fn reproduce(args: &ReproduceArgs) -> Result<PathBuf> {
    let mut preset = effective_preset(&args.preset, args.limit)?;
    if let Some(n) = args.seeds {
        preset.seeds = (0..n)
            .map(|i| preset.seeds.get(i).copied().unwrap_or(i as u64))
            .collect();
    }
    if !args.styles.is_empty() {
        preset.styles = args
            .styles
            .iter()
            .map(|s| s.parse().with_context(|| format!("--styles {s}")))
            .collect::<Result<_>>()?;
    }
    let mut grids = grids_named(&args.table, &preset)?;
    if !args.methods.is_empty() {
        for m in &args.methods {
            if !grids.iter().any(|g| g.methods.contains(m)) {
                bail!("--methods {m}: not a method of grid {}", args.table);
            }
        }
        for g in grids.iter_mut() {
            g.methods.retain(|m| args.methods.contains(m));
        }
    }
    let root = args
        .results
        .clone()
        .unwrap_or_else(|| repo_root().join("results").join(&preset.name));
    let mut cells = spec::expand(&preset, &grids, &preset.seeds)?;
    spec::mark_shared_training(&preset, &preset.seeds, &mut cells)?;
    if let Some(shard) = &args.shard {
        let (i, n) = parse_shard(shard)?;
        cells = cells
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, c)| c)
            .collect();
    }
    let results = talr_analysis::ResultsDir::new(&root);
    let done = |c: &spec::Cell| results.is_done(&c.id);
    if args.dry_run {
        println!(
            "{:<14} {:<13} {:<11} {:>10} {:>5}  state",
            "cell", "method", "style", "lr", "seed"
        );
        for c in &cells {
            println!(
                "{:<14} {:<13} {:<11} {:>10.1e} {:>5}  {}",
                c.id,
                c.method,
                c.style.name(),
                c.learning_rate,
                c.seed,
                if done(c) { "done" } else { "to run" }
            );
        }
        let to_run: Vec<&spec::Cell> = cells.iter().filter(|c| !done(c)).collect();
        let finished = estimate::finished_seconds(&talr_analysis::load_results(&root)?);
        let stored = |key: &str| cell::training_is_stored(&results, key);
        match estimate::seconds_to_run(&to_run, &finished, stored) {
            Some(seconds) => println!(
                "{} cells, {} to run; about {:.0} min at the mean time of finished cells here of the same target style: {}",
                cells.len(),
                to_run.len(),
                seconds / 60.0,
                estimate::describe(&finished)
            ),
            None => println!(
                "{} cells, {} to run; no finished cell yet to estimate from (see experiments/README.md for measured times)",
                cells.len(),
                to_run.len()
            ),
        }
        return Ok(root);
    }
    if !args.allow_dirty {
        if let Some(changed) = provenance::uncommitted_code() {
            bail!(
                "tracked code differs from commit {} ({changed}); each cell records the commit it \
                 ran from, so commit first (or pass --allow-dirty for a run that is not to be kept)",
                provenance::versions().git
            );
        }
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let device = args.device.open().context("--device")?;
    talr_model::set_precision_on(&device, preset.precision)
        .with_context(|| format!("preset {}: precision {}", preset.name, preset.precision))?;
    let quiet_inner = args.jobs > 1;
    for &style in &preset.styles {
        eprintln!("base model, {} prompts", style.name());
        cell::run_base(&preset, &results, style, &device, !quiet_inner)?;
    }
    let todo: Vec<&spec::Cell> = cells.iter().filter(|c| !done(c)).collect();
    let already_done = cells.len() - todo.len();
    let bar = talr_evals::runner::progress_bar(cells.len(), "cells", true);
    bar.set_position(already_done as u64);
    let finished = estimate::finished_seconds(&talr_analysis::load_results(&root)?);
    let stored = todo
        .iter()
        .filter(|c| c.training_shared && cell::training_is_stored(&results, &c.training))
        .map(|c| c.training.clone())
        .collect();
    let log = plain_log::PlainLog::new(&todo, already_done, finished, stored, args.jobs);
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let busy = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(c) = todo.get(k) else { break };
                bar.set_message(format!(
                    "{} {} lr {:.0e}",
                    c.method,
                    c.style.name(),
                    c.learning_rate
                ));
                log.start(c);
                let started = std::time::Instant::now();
                let outcome = cell::run_cell(&preset, &results, c, &device, !quiet_inner);
                let ended = match &outcome {
                    Ok(cell::CellRun::Trained) => plain_log::Ended::Trained,
                    Ok(cell::CellRun::FinishedElsewhere) => plain_log::Ended::ByAnother,
                    Ok(cell::CellRun::Busy) => plain_log::Ended::Busy,
                    Err(_) => plain_log::Ended::Failed,
                };
                log.finish(c, started.elapsed().as_secs_f64(), ended);
                match outcome {
                    Ok(cell::CellRun::Trained | cell::CellRun::FinishedElsewhere) => bar.inc(1),
                    Ok(cell::CellRun::Busy) => {
                        busy.fetch_add(1, Ordering::SeqCst);
                        bar.println(format!(
                            "cell {} ({}): another process is running it; skipped",
                            c.id, c.method
                        ))
                    }
                    Err(e) => errors
                        .lock()
                        .unwrap()
                        .push(format!("cell {} ({}): {e:#}", c.id, c.method)),
                }
            });
        }
    });
    bar.finish();
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        bail!(
            "{} cells failed (finished cells are kept; rerun to retry):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let busy = busy.into_inner();
    if busy > 0 {
        eprintln!(
            "{busy} cells were left to another process running them; when it is done, \
             `cargo xtask collect {}` writes the tables with them",
            args.table
        );
    }
    if args.shard.is_none() {
        print_tables(&root, &preset, &grids)?;
    }
    Ok(root)
}

/// The preset as a run saw it: `--limit` overrides its benchmark subset sizes, which are part of
/// every cell's config (and id).
fn effective_preset(name: &str, limit: Option<usize>) -> Result<spec::Preset> {
    let mut preset = spec::load_preset(name)?;
    if let Some(limit) = limit {
        preset.general.limit = Some(limit);
        preset.general.limits.clear();
        preset.domain.test_limit = Some(limit);
    }
    Ok(preset)
}

/// The base model and the cells of this preset's grids under `root`, each tagged with the grids
/// it belongs to now (see `spec::grid_membership`); cells of other configs are left out.
fn results_of(root: &Path, preset: &spec::Preset) -> Result<Vec<talr_analysis::CellResult>> {
    let mut results = talr_analysis::load_results(root)?;
    let mut seeds: Vec<u64> = results.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let membership = spec::grid_membership(preset, &seeds)?;
    results.retain_mut(|r| {
        if r.is_base() {
            return true;
        }
        match membership.get(&r.cell) {
            Some(grids) => {
                r.grids = grids.clone();
                true
            }
            None => false,
        }
    });
    Ok(results)
}

/// One table per grid over several presets' results (`<parent>/<preset>/`), side by side.
fn write_model_tables(
    parent: &Path,
    names: &[String],
    table: &str,
    limit: Option<usize>,
) -> Result<()> {
    let mut per_model = Vec::new();
    let mut grids = None;
    for name in names {
        let preset = effective_preset(name, limit)?;
        let root = parent.join(name);
        if !root.is_dir() {
            bail!("--preset {name}: no results in {}", root.display());
        }
        grids.get_or_insert(grids_named(table, &preset)?);
        per_model.push((name.clone(), results_of(&root, &preset)?));
    }
    let out = parent.join(names.join("+"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for grid in grids.unwrap_or_default() {
        for path in talr_analysis::tables::write_model_tables(&per_model, &grid.name, &out)? {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// Writes every grid's tables from the results under `root` into `root`, naming each as it goes
/// and saying which grids have no finished cell yet.
fn print_tables(root: &Path, preset: &spec::Preset, grids: &[spec::Grid]) -> Result<()> {
    for (grid, written) in write_tables(root, preset, grids)? {
        if written.is_empty() {
            println!("{grid}: no finished cell yet, no table");
        }
        for path in written {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The tables of `grids` (and the drift fit, under "drift_fit") from the results under `root`,
/// written into `root`: each grid's name with the files written for it, none when it has no
/// finished cell.
pub fn write_tables(
    root: &Path,
    preset: &spec::Preset,
    grids: &[spec::Grid],
) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let results = results_of(root, preset)?;
    let mut written = Vec::new();
    for grid in grids {
        let mut paths = talr_analysis::tables::write_grid_tables(&results, &grid.name, root)?;
        let items = talr_analysis::item_paired::item_rows(&results, &grid.name, root)?;
        let against_base = talr_analysis::item_paired::base_rows(&results, &grid.name, root)?;
        paths.extend(talr_analysis::item_paired::write_item_table(
            &[&items[..], &against_base[..]].concat(),
            &grid.name,
            root,
        )?);
        paths.extend(talr_analysis::summary::write_summary(
            &results, &items, &grid.name, root,
        )?);
        written.push((grid.name.clone(), paths));
    }
    // Theorem 3.1's fit spans grids: SFT's cells come from the sweep and both method tables.
    let drift = talr_analysis::drift_fit::write_tables(&results, root)?;
    written.push(("drift_fit".to_string(), drift));
    Ok(written)
}
