//! Benchmark rows written in the hub copies' parquet schema, for tests of the hub path.
#![allow(dead_code)]

use polars::prelude::*;
use std::path::Path;
use talr_evals::gsm8k;
use talr_evals::medcalc::Row;

fn write(path: &Path, mut df: DataFrame) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
}

/// As `ncbi/MedCalc-Bench-v1.0`'s parquet: the two ids int64, every other column a string.
pub fn write_medcalc(path: &Path, rows: &[Row]) {
    let text = |f: fn(&Row) -> &str| rows.iter().map(|r| f(r).to_string()).collect::<Vec<_>>();
    let df = df!(
        "Row Number" => rows.iter().map(|r| r.row_number as i64).collect::<Vec<_>>(),
        "Calculator ID" => rows.iter().map(|r| r.calculator_id as i64).collect::<Vec<_>>(),
        "Calculator Name" => text(|r| &r.calculator_name),
        "Category" => text(|r| &r.category),
        "Output Type" => text(|r| &r.output_type),
        "Note ID" => text(|r| &r.note_id),
        "Note Type" => text(|r| &r.note_type),
        "Patient Note" => text(|r| &r.patient_note),
        "Question" => text(|r| &r.question),
        "Relevant Entities" => text(|r| &r.relevant_entities),
        "Ground Truth Answer" => text(|r| &r.ground_truth_answer),
        "Lower Limit" => text(|r| &r.lower_limit),
        "Upper Limit" => text(|r| &r.upper_limit),
        "Ground Truth Explanation" => text(|r| &r.ground_truth_explanation),
    )
    .unwrap();
    write(path, df);
}

/// As `openai/gsm8k`'s parquet: `question` and `answer` strings.
pub fn write_gsm8k(path: &Path, items: &[gsm8k::Item]) {
    let df = df!(
        "question" => items.iter().map(|i| i.question.clone()).collect::<Vec<_>>(),
        "answer" => items.iter().map(|i| i.answer.clone()).collect::<Vec<_>>(),
    )
    .unwrap();
    write(path, df);
}

/// The JSON of each row, for comparing loads (rows have no `PartialEq`).
pub fn as_json(rows: &[Row]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}
