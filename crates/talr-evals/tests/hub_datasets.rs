//! `hf://` task sources go through hf-hub's cache: a file already in `$HF_HOME` loads without
//! the network, in the hub copy's own format, and a file that is neither cached nor reachable is
//! an error naming it. Its own test binary, since it sets process-wide variables.

mod common;

use std::path::Path;
use talr_evals::{build_task, catalog, gsm8k, medcalc};

/// Lays `file` out in the hub cache under `home` as hf-hub stores a dataset file it downloaded.
fn cache_path(home: &Path, dataset: &str, file: &str) -> std::path::PathBuf {
    let repo = home
        .join("hub")
        .join(format!("datasets--{}", dataset.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    repo.join("snapshots").join(commit).join(file)
}

#[test]
fn hub_copies_of_medcalc_and_gsm8k_load_from_the_cache_and_misses_are_named() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    // Nothing listens there: a cache miss fails at once instead of reaching the real hub.
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");

    let rows = medcalc::templates::generate(1, 7);
    let medcalc_file = catalog::hub_copy("medcalc_bench/test_data.csv").unwrap();
    let (dataset, file) = medcalc_file.split_at("ncbi/MedCalc-Bench-v1.0".len());
    common::write_medcalc(&cache_path(home.path(), dataset, &file[1..]), &rows);
    let path = catalog::resolve_source(&format!("hf://{medcalc_file}")).unwrap();
    assert!(path.starts_with(home.path()), "{}", path.display());
    assert_eq!(
        common::as_json(&medcalc::load(&path).unwrap()),
        common::as_json(&rows)
    );
    let task = build_task(&format!("medcalc=hf://{medcalc_file}"), 1).unwrap();
    assert_eq!(task.prompts().len(), rows.len());

    let items = vec![
        gsm8k::Item {
            question: "Ann has 3 apples and buys 4 more. How many has she?".into(),
            answer: "3 + 4 = 7\n#### 7".into(),
        },
        gsm8k::Item {
            question: "A book costs $12. What do 2 cost?".into(),
            answer: "2 * 12 = 24\n#### 24".into(),
        },
    ];
    let gsm8k_file = catalog::hub_copy("gsm8k/test.jsonl").unwrap();
    let (dataset, file) = gsm8k_file.split_at("openai/gsm8k".len());
    common::write_gsm8k(&cache_path(home.path(), dataset, &file[1..]), &items);
    let task = build_task(&format!("gsm8k=hf://{gsm8k_file}"), 1).unwrap();
    let prompts = task.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[1].user_message.contains("A book costs $12"),
        "{}",
        prompts[1].user_message
    );

    let missing = "hf://openai/gsm8k/main/train-00000-of-00001.parquet";
    let err = format!("{:#}", catalog::resolve_source(missing).unwrap_err());
    assert!(
        err.contains("main/train-00000-of-00001.parquet") && err.contains("openai/gsm8k"),
        "{err}"
    );
}
