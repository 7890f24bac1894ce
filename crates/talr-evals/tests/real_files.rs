//! The real benchmark files in `$TALR_DATA_DIR` (CI points it at `../shared/data`) load as the
//! benchmarks they are. Without the variable the tests say so and skip; with it, a missing file
//! fails.

use std::collections::BTreeSet;
use std::path::PathBuf;
use talr_evals::registry::{training_examples, TrainingSize};
use talr_evals::{build_task, Style};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TALR_DATA_DIR").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("skipping: TALR_DATA_DIR is not set");
    }
    dir
}

#[test]
fn ifeval_has_541_prompts_over_25_instruction_ids() {
    let Some(dir) = data_dir() else { return };
    let path = dir.join("ifeval/input_data.jsonl");
    let items = talr_evals::ifeval::load(&path).unwrap();
    assert_eq!(items.len(), 541);
    let ids: BTreeSet<&str> = items
        .iter()
        .flat_map(|i| i.instruction_id_list.iter().map(String::as_str))
        .collect();
    assert_eq!(ids.len(), 25, "{ids:?}");
    assert_eq!(build_task("ifeval", 1).unwrap().prompts().len(), 541);
}

#[test]
fn medcalc_train_subset_makes_label_only_and_cot_examples() {
    let Some(dir) = data_dir() else { return };
    let spec = format!(
        "medcalc={}",
        dir.join("medcalc_bench/train_subset.csv").display()
    );
    let size = TrainingSize {
        per_calculator: 0,
        limit: None,
    };
    let label = training_examples(&spec, Style::LabelOnly, size).unwrap();
    let cot = training_examples(&spec, Style::Cot, size).unwrap();
    assert_eq!(label.examples.len(), 1006);
    assert_eq!(cot.examples.len(), 1006);
    let calculators: BTreeSet<u32> = label
        .medcalc_rows
        .unwrap()
        .iter()
        .map(|r| r.calculator_id)
        .collect();
    assert_eq!(calculators.len(), 40);
    assert!(label
        .examples
        .iter()
        .all(|e| e.target.starts_with("{\"answer\": ")));
    // CoT targets carry the ground-truth explanation before the answer.
    assert!(cot
        .examples
        .iter()
        .all(|e| e.target.starts_with("{\"step_by_step_thinking\": ") && e.target.len() > 60));
}
