//! Progress for output that is not a terminal — a Slurm job's log, `nohup … > log` — where the
//! indicatif bar draws nothing: one line as each cell starts and one as it ends, with the time
//! left priced like `--dry-run`'s estimate and updated with the cells this run has finished.

use crate::estimate::{self, Finished};
use crate::spec::Cell;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

/// How a cell's turn in this run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// This run trained and evaluated it.
    Trained,
    /// Another process finished it while this run waited for its lock.
    ByAnother,
    /// Another process holds its lock; this run moved on.
    Busy,
    Failed,
}

pub struct PlainLog<'a> {
    enabled: bool,
    total: usize,
    jobs: usize,
    started: Instant,
    state: Mutex<State<'a>>,
}

struct State<'a> {
    done: usize,
    pending: Vec<&'a Cell>,
    finished: Finished,
    /// Training keys whose fine-tuned weights are kept: stored before this run or trained in it.
    stored: BTreeSet<String>,
}

impl<'a> PlainLog<'a> {
    /// `todo` are the cells this run will train, `already_done` how many of the grid's cells were
    /// finished before it, `finished` the seconds of finished cells by style, and `stored` the
    /// training keys whose fine-tuned weights are already kept.
    pub fn new(
        todo: &[&'a Cell],
        already_done: usize,
        finished: Finished,
        stored: BTreeSet<String>,
        jobs: usize,
    ) -> Self {
        Self {
            enabled: !std::io::stderr().is_terminal(),
            total: already_done + todo.len(),
            jobs: jobs.max(1),
            started: Instant::now(),
            state: Mutex::new(State {
                done: already_done,
                pending: todo.to_vec(),
                finished,
                stored,
            }),
        }
    }

    pub fn start(&self, cell: &Cell) {
        if self.enabled {
            eprintln!("{}", self.start_line(cell));
        }
    }

    /// Records how `cell` ended after `seconds` and logs it.
    pub fn finish(&self, cell: &Cell, seconds: f64, ended: Ended) {
        let line = self.finish_line(cell, seconds, ended);
        if self.enabled {
            eprintln!("{line}");
        }
    }

    fn start_line(&self, cell: &Cell) -> String {
        let done = self.state.lock().unwrap().done;
        format!(
            "[{done}/{} cells, {}] start {} ({} {} lr {:.0e} seed {})",
            self.total,
            clock(self.started.elapsed().as_secs_f64()),
            cell.id,
            cell.method,
            cell.style.name(),
            cell.learning_rate,
            cell.seed
        )
    }

    fn finish_line(&self, cell: &Cell, seconds: f64, ended: Ended) -> String {
        let mut state = self.state.lock().unwrap();
        state.pending.retain(|c| c.id != cell.id);
        let outcome = match ended {
            Ended::Trained => {
                state.done += 1;
                let style = cell.style.name().to_string();
                let reused = cell.training_shared && state.stored.contains(&cell.training);
                let times = match reused {
                    true => &mut state.finished.evals,
                    false => &mut state.finished.cells,
                };
                times.entry(style).or_default().push(seconds);
                if cell.training_shared {
                    state.stored.insert(cell.training.clone());
                }
                "done"
            }
            // Its time is another process's, so it does not price the cells left.
            Ended::ByAnother => {
                state.done += 1;
                "done by another process:"
            }
            Ended::Busy => "skipped (another process is running it):",
            Ended::Failed => "FAILED",
        };
        let stored = |key: &str| state.stored.contains(key);
        let left = match estimate::seconds_to_run(&state.pending, &state.finished, stored) {
            _ if state.pending.is_empty() => String::new(),
            Some(s) => format!(
                "; about {} left for {}",
                clock(s / self.jobs as f64),
                cells(state.pending.len())
            ),
            None => format!("; {} left", cells(state.pending.len())),
        };
        let took = match ended {
            Ended::Trained | Ended::Failed => format!(" after {}", clock(seconds)),
            Ended::ByAnother | Ended::Busy => String::new(),
        };
        format!(
            "[{}/{} cells, {}] {outcome} {}{took}{left}",
            state.done,
            self.total,
            clock(self.started.elapsed().as_secs_f64()),
            cell.id,
        )
    }
}

fn cells(n: usize) -> String {
    format!("{n} cell{}", if n == 1 { "" } else { "s" })
}

/// `1h05m`, `12m`, `40s`: minutes are the grain a real cell's progress is worth reading at;
/// seconds only under one (the smoke preset's cells).
fn clock(seconds: f64) -> String {
    if seconds < 59.5 {
        return format!("{:.0}s", seconds.max(0.0));
    }
    let minutes = (seconds / 60.0).round() as u64;
    match minutes / 60 {
        0 => format!("{minutes}m"),
        hours => format!("{hours}h{:02}m", minutes % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::smoke_table2_cells;
    use std::collections::BTreeMap;

    #[test]
    fn the_time_left_follows_the_cells_this_run_finishes() {
        let cells = smoke_table2_cells();
        let label: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.style.name() == "label-only")
            .take(3)
            .collect();
        let finished = Finished {
            cells: BTreeMap::from([("label-only".to_string(), vec![600.0])]),
            evals: BTreeMap::new(),
        };
        let log = PlainLog::new(&label, 4, finished, BTreeSet::new(), 1);
        assert!(log
            .start_line(label[0])
            .starts_with("[4/7 cells, 0s] start "));
        // The first cell took 1800 s: the mean is now 1200 s, so two cells left are 40 minutes.
        let line = log.finish_line(label[0], 1800.0, Ended::Trained);
        assert!(line.starts_with("[5/7 cells, 0s] done "), "{line}");
        assert!(
            line.ends_with("after 30m; about 40m left for 2 cells"),
            "{line}"
        );
        // A failed cell is not counted as done and does not feed the estimate.
        let line = log.finish_line(label[1], 60.0, Ended::Failed);
        assert!(line.starts_with("[5/7 cells, 0s] FAILED "), "{line}");
        assert!(line.ends_with("about 20m left for 1 cell"), "{line}");
        let line = log.finish_line(label[2], 7300.0, Ended::Trained);
        assert!(line.ends_with("after 2h02m"), "{line}");
        assert_eq!(clock(40.2), "40s");
        assert_eq!(clock(59.7), "1m");
    }

    #[test]
    fn parallel_jobs_share_the_time_left() {
        let cells = smoke_table2_cells();
        let todo: Vec<&Cell> = cells.iter().take(3).collect();
        let finished = Finished {
            cells: BTreeMap::from([
                ("label-only".to_string(), vec![1200.0]),
                ("cot".to_string(), vec![1200.0]),
            ]),
            evals: BTreeMap::new(),
        };
        let log = PlainLog::new(&todo, 0, finished, BTreeSet::new(), 2);
        let line = log.finish_line(todo[0], 1200.0, Ended::Trained);
        assert!(line.ends_with("about 20m left for 2 cells"), "{line}");
    }

    #[test]
    fn cells_left_to_another_process_are_named_and_do_not_price_the_rest() {
        let cells = crate::spec::smoke_table2_cells();
        let todo: Vec<&Cell> = cells.iter().take(3).collect();
        let log = PlainLog::new(&todo, 0, Finished::default(), BTreeSet::new(), 1);
        let line = log.finish_line(todo[0], 0.0, Ended::Busy);
        assert!(
            line.ends_with(&format!(
                "skipped (another process is running it): {}; 2 cells left",
                todo[0].id
            )),
            "{line}"
        );
        let line = log.finish_line(todo[1], 0.0, Ended::ByAnother);
        assert!(line.starts_with("[1/3 cells"), "{line}");
        assert!(
            line.ends_with("; 1 cell left"),
            "no time estimate from a 0 s cell: {line}"
        );
    }
}
