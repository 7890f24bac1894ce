//! MedCalc-Bench: clinical calculations from patient notes, scored as the reference does.
//!
//! - Data: the v1.0 CSV (`Row Number`, `Calculator ID`, `Calculator Name`, `Category`,
//!   `Output Type`, `Note ID`, `Note Type`, `Patient Note`, `Question`, `Ground Truth Answer`,
//!   `Lower Limit`, `Upper Limit`, `Ground Truth Explanation`, ...), or the hub's parquet copy
//!   of it (`ncbi/MedCalc-Bench-v1.0`); or rows from the [`templates`] generator (synthetic).
//! - Prompts: the reference's zero-shot prompts: a system message asking for a JSON dict with
//!   `step_by_step_thinking` and `answer` (CoT) or with `answer` only (label-only), and a user
//!   message with the note and the task.
//! - SFT targets: the same JSON shape, from `Ground Truth Explanation` + answer (CoT) or the
//!   answer alone (label-only).
//! - Extraction and scoring: [`extract`] (the reference's `extract_answer` / `check_correctness`).
//! - Metrics: accuracy overall, per category and per calculator.

pub mod expr;
pub mod extract;
pub mod templates;

use anyhow::{bail, Context, Result};
use extract::{output_kind, Truth};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    #[serde(rename = "Row Number")]
    pub row_number: u64,
    #[serde(rename = "Calculator ID")]
    pub calculator_id: u32,
    #[serde(rename = "Calculator Name")]
    pub calculator_name: String,
    #[serde(rename = "Category")]
    pub category: String,
    #[serde(rename = "Output Type")]
    pub output_type: String,
    #[serde(rename = "Note ID")]
    pub note_id: String,
    #[serde(rename = "Note Type")]
    pub note_type: String,
    #[serde(rename = "Patient Note")]
    pub patient_note: String,
    #[serde(rename = "Question")]
    pub question: String,
    #[serde(rename = "Relevant Entities", default)]
    pub relevant_entities: String,
    #[serde(rename = "Ground Truth Answer")]
    pub ground_truth_answer: String,
    #[serde(rename = "Lower Limit")]
    pub lower_limit: String,
    #[serde(rename = "Upper Limit")]
    pub upper_limit: String,
    #[serde(rename = "Ground Truth Explanation")]
    pub ground_truth_explanation: String,
}

/// The category names used in reports: the files spell some differently (case, spacing,
/// `lab` vs `lab test`).
pub fn normalize_category(raw: &str) -> String {
    let c = raw.trim().to_lowercase().replace(['_', '-'], " ");
    match c.as_str() {
        "lab" | "labs" | "lab tests" | "laboratory" => "lab test".into(),
        "dose" | "dosage conversion" | "dosing" => "dosage".into(),
        "dates" => "date".into(),
        "diagnostic" => "diagnosis".into(),
        _ => c,
    }
}

/// Loads MedCalc-Bench rows from the release's CSV, or from the hub copy's parquet
/// (`ncbi/MedCalc-Bench-v1.0`, `data/test-00000-of-00001.parquet`: the same columns, with the
/// two ids as integers); every row's calculator and ground truth must be scorable.
pub fn load(path: &Path) -> Result<Vec<Row>> {
    let rows = if crate::parquet::is_parquet(path) {
        let (header, records) = crate::parquet::as_csv_records(path)?;
        records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                record
                    .deserialize::<Row>(Some(&header))
                    .with_context(|| format!("{}: row {}", path.display(), i + 1))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        reader
            .deserialize::<Row>()
            .enumerate()
            .map(|(i, rec)| rec.with_context(|| format!("{}: data row {}", path.display(), i + 1)))
            .collect::<Result<Vec<_>>>()?
    };
    if rows.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(rows
        .into_iter()
        .map(|row| Row {
            category: normalize_category(&row.category),
            ..row
        })
        .collect())
}

/// `n` of `rows` spread evenly over their calculators, in file order: the first row of each
/// calculator (in order of first appearance), then the second of each, and so on, until `n` are
/// taken. The test set has about 19 rows per calculator, so this keeps each category's share
/// (stratified by category) and every calculator in a small subset; the files are sorted by
/// calculator, so their first N rows would cover a handful of calculators. On the template
/// generator's interleaved rows it keeps exactly the first N.
pub fn spread_over_calculators(rows: Vec<Row>, n: usize) -> Vec<Row> {
    if n >= rows.len() {
        return rows;
    }
    let mut calculators: Vec<u32> = Vec::new();
    let mut rank_in_calculator = Vec::with_capacity(rows.len());
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for row in &rows {
        let count = seen.entry(row.calculator_id).or_insert_with(|| {
            calculators.push(row.calculator_id);
            0
        });
        rank_in_calculator.push(*count);
        *count += 1;
    }
    let calculator_rank: HashMap<u32, usize> = calculators
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i))
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| {
        (
            rank_in_calculator[i],
            calculator_rank[&rows[i].calculator_id],
        )
    });
    let mut keep = vec![false; rows.len()];
    for &i in &order[..n] {
        keep[i] = true;
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, kept)| kept.then_some(row))
        .collect()
}

/// Writes rows in the dataset's CSV schema, atomically.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    {
        let mut w =
            csv::Writer::from_path(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        for r in rows {
            w.serialize(r)?;
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub use crate::task::Style;

const COT_SHAPE: &str = r#"{"step_by_step_thinking": str(your_step_by_step_thinking_procress_to_solve_the_question), "answer": str(short_and_direct_answer_of_the_question)}"#;
const LABEL_SHAPE: &str = r#"{"answer": str(value which is the answer to the question)}"#;

/// The system and user messages for `row`.
pub fn prompt(row: &Row, style: Style) -> (String, String) {
    let (system, shape) = match style {
        Style::Cot => (
            format!(
                "You are a helpful assistant for calculating a score for a given patient note. \
                 Please think step-by-step to solve the question and then generate the required \
                 score. Your output should only contain a JSON dict formatted as {COT_SHAPE}."
            ),
            COT_SHAPE,
        ),
        Style::LabelOnly => (
            format!(
                "You are a helpful assistant for calculating a score for a given patient note. \
                 Please output answer only without any other text. Your output should only \
                 contain a JSON dict formatted as {LABEL_SHAPE}."
            ),
            LABEL_SHAPE,
        ),
    };
    let user = format!(
        "Here is the patient note:\n{}\n\nHere is the task:\n{}\n\nPlease directly output the \
         JSON dict formatted as {shape}:",
        row.patient_note, row.question
    );
    (system, user)
}

/// The training example for `row`: its prompt and target, with its row number as id.
pub fn example(row: &Row, style: Style) -> talr_model::ChatExample {
    let (system, user) = prompt(row, style);
    talr_model::ChatExample::new(row.row_number, Some(system), user, target(row, style))
}

/// The SFT target for `row`, in the JSON shape its prompt asks for (thinking before the answer).
pub fn target(row: &Row, style: Style) -> String {
    let quote = |s: &str| serde_json::Value::from(s.trim()).to_string();
    let answer = quote(&row.ground_truth_answer);
    match style {
        Style::Cot => format!(
            "{{\"step_by_step_thinking\": {}, \"answer\": {answer}}}",
            quote(&row.ground_truth_explanation)
        ),
        Style::LabelOnly => format!("{{\"answer\": {answer}}}"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemScore {
    pub row_number: u64,
    pub calculator_id: u32,
    pub category: String,
    pub extracted: Option<String>,
    pub correct: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Accuracy {
    pub correct: usize,
    pub n: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub accuracy: f64,
    pub n: usize,
    pub missing: usize,
    pub per_category: BTreeMap<String, Accuracy>,
    pub per_calculator: BTreeMap<String, Accuracy>,
}

/// The parsed ground truth of `row`, or an error naming the row and what is wrong.
pub fn truth(row: &Row) -> Result<Truth> {
    let kind = output_kind(row.calculator_id).with_context(|| {
        format!(
            "row {}: calculator id {} is not one of MedCalc-Bench's",
            row.row_number, row.calculator_id
        )
    })?;
    Truth::parse(
        kind,
        &row.ground_truth_answer,
        &row.lower_limit,
        &row.upper_limit,
    )
    .with_context(|| {
        format!(
            "row {}: cannot parse the ground truth {:?} (limits {:?}, {:?})",
            row.row_number, row.ground_truth_answer, row.lower_limit, row.upper_limit
        )
    })
}

/// Scores responses keyed by `Row Number`; a missing response is wrong.
pub fn score(
    rows: &[Row],
    responses: &HashMap<String, String>,
) -> Result<(Aggregate, Vec<ItemScore>)> {
    let mut items = Vec::with_capacity(rows.len());
    let mut missing = 0;
    for row in rows {
        let truth = truth(row)?;
        let (extracted, correct) = match responses.get(&row.row_number.to_string()) {
            Some(r) => {
                let a = extract::extract(r, truth.kind);
                let ok = a.as_ref().is_some_and(|a| truth.accepts(a));
                (a.map(|a| format!("{a:?}")), ok)
            }
            None => {
                missing += 1;
                (None, false)
            }
        };
        items.push(ItemScore {
            row_number: row.row_number,
            calculator_id: row.calculator_id,
            category: row.category.clone(),
            extracted,
            correct,
        });
    }
    let mut per_category: BTreeMap<String, Accuracy> = BTreeMap::new();
    let mut per_calculator: BTreeMap<String, Accuracy> = BTreeMap::new();
    for (row, item) in rows.iter().zip(&items) {
        for (map, key) in [
            (&mut per_category, row.category.clone()),
            (
                &mut per_calculator,
                format!("{} {}", row.calculator_id, row.calculator_name),
            ),
        ] {
            let e = map.entry(key).or_default();
            e.n += 1;
            e.correct += usize::from(item.correct);
        }
    }
    for acc in per_category.values_mut().chain(per_calculator.values_mut()) {
        acc.accuracy = acc.correct as f64 / acc.n.max(1) as f64;
    }
    let correct = items.iter().filter(|i| i.correct).count();
    Ok((
        Aggregate {
            accuracy: correct as f64 / rows.len().max(1) as f64,
            n: rows.len(),
            missing,
            per_category,
            per_calculator,
        },
        items,
    ))
}

/// MedCalc-Bench as a runner task.
pub struct MedcalcTask {
    pub name: String,
    pub rows: Vec<Row>,
    pub style: Style,
}

impl crate::task::Task for MedcalcTask {
    fn name(&self) -> &str {
        &self.name
    }

    fn prompts(&self) -> Vec<crate::task::PromptItem> {
        self.rows
            .iter()
            .map(|r| {
                let (system, user) = prompt(r, self.style);
                crate::task::PromptItem {
                    id: r.row_number.to_string(),
                    system: Some(system),
                    user_message: user,
                }
            })
            .collect()
    }

    fn max_new_tokens(&self) -> usize {
        match self.style {
            Style::Cot => 512,
            Style::LabelOnly => 48,
        }
    }

    fn score(&self, responses: &HashMap<String, String>) -> Result<crate::task::Scored> {
        let (agg, items) = score(&self.rows, responses)?;
        crate::task::Scored::from_parts(agg, items)
    }

    fn truncate(&mut self, n: usize) {
        self.rows = spread_over_calculators(std::mem::take(&mut self.rows), n);
    }
}
