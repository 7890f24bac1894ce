use super::*;

fn result(method: &str, seed: u64, domain: f64, code_length: [f64; 2]) -> CellResult {
    let [gsm8k, humaneval] = code_length;
    crate::test_cell(
        method,
        seed,
        domain,
        0.5,
        &[("gsm8k-100", gsm8k), ("humaneval", humaneval)],
    )
}

#[test]
fn rows_average_seeds_and_report_code_length_drift_against_the_base() {
    let results = [
        result("base", 0, 0.0, [1.0, 0.5]),
        result("talr", 0, 0.2, [1.1, 0.6]),
        result("talr", 1, 0.4, [1.3, 0.6]),
        result("sft", 0, 0.3, [1.5, 0.9]),
    ];
    let rows = grid_rows(&results, "table2");
    let labels: Vec<String> = rows.iter().map(label).collect();
    assert_eq!(
        labels,
        ["base model", "sft (lr 3e-4)", "talr (lr 3e-4, 2 seeds)"]
    );
    let talr = &rows[2];
    let (domain, general, _) = &talr.cols["label-only"];
    assert!((domain.mean - 0.3).abs() < 1e-12 && domain.n == 2);
    assert!((general.mean - 0.5).abs() < 1e-12);
    // Seed 0: (0.1 + 0.1) / 2; seed 1: (0.3 + 0.1) / 2.
    assert!((talr.drift["label-only"].mean - 0.15).abs() < 1e-12);
    assert!((rows[1].drift["label-only"].mean - 0.45).abs() < 1e-12);
    assert!(rows[0].drift.is_empty(), "the base model has no drift");

    let md = markdown(&rows, "table2");
    assert!(md.contains("| sft (lr 3e-4) | +0.450 |"), "{md}");
    let csv = csv(&rows);
    assert!(csv.lines().next().unwrap().ends_with(",code_length_drift"));
    assert!(csv.contains("talr,3e-4,label-only,0.300000"), "{csv}");
    assert!(csv.lines().nth(3).unwrap().ends_with(",0.150000"), "{csv}");

    // A base evaluation in a style no cell was trained in adds no empty columns.
    let mut cot_base = result("base", 0, 0.0, [1.0, 0.5]);
    cot_base.style = "cot".into();
    let with_cot_base = [results.as_slice(), &[cot_base]].concat();
    let md = markdown(&grid_rows(&with_cot_base, "table2"), "table2");
    assert!(
        md.contains("| label-only domain |") && !md.contains("cot"),
        "{md}"
    );

    // A row whose styles have different seed counts names each, so the single CoT run is
    // not labelled as a two-seed mean.
    let mut cot_talr = result("talr", 0, 0.1, [1.0, 0.5]);
    cot_talr.style = "cot".into();
    let mixed = [results.as_slice(), &[cot_talr]].concat();
    let rows = grid_rows(&mixed, "table2");
    assert_eq!(
        label(&rows[2]),
        "talr (lr 3e-4, seeds: label-only 2, cot 1)"
    );
    assert_eq!(label(&rows[1]), "sft (lr 3e-4)");
}

#[test]
fn models_sit_side_by_side_each_against_its_own_base_then_pooled() {
    let small = vec![
        result("base", 0, 0.0, [1.0, 0.5]),
        result("sft", 0, 0.2, [1.5, 0.5]),
        result("sft", 1, 0.4, [1.5, 0.5]),
    ];
    let big = vec![
        result("base", 0, 0.5, [0.6, 0.3]),
        result("sft", 0, 0.6, [0.7, 0.4]),
        result("sft", 1, 0.8, [0.7, 0.4]),
    ];
    let rows = model_rows(&[("small".into(), small), ("big".into(), big)], "table2");
    assert_eq!(rows.len(), 2);
    let sft = &rows[1];
    let keys: Vec<&String> = sft.cols.keys().collect();
    assert_eq!(
        keys,
        [
            "big label-only",
            "label-only (2 models)",
            "small label-only"
        ]
    );
    assert!((sft.cols["small label-only"].0.mean - 0.3).abs() < 1e-12);
    assert!((sft.cols["big label-only"].0.mean - 0.7).abs() < 1e-12);
    let pooled = &sft.cols["label-only (2 models)"].0;
    assert!((pooled.mean - 0.5).abs() < 1e-12 && pooled.n == 4);
    // Each model's drift is against its own base: small (0.5 + 0) / 2, big (0.1 + 0.1) / 2.
    assert!((sft.drift["small label-only"].mean - 0.25).abs() < 1e-12);
    assert!((sft.drift["big label-only"].mean - 0.1).abs() < 1e-12);
    assert!(!sft.drift.contains_key("label-only (2 models)"));
    assert_eq!(label(sft), "sft (lr 3e-4, 2 seeds)");
    let md = markdown(&rows, "table2");
    let header = md.lines().find(|l| l.starts_with("| method |")).unwrap();
    assert!(
        header.starts_with("| method | big label-only domain | big label-only general | big label-only avg | small label-only domain |")
            && header.contains("| label-only (2 models) domain |"),
        "{header}"
    );
    assert!(
        md.contains("0.558 / 0.381"),
        "the paper's averages stay beside ours: {md}"
    );
}
