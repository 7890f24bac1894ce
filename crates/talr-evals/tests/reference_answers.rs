//! Reference answers given as responses score perfectly; empty work scores zero. Uses the pip-served
//! assets (`talr assets fetch`); the real GSM8K test file is used when `TALR_DATA_DIR` points at it.

use std::collections::HashMap;
use std::path::PathBuf;
use talr_assets::{cached_for_test, GSM8K_100, HUMAN_EVAL};
use talr_evals::sandbox::{Limits, Sandbox};
use talr_evals::{gsm8k, humaneval};

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[test]
fn humaneval_canonical_solutions_pass_and_pass_bodies_fail() {
    let Some(path) = cached_for_test(&HUMAN_EVAL) else {
        return;
    };
    let problems = humaneval::load(&path).unwrap();
    assert_eq!(problems.len(), 164);
    let sandbox = Sandbox::from_env(Limits::default()).unwrap();
    let canonical: HashMap<String, String> = problems
        .iter()
        .map(|p| (p.task_id.clone(), p.canonical_solution.clone()))
        .collect();
    let (agg, items) = humaneval::score(&problems, &canonical, &sandbox, jobs());
    let failed: Vec<_> = items.iter().filter(|i| !i.passed).collect();
    assert_eq!(agg.pass_at_1, 1.0, "failed: {failed:#?}");

    // The same solutions as whole functions in a fenced reply score the same.
    let whole: HashMap<String, String> = problems
        .iter()
        .map(|p| {
            let reply = format!(
                "Here you go:\n```python\n{}{}```\nHope it helps.",
                p.prompt, p.canonical_solution
            );
            (p.task_id.clone(), reply)
        })
        .collect();
    let (agg, _) = humaneval::score(&problems, &whole, &sandbox, jobs());
    assert_eq!(agg.pass_at_1, 1.0);

    let pass: HashMap<String, String> = problems
        .iter()
        .map(|p| (p.task_id.clone(), "    pass\n".to_string()))
        .collect();
    let (agg, _) = humaneval::score(&problems, &pass, &sandbox, jobs());
    assert_eq!(agg.pass_at_1, 0.0);
}

fn gsm8k_reference_scores_perfectly(path: &std::path::Path, expected: usize) {
    let items = gsm8k::load(path).unwrap();
    assert_eq!(items.len(), expected);
    let responses: HashMap<String, String> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (i.to_string(), it.answer.clone()))
        .collect();
    let (agg, _) = gsm8k::score(&items, &responses);
    assert_eq!(agg.exact_match_strict, 1.0);
    assert_eq!(agg.exact_match_flexible, 1.0);
}

#[test]
fn gsm8k_100_reference_solutions_score_perfectly() {
    if let Some(dir) = cached_for_test(&GSM8K_100) {
        gsm8k_reference_scores_perfectly(&dir, 100);
    }
}

#[test]
fn gsm8k_test_file_reference_solutions_score_perfectly() {
    let Some(dir) = std::env::var_os("TALR_DATA_DIR").map(PathBuf::from) else {
        eprintln!("skipping: TALR_DATA_DIR is not set");
        return;
    };
    let path = dir.join("gsm8k/test.jsonl");
    if path.exists() {
        gsm8k_reference_scores_perfectly(&path, 1319);
    } else {
        eprintln!("skipping: {} does not exist", path.display());
    }
}
