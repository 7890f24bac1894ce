//! The real benchmark files in `$TALR_DATA_DIR` (CI points it at `../shared/data`) load as the
//! benchmarks they are. Without the variable the tests say so and skip; with it, a missing file
//! fails.

mod common;

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

#[test]
fn presets_name_the_train_slice_under_the_data_directory_and_spread_a_limit_over_calculators() {
    let Some(_) = data_dir() else { return };
    let size = TrainingSize {
        per_calculator: 0,
        limit: Some(80),
    };
    let spec = "medcalc=$TALR_DATA_DIR/medcalc_bench/train_subset.csv";
    let set = training_examples(spec, Style::LabelOnly, size).unwrap();
    assert_eq!(set.examples.len(), 80);
    let mut per_calculator = std::collections::BTreeMap::new();
    for row in set.medcalc_rows.unwrap() {
        *per_calculator.entry(row.calculator_id).or_insert(0) += 1;
    }
    assert_eq!(per_calculator.len(), 40);
    assert!(
        per_calculator.values().all(|&n| n == 2),
        "{per_calculator:?}"
    );
    let missing = "medcalc=$TALR_DATA_DIR/medcalc_bench/nonesuch.csv";
    let err = training_examples(missing, Style::LabelOnly, size)
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("nonesuch.csv does not exist"),
        "{err:#}"
    );
}

#[test]
fn a_medcalc_test_subset_covers_every_calculator_and_category() {
    let Some(_) = data_dir() else { return };
    let mut task = build_task("medcalc", 1).unwrap();
    assert_eq!(task.prompts().len(), 1047);
    task.truncate(110);
    let ids: Vec<String> = task.prompts().into_iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 110);
    let rows = talr_evals::medcalc::load(&data_dir().unwrap().join("medcalc_bench/test_data.csv"))
        .unwrap();
    let kept: Vec<_> = rows
        .iter()
        .filter(|r| ids.contains(&r.row_number.to_string()))
        .collect();
    let calculators: BTreeSet<u32> = kept.iter().map(|r| r.calculator_id).collect();
    assert_eq!(
        calculators.len(),
        55,
        "two rows of each of the 55 calculators"
    );
    let categories: BTreeSet<&str> = kept.iter().map(|r| r.category.as_str()).collect();
    let all: BTreeSet<&str> = rows.iter().map(|r| r.category.as_str()).collect();
    assert_eq!(categories, all);
}

/// The hub's parquet copies hold the release's rows with the ids as integers; written in that
/// schema, every real row reads back as the CSV or JSONL gives it.
#[test]
fn real_rows_read_the_same_from_the_hub_parquet_schema() {
    let Some(dir) = data_dir() else { return };
    let out = tempfile::tempdir().unwrap();

    let csv_rows = talr_evals::medcalc::load(&dir.join("medcalc_bench/test_data.csv")).unwrap();
    let parquet = out.path().join("test-00000-of-00001.parquet");
    common::write_medcalc(&parquet, &csv_rows);
    let parquet_rows = talr_evals::medcalc::load(&parquet).unwrap();
    assert_eq!(parquet_rows.len(), 1047);
    assert_eq!(common::as_json(&parquet_rows), common::as_json(&csv_rows));

    let items = talr_evals::gsm8k::load(&dir.join("gsm8k/test.jsonl")).unwrap();
    let parquet = out.path().join("gsm8k.parquet");
    common::write_gsm8k(&parquet, &items);
    let read = talr_evals::gsm8k::load(&parquet).unwrap();
    assert_eq!(read.len(), 1319);
    assert!(read
        .iter()
        .zip(&items)
        .all(|(a, b)| a.question == b.question && a.answer == b.answer));
}
