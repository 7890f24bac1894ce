//! Scoring a response file: ids that match no item of the task are reported, not silently
//! scored as zero.

use std::collections::HashMap;
use std::path::Path;
use talr_evals::build_task;
use talr_evals::responses::unmatched_ids;

#[test]
fn response_ids_that_match_nothing_are_an_error_and_partial_misses_are_listed() {
    let task = build_task("medcalc-synth", 1).unwrap();
    let first = task.prompts()[0].id.clone();
    let file = Path::new("replies.jsonl");

    let wrong: HashMap<String, String> = [("q-1", "x"), ("q-2", "y")]
        .map(|(id, r)| (id.to_string(), r.to_string()))
        .into();
    let err = unmatched_ids(task.as_ref(), &wrong, file)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("replies.jsonl: none of its 2 response ids is an item of medcalc-synth"),
        "{err}"
    );
    assert!(err.contains(&format!("{:?}", "q-1")), "{err}");

    let mixed: HashMap<String, String> = [(first.as_str(), "x"), ("q-2", "y")]
        .map(|(id, r)| (id.to_string(), r.to_string()))
        .into();
    assert_eq!(
        unmatched_ids(task.as_ref(), &mixed, file).unwrap(),
        vec!["q-2".to_string()]
    );
}
