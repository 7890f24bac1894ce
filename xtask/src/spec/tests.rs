use super::*;

#[test]
fn cells_run_seed_by_seed_main_style_first_and_shared_cells_once() {
    let preset = load_preset("smoke").unwrap();
    let grids = [load_grid("table2").unwrap(), load_grid("lr_sweep").unwrap()];
    let cells = expand(&preset, &grids, &[0, 1]).unwrap();
    // table2: 7 methods; lr_sweep: 3 SFT rates, one of which is table2's SFT cell.
    let per_style_and_seed = 7 + 2;
    assert_eq!(cells.len(), per_style_and_seed * 2 * 2);
    let keys: Vec<(u64, Style)> = cells.iter().map(|c| (c.seed, c.style)).collect();
    let first = preset.styles[0];
    assert!(keys[..per_style_and_seed].iter().all(|&k| k == (0, first)));
    assert!(keys[per_style_and_seed..2 * per_style_and_seed]
        .iter()
        .all(|&k| k == (0, preset.styles[1])));
    assert!(keys[2 * per_style_and_seed..]
        .iter()
        .all(|&(seed, _)| seed == 1));
    let shared: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.method == "sft" && c.learning_rate == preset.learning_rates.large)
        .collect();
    assert_eq!(shared.len(), 4);
    assert!(shared.iter().all(|c| c.grids == ["table2", "lr_sweep"]));
    let mut ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), cells.len());
    assert_eq!(cells[0].method, "sft", "methods keep the grid's order");
}

#[test]
fn sft_and_wise_ft_share_their_training_and_nothing_else_does() {
    let preset = load_preset("smoke").unwrap();
    let grids = [
        load_grid("table2").unwrap(),
        load_grid("wise_ft_alpha").unwrap(),
    ];
    let mut cells = expand(&preset, &grids, &[0, 1]).unwrap();
    mark_shared_training(&preset, &[0, 1], &mut cells).unwrap();
    let merges_sft = |c: &Cell| c.method == "sft" || c.method.starts_with("wise_ft");
    for a in &cells {
        for b in &cells {
            let same_run = a.style == b.style && a.seed == b.seed;
            let expected = a.id == b.id || (same_run && merges_sft(a) && merges_sft(b));
            assert_eq!(
                a.training == b.training,
                expected,
                "{} vs {}",
                a.method,
                b.method
            );
        }
        assert_eq!(a.training_shared, merges_sft(a), "{}", a.method);
    }
}

#[test]
fn tables_count_a_cell_in_every_grid_it_belongs_to_now() {
    let mut preset = load_preset("smoke").unwrap();
    // Run for the sweep alone, the SFT cell at the large rate is still table2's SFT cell.
    let sweep_only = expand(&preset, &[load_grid("lr_sweep").unwrap()], &[0]).unwrap();
    let at_large = sweep_only
        .iter()
        .find(|c| c.learning_rate == preset.learning_rates.large)
        .unwrap();
    assert_eq!(at_large.grids, ["lr_sweep"]);
    let membership = grid_membership(&preset, &[0]).unwrap();
    assert!(["lr_sweep", "table2"]
        .iter()
        .all(|g| membership[&at_large.id].iter().any(|m| m == g)));
    // Once the preset's rates move, a cell of the old rate belongs to no grid.
    preset.learning_rates.large *= 3.0;
    preset.learning_rates.sweep = vec![preset.learning_rates.large];
    let moved = grid_membership(&preset, &[0]).unwrap();
    assert!(!moved.contains_key(&at_large.id));
    // Grids limited to other presets contribute nothing.
    assert!(moved.values().flatten().all(|g| g != "methods_at_1e_4"));
}

#[test]
fn a_preset_extends_another_field_by_field() {
    let qwen3 = load_preset("paper-qwen3").unwrap();
    let paper = load_preset("paper").unwrap();
    assert_eq!(qwen3.name, "paper-qwen3");
    assert_eq!(qwen3.model, "Qwen/Qwen3-4B");
    assert_eq!(qwen3.seeds, paper.seeds);
    assert_eq!(qwen3.learning_rates.large, paper.learning_rates.large);

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap()
    };
    write("a", "extends: b\nmodel: x\n");
    write("b", "extends: a\n");
    let err = preset_fields(dir.path(), "a", &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("cycle: a -> b -> a"), "{err}");
    write("c", "extends: nowhere\n");
    let err = preset_fields(dir.path(), "c", &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string().starts_with("c.yaml: extends: nowhere: no "),
        "{err}"
    );
}

#[test]
fn a_grid_rate_is_named_or_a_number() {
    let parse = |y: &str| serde_yaml::from_str::<LrChoice>(y);
    assert_eq!(parse("large").unwrap(), LrChoice::Large);
    assert_eq!(parse("1.0e-4").unwrap(), LrChoice::Fixed(1e-4));
    let err = parse("huge").unwrap_err().to_string();
    assert!(
        err.contains("learning_rate") && err.contains("huge"),
        "{err}"
    );
    assert!(parse("-1.0").is_err());
}

#[test]
fn a_method_override_changes_that_methods_config_and_cells_only() {
    let mut preset = load_preset("smoke").unwrap();
    let grids = [load_grid("table2").unwrap()];
    let before = expand(&preset, &grids, &[0]).unwrap();
    preset.method_overrides.insert(
        "l2".into(),
        serde_yaml::from_str("{regularizer: {l2_to_init: {lambda: 1.0e6}}}").unwrap(),
    );
    let after = expand(&preset, &grids, &[0]).unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.id == b.id, a.method != "l2", "{}", a.method);
    }
    let l2 = after.iter().find(|c| c.method == "l2").unwrap();
    assert_eq!(
        l2.config.method.regularizer,
        talr_train::config::Regularizer::L2ToInit { lambda: 1.0e6 }
    );

    preset.method_overrides.insert(
        "l2".into(),
        serde_yaml::from_str("{regulariser: {l2_to_init: {lambda: 1.0}}}").unwrap(),
    );
    let err = format!(
        "{:#}",
        resolve_method(&preset, "l2", Style::LabelOnly, 1e-3, 0).unwrap_err()
    );
    assert!(
        err.contains("l2.yaml with preset smoke's method_overrides.l2")
            && err.contains("regulariser"),
        "{err}"
    );
}

#[test]
fn a_bf16_preset_renames_every_cell_and_training_and_auto_is_refused() {
    let mut preset = load_preset("smoke").unwrap();
    assert_eq!(preset.precision, talr_model::Precision::F32);
    let grids = [load_grid("table2").unwrap()];
    let f32_cells = expand(&preset, &grids, &[0]).unwrap();
    preset.precision = talr_model::Precision::Bf16;
    let bf16_cells = expand(&preset, &grids, &[0]).unwrap();
    for (a, b) in f32_cells.iter().zip(&bf16_cells) {
        assert_ne!(a.id, b.id, "{}", a.method);
        assert_ne!(a.training, b.training, "{}", a.method);
    }
    preset.precision = talr_model::Precision::Auto;
    let err = check_precision(&preset).unwrap_err().to_string();
    assert!(
        err.contains("precision: auto") && err.contains("f32 or bf16"),
        "{err}"
    );
}

#[test]
fn style_overrides_rename_only_that_styles_cells() {
    let mut preset = load_preset("smoke").unwrap();
    preset.styles = vec![Style::LabelOnly, Style::Cot];
    let grids = [load_grid("table2").unwrap()];
    let before = expand(&preset, &grids, &[0]).unwrap();
    preset.style_training.insert(
        Style::Cot,
        serde_yaml::from_str("{max_length: 4096}").unwrap(),
    );
    let after = expand(&preset, &grids, &[0]).unwrap();
    let max_length = |style| preset.training_setting(style, "max_length")?.as_u64();
    assert_eq!(max_length(Style::Cot), Some(4096));
    assert_eq!(
        max_length(Style::LabelOnly),
        preset.training.get("max_length").and_then(|v| v.as_u64())
    );
    assert_eq!(before.len(), after.len());
    for (a, b) in before.iter().zip(&after) {
        let cot = a.style == Style::Cot;
        assert_eq!(a.id != b.id, cot, "{} {:?}", a.method, a.style);
        assert_eq!(a.training != b.training, cot, "{} {:?}", a.method, a.style);
        assert_eq!(b.config.training.max_length == 4096, cot, "{}", b.method);
    }
    // The domain's reply budget for CoT renames the CoT cells again, and only them.
    preset.domain_reply_budget.insert(Style::Cot, 1024);
    let with_budget = expand(&preset, &grids, &[0]).unwrap();
    for (a, b) in after.iter().zip(&with_budget) {
        let cot = a.style == Style::Cot;
        assert_eq!(a.id != b.id, cot, "{} {:?}", a.method, a.style);
        assert_eq!(a.training, b.training, "a reply budget changes no training");
    }
}

#[test]
fn methods_that_resolve_alike_are_one_cell_under_either_name() {
    let mut preset = load_preset("smoke").unwrap();
    let sweep = load_grid("l2_lambda_sweep").unwrap();
    let distinct = expand(&preset, std::slice::from_ref(&sweep), &[0]).unwrap();
    assert_eq!(distinct.len(), sweep.methods.len() * preset.styles.len());

    preset.method_overrides.insert(
        "l2".into(),
        serde_yaml::from_str("{regularizer: {l2_to_init: {lambda: 1.0e6}}}").unwrap(),
    );
    let cells = expand(&preset, std::slice::from_ref(&sweep), &[0]).unwrap();
    assert_eq!(cells.len(), distinct.len() - preset.styles.len());
    assert!(cells.iter().all(|c| c.method != "l2_lambda_1e6"));
    let l2_ids: Vec<&str> = cells
        .iter()
        .filter(|c| c.method == "l2")
        .map(|c| c.id.as_str())
        .collect();
    let mut only_1e6 = sweep.clone();
    only_1e6.methods = vec!["l2_lambda_1e6".into()];
    let filtered = expand(&preset, &[only_1e6], &[0]).unwrap();
    assert_eq!(
        filtered.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        l2_ids,
        "a filter to the other name finds the same cells"
    );
    let untouched = |c: &Cell| c.method != "l2" && c.method != "l2_lambda_1e6";
    let before: Vec<&str> = distinct
        .iter()
        .filter(|c| untouched(c))
        .map(|c| c.id.as_str())
        .collect();
    let after: Vec<&str> = cells
        .iter()
        .filter(|c| untouched(c))
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(before, after);
}
