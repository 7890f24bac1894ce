//! MedCalc-Bench scoring: ground truths given as answers score correct, answers just outside the
//! limits score wrong. On a CSV the test writes, and on the real test set when `TALR_DATA_DIR`
//! holds `medcalc_bench/test_data.csv`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use talr_evals::medcalc::extract::{output_kind, OutputKind};
use talr_evals::medcalc::{self, templates, Row};

fn answer(text: &str) -> String {
    format!("{{\"step_by_step_thinking\": \"...\", \"answer\": \"{text}\"}}")
}

/// The ground truth moved just outside what may count as correct.
fn just_wrong(row: &Row) -> String {
    match output_kind(row.calculator_id).unwrap() {
        OutputKind::Date => {
            let d = medcalc::extract::parse_date(&row.ground_truth_answer).unwrap();
            (d + chrono::Duration::days(1))
                .format("%m/%d/%Y")
                .to_string()
        }
        OutputKind::WeeksDays => {
            let s = &row.ground_truth_answer;
            let nums: Vec<u64> = s
                .split(|c: char| !c.is_ascii_digit())
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap())
                .collect();
            format!("({} weeks, {} days)", nums[0], nums[1] + 1)
        }
        OutputKind::Integer => {
            let v: f64 = row.ground_truth_answer.trim().parse().unwrap();
            format!("{}", v + 1.0)
        }
        OutputKind::Decimal => {
            let hi: f64 = row.upper_limit.trim().parse().unwrap();
            format!("{}", hi + hi.abs().max(1.0) * 1e-4)
        }
    }
}

fn check_file(path: &Path) {
    let rows = medcalc::load(path).unwrap();
    let truths: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.row_number.to_string(), answer(&r.ground_truth_answer)))
        .collect();
    let (agg, items) = medcalc::score(&rows, &truths).unwrap();
    let wrong: Vec<_> = items.iter().filter(|i| !i.correct).collect();
    assert!(
        wrong.is_empty(),
        "{} rows fail on their own ground truth: {wrong:#?}",
        wrong.len()
    );
    assert_eq!(agg.accuracy, 1.0);
    let moved: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.row_number.to_string(), answer(&just_wrong(r))))
        .collect();
    let (agg, items) = medcalc::score(&rows, &moved).unwrap();
    let right: Vec<_> = items.iter().filter(|i| i.correct).collect();
    assert!(right.is_empty(), "moved answers still count: {right:#?}");
    assert_eq!(agg.accuracy, 0.0);
}

#[test]
fn synthetic_template_rows_round_trip_through_csv_and_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    medcalc::write_csv(&path, &templates::generate(10, 42)).unwrap();
    check_file(&path);
}

#[test]
fn categories_and_scoring_on_a_hand_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let header = "Row Number,Calculator ID,Calculator Name,Category,Output Type,Note ID,Note Type,Patient Note,Question,Relevant Entities,Ground Truth Answer,Lower Limit,Upper Limit,Ground Truth Explanation";
    let body = [
        "1,2,Creatinine Clearance,lab,decimal,1,Extracted,note,q,{},101.5,96.425,106.575,e",
        "2,4,CHA2DS2-VASc Score,Risk,integer,2,Extracted,note,q,{},3,3,3,e",
        "3,13,Estimated Due Date,date,date,3,Template,note,q,{},02/08/2012,02/08/2012,02/08/2012,e",
        "4,69,Estimated Gestational Age,date,integer,4,Template,note,q,{},\"('4 weeks', '3 days')\",\"('4 weeks', '3 days')\",\"('4 weeks', '3 days')\",e",
    ];
    std::fs::write(&path, format!("{header}\n{}\n", body.join("\n"))).unwrap();
    let rows = medcalc::load(&path).unwrap();
    assert_eq!(rows[0].category, "lab test");
    assert_eq!(rows[1].category, "risk");
    check_file(&path);
    // Dates and tuples in the formats the reference accepts.
    let responses: HashMap<String, String> = [
        ("1", answer("str(round(101.5, 1))")),
        ("2", answer("3 out of 9")),
        ("3", answer("2/8/2012")),
        ("4", answer("[4, 3]")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (agg, _) = medcalc::score(&rows, &responses).unwrap();
    assert_eq!(agg.accuracy, 1.0);
    assert_eq!(agg.per_category["date"].n, 2);
}

#[test]
fn a_bad_ground_truth_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "Row Number,Calculator ID,Calculator Name,Category,Output Type,Note ID,Note Type,Patient Note,Question,Ground Truth Answer,Lower Limit,Upper Limit,Ground Truth Explanation\n7,13,Due,date,date,1,T,n,q,not a date,x,x,e\n").unwrap();
    let rows = medcalc::load(&path).unwrap();
    let err = medcalc::score(&rows, &HashMap::new()).unwrap_err();
    assert!(format!("{err:#}").contains("row 7"), "{err:#}");
}

#[test]
fn real_test_set_ground_truths_score_correct() {
    let Some(dir) = std::env::var_os("TALR_DATA_DIR").map(PathBuf::from) else {
        eprintln!("skipping: TALR_DATA_DIR is not set");
        return;
    };
    let path = dir.join("medcalc_bench/test_data.csv");
    if path.exists() {
        check_file(&path);
    } else {
        eprintln!("skipping: {} does not exist", path.display());
    }
}

#[test]
fn a_subset_spreads_over_calculators_and_keeps_file_order() {
    // Rows sorted by calculator, as the real files are: 3 of calculator 2, 2 of 9, 4 of 5.
    let mut rows = templates::generate(1, 7);
    let template = rows.remove(0);
    let rows: Vec<Row> = [(2, 3), (9, 2), (5, 4)]
        .iter()
        .flat_map(|&(calculator, count)| std::iter::repeat_n(calculator, count))
        .enumerate()
        .map(|(i, calculator_id)| Row {
            row_number: i as u64 + 1,
            calculator_id,
            ..template.clone()
        })
        .collect();
    let kept = |n| -> Vec<(u32, u64)> {
        medcalc::spread_over_calculators(rows.clone(), n)
            .iter()
            .map(|r| (r.calculator_id, r.row_number))
            .collect()
    };
    assert_eq!(kept(3), [(2, 1), (9, 4), (5, 6)]);
    assert_eq!(kept(5), [(2, 1), (2, 2), (9, 4), (9, 5), (5, 6)]);
    // Calculator 9 runs out; the others go on taking turns.
    assert_eq!(kept(8).len(), 8);
    assert!(!kept(8).contains(&(5, 9)));
    assert_eq!(kept(100).len(), rows.len());
    // The generator interleaves its calculators, so a subset of its rows is their first N.
    let generated = templates::generate(4, 3);
    let first: Vec<u64> = generated[..15].iter().map(|r| r.row_number).collect();
    let spread: Vec<u64> = medcalc::spread_over_calculators(generated, 15)
        .iter()
        .map(|r| r.row_number)
        .collect();
    assert_eq!(spread, first);
}
