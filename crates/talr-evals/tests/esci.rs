//! ESCI over parquet files the test writes in the official schema: the join, the filters, a
//! missing product, stratified sampling and the metrics.

use std::collections::HashMap;
use std::path::Path;
use talr_evals::esci::{self, Filter, PRODUCTS_FILE};

fn fixture(dir: &Path, with_missing: bool) {
    talr_evals::esci_fixture::write(dir, with_missing).unwrap();
}

#[test]
fn join_and_filters_follow_the_official_schema() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let (rows, skipped) = esci::load(dir.path(), &Filter::default()).unwrap();
    assert_eq!(skipped, 0);
    let ids: Vec<i64> = rows.iter().map(|r| r.example_id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 5, 6, 7, 8],
        "us, small_version, test only"
    );
    assert_eq!(rows[0].title, "title of P1");
    assert_eq!(rows[0].bullet_points, "", "a null column reads as empty");
    let es = Filter {
        locale: Some("es".into()),
        ..Filter::default()
    };
    let (rows, _) = esci::load(dir.path(), &es).unwrap();
    assert_eq!(rows.iter().map(|r| r.label).collect::<String>(), "CE");
    let all = Filter {
        locale: None,
        small_version: false,
        ..Filter::default()
    };
    assert_eq!(esci::load(dir.path(), &all).unwrap().0.len(), 11);
}

#[test]
fn a_missing_product_is_a_clear_error_or_a_counted_skip() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), true);
    let err = esci::load(dir.path(), &Filter::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("P_MISSING") && err.contains(PRODUCTS_FILE),
        "{err}"
    );
    let skip = Filter {
        skip_missing_products: true,
        ..Filter::default()
    };
    let (rows, skipped) = esci::load(dir.path(), &skip).unwrap();
    assert_eq!((rows.len(), skipped), (7, 1));
}

#[test]
fn stratified_sample_keeps_label_shares_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let (rows, _) = esci::load(dir.path(), &Filter::default()).unwrap();
    // 8 rows: E×3, S×2, C×1, I×2 → 4 rows: E 1.5, S 1, C .5, I 1 → E 2, S 1, I 1 (or C).
    let a = esci::stratified_sample(rows.clone(), 4, 7);
    let b = esci::stratified_sample(rows.clone(), 4, 7);
    assert_eq!(a.len(), 4);
    assert_eq!(
        a.iter().map(|e| e.example_id).collect::<Vec<_>>(),
        b.iter().map(|e| e.example_id).collect::<Vec<_>>()
    );
    let count = |c: char| a.iter().filter(|e| e.label == c).count();
    assert_eq!((count('S'), count('I')), (1, 1));
    assert!(count('E') >= 1);
}

#[test]
fn metrics_accuracy_macro_f1_and_confusion() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let (rows, _) = esci::load(dir.path(), &Filter::default()).unwrap();
    let gold: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.example_id.to_string(), esci::target(r, false)))
        .collect();
    let (agg, _) = esci::score(&rows, &gold);
    assert_eq!((agg.accuracy, agg.macro_f1), (1.0, 1.0));
    // Everything answered "E": accuracy 3/8, E's F1 = 2·(3/8)·1/(3/8+1) = 6/11, others 0.
    let all_e: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.example_id.to_string(), r#"{"label": "E"}"#.to_string()))
        .collect();
    let (agg, _) = esci::score(&rows, &all_e);
    assert!((agg.accuracy - 3.0 / 8.0).abs() < 1e-12);
    assert!((agg.per_class["E"].f1 - 6.0 / 11.0).abs() < 1e-12);
    assert!((agg.macro_f1 - 6.0 / 11.0 / 4.0).abs() < 1e-12);
    assert_eq!(agg.confusion[1][0], 2, "both S rows predicted E");
    // No reply at all lands in the "none" column.
    let (agg, _) = esci::score(&rows, &HashMap::new());
    assert_eq!(agg.missing, 8);
    assert_eq!(agg.confusion.iter().map(|r| r[4]).sum::<usize>(), 8);
}
