//! The task registry: every benchmark talr knows, in one table. Task names, `--help` text,
//! "unknown task" errors, each task's headline metric (what the general average is made of) and
//! which tasks are domains with training examples all come from [`TASKS`].
//!
//! A task is named `NAME` (its default data) or `NAME=SOURCE`, where SOURCE is a local path,
//! `hf://ORG/DATASET/PATH/IN/REPO` (a file of a hub dataset, fetched with hf-hub) or, for the
//! synthetic sets, a seed. A domain task takes a `-cot` suffix for its step-by-step prompt.

use crate::catalog::{self, MEDCALC_SYNTH_TEST_SEED};
use crate::gsm8k::Gsm8kTask;
use crate::humaneval::HumanevalTask;
use crate::ifeval::IfevalTask;
use crate::medcalc::{self, MedcalcTask};
use crate::sandbox::{Limits, Sandbox};
use crate::task::{Style, Task};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use talr_model::ChatExample;

/// A fine-tuning domain: a family of tasks with training examples and two target styles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Domain {
    #[default]
    Medcalc,
    Esci,
}

impl Domain {
    pub fn is_medcalc(&self) -> bool {
        *self == Domain::Medcalc
    }

    pub fn name(self) -> &'static str {
        match self {
            Domain::Medcalc => "medcalc",
            Domain::Esci => "esci",
        }
    }
}

/// The domain of a task spec (`medcalc-synth=7`, `esci=DIR`), or an error naming what it is.
pub fn domain_of(spec: &str) -> Result<Domain> {
    let (name, _) = split_spec(spec);
    let (info, _) = info(name)?;
    info.domain
        .with_context(|| format!("{name} is a general task, not a domain"))
}

pub struct TaskInfo {
    pub name: &'static str,
    /// Where the data comes from when no SOURCE is given.
    pub default_data: &'static str,
    /// The aggregate metric that stands for the task in tables and the general average.
    pub headline_metric: &'static str,
    /// One item of the task's `result.json` → its id and whether it counts toward the headline
    /// metric: what paired, item-level comparisons of two models read.
    pub item_outcome: fn(&Value) -> Option<(String, bool)>,
    /// Set for domain tasks: they take `-cot`, and `talr data` makes training examples from them.
    pub domain: Option<Domain>,
    /// Our own generated stand-in, not the benchmark itself.
    pub synthetic: bool,
}

pub const TASKS: &[TaskInfo] = &[
    TaskInfo {
        name: "ifeval",
        default_data: "$TALR_DATA_DIR/ifeval/input_data.jsonl",
        headline_metric: "prompt_level_strict_acc",
        item_outcome: ifeval_item,
        domain: None,
        synthetic: false,
    },
    TaskInfo {
        name: "ifeval-synth",
        default_data: "541 synthetic items from seed 0 (SOURCE: another seed)",
        headline_metric: "prompt_level_strict_acc",
        item_outcome: ifeval_item,
        domain: None,
        synthetic: true,
    },
    TaskInfo {
        name: "gsm8k",
        default_data: "$TALR_DATA_DIR/gsm8k/test.jsonl",
        headline_metric: "exact_match_flexible",
        item_outcome: gsm8k_item,
        domain: None,
        synthetic: false,
    },
    TaskInfo {
        name: "gsm8k-100",
        default_data: "100 GSM8K test items (a pip-served asset)",
        headline_metric: "exact_match_flexible",
        item_outcome: gsm8k_item,
        domain: None,
        synthetic: false,
    },
    TaskInfo {
        name: "humaneval",
        default_data: "the 164 HumanEval problems (a pip-served asset)",
        headline_metric: "pass@1",
        item_outcome: humaneval_item,
        domain: None,
        synthetic: false,
    },
    TaskInfo {
        name: "medcalc",
        default_data: "$TALR_DATA_DIR/medcalc_bench/test_data.csv",
        headline_metric: "accuracy",
        item_outcome: correct_item,
        domain: Some(Domain::Medcalc),
        synthetic: false,
    },
    TaskInfo {
        name: "medcalc-template",
        default_data: "the Note Type \"Template\" rows of medcalc's file",
        headline_metric: "accuracy",
        item_outcome: correct_item,
        domain: Some(Domain::Medcalc),
        synthetic: false,
    },
    TaskInfo {
        name: "medcalc-synth",
        default_data: "the 11 template calculators, seed 1000, 20 rows each (SOURCE: a seed)",
        headline_metric: "accuracy",
        item_outcome: correct_item,
        domain: Some(Domain::Medcalc),
        synthetic: true,
    },
    TaskInfo {
        name: "esci",
        default_data: "$TALR_DATA_DIR/esci/ (the official parquet files; us, small, a stratified \
                       sample of 500 test examples)",
        headline_metric: "accuracy",
        item_outcome: correct_item,
        domain: Some(Domain::Esci),
        synthetic: false,
    },
];

fn id_of(item: &Value, key: &str) -> Option<String> {
    match item.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// IFEval's prompt-level strict accuracy: every instruction followed.
fn ifeval_item(item: &Value) -> Option<(String, bool)> {
    let follows = item.get("follow_strict")?.as_array()?;
    let all = follows.iter().all(|f| f.as_bool() == Some(true));
    Some((id_of(item, "key")?, all))
}

/// GSM8K's flexible exact match.
fn gsm8k_item(item: &Value) -> Option<(String, bool)> {
    Some((id_of(item, "id")?, item.get("flexible_correct")?.as_bool()?))
}

/// HumanEval with one sample per problem: pass@1 is whether it passed.
fn humaneval_item(item: &Value) -> Option<(String, bool)> {
    Some((id_of(item, "task_id")?, item.get("passed")?.as_bool()?))
}

/// MedCalc and ESCI: accuracy.
fn correct_item(item: &Value) -> Option<(String, bool)> {
    let id = id_of(item, "row_number").or_else(|| id_of(item, "example_id"))?;
    Some((id, item.get("correct")?.as_bool()?))
}

/// Splits `NAME=SOURCE` into its parts.
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('=') {
        Some((name, source)) => (name, Some(source)),
        None => (spec, None),
    }
}

/// The registry entry and prompt style of a task name (`medcalc-cot` is `medcalc`, CoT).
pub fn lookup(name: &str) -> Option<(&'static TaskInfo, Style)> {
    if let Some(info) = TASKS.iter().find(|t| t.name == name) {
        return Some((info, Style::LabelOnly));
    }
    let base = name.strip_suffix(Style::Cot.suffix())?;
    TASKS
        .iter()
        .find(|t| t.name == base && t.domain.is_some())
        .map(|info| (info, Style::Cot))
}

/// The task's registry entry, or an error listing the known names.
pub fn info(name: &str) -> Result<(&'static TaskInfo, Style)> {
    lookup(name).with_context(|| format!("unknown task {name:?} (known: {})", known_names()))
}

/// A task's per-item outcomes from the `items` of its `result.json`, by item id.
pub fn item_outcomes(
    name: &str,
    items: &Value,
) -> Result<std::collections::BTreeMap<String, bool>> {
    let (info, _) = info(name)?;
    items
        .as_array()
        .with_context(|| format!("{name}: `items` is not a list"))?
        .iter()
        .map(|item| {
            (info.item_outcome)(item)
                .with_context(|| format!("{name}: an item without an id or outcome: {item}"))
        })
        .collect()
}

/// The headline metric of a task by the name its results are filed under.
pub fn headline_metric(name: &str) -> Option<&'static str> {
    lookup(name).map(|(info, _)| info.headline_metric)
}

/// `ifeval, ifeval-synth, …, medcalc[-cot], …`: every name a task spec may start with.
pub fn known_names() -> String {
    TASKS
        .iter()
        .map(|t| match t.domain {
            Some(_) => format!("{}[-cot]", t.name),
            None => t.name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per task for `--help`: name, default data, headline metric.
pub fn help() -> String {
    let mut out = String::from(
        "Tasks, each NAME or NAME=SOURCE (a path, hf://ORG/DATASET/FILE, or a seed for the \
         synthetic sets); domain tasks take a -cot suffix for the step-by-step prompt:\n",
    );
    for t in TASKS {
        let kind = match (t.domain, t.synthetic) {
            (Some(_), true) => " [domain, synthetic]",
            (Some(_), false) => " [domain]",
            (None, true) => " [synthetic]",
            (None, false) => "",
        };
        out.push_str(&format!(
            "  {}{kind}: {}; headline {}\n",
            t.name, t.default_data, t.headline_metric
        ));
    }
    out
}

fn seed(name: &str, source: Option<&str>, default: u64) -> Result<u64> {
    source.map_or(Ok(default), |s| {
        s.parse::<u64>()
            .with_context(|| format!("{name}={s}: the source is a seed (a number)"))
    })
}

/// Builds the task `spec` (`NAME[-cot]` or `NAME[-cot]=SOURCE`). HumanEval programs run `jobs`
/// at a time.
pub fn build_task(spec: &str, jobs: usize) -> Result<Box<dyn Task>> {
    let (name, source) = split_spec(spec);
    let (info, style) = info(name)?;
    let task: Box<dyn Task> = match info.name {
        "medcalc" | "medcalc-template" | "medcalc-synth" => Box::new(MedcalcTask {
            name: name.to_string(),
            rows: medcalc_rows(
                info.name,
                source,
                catalog::MEDCALC_SYNTH_TEST_PER_CALCULATOR,
            )?,
            style,
        }),
        "esci" => {
            let cot = style == Style::Cot;
            // Testing needs no rationale column: only CoT training targets read one.
            let examples =
                catalog::esci_examples(source, "test", Some(catalog::ESCI_TEST_SAMPLE), false)?;
            Box::new(crate::esci::EsciTask {
                name: name.into(),
                examples,
                cot,
            })
        }
        "ifeval" => Box::new(IfevalTask {
            name: name.into(),
            items: crate::ifeval::load(&catalog::data_file(
                name,
                source,
                "ifeval/input_data.jsonl",
            )?)?,
        }),
        "ifeval-synth" => Box::new(IfevalTask {
            name: name.into(),
            items: crate::ifeval::synth::generate(
                catalog::IFEVAL_SYNTH_ITEMS,
                seed(name, source, 0)?,
            ),
        }),
        "gsm8k" | "gsm8k-100" => Box::new(Gsm8kTask {
            name: name.into(),
            items: crate::gsm8k::load(&gsm8k_file(name, source)?)?,
            shots: Vec::new(),
        }),
        "humaneval" => {
            let path = match source {
                Some(s) => catalog::resolve_source(s)?,
                None => talr_assets::fetch(&talr_assets::HUMAN_EVAL)?,
            };
            Box::new(HumanevalTask {
                name: name.into(),
                problems: crate::humaneval::load(&path)?,
                sandbox: Sandbox::from_env(Limits::default())?,
                jobs,
            })
        }
        other => unreachable!("registry entry {other} has no builder"),
    };
    Ok(task)
}

fn gsm8k_file(name: &str, source: Option<&str>) -> Result<std::path::PathBuf> {
    match (source, name) {
        (Some(s), _) => catalog::resolve_source(s),
        (None, "gsm8k-100") => talr_assets::fetch(&talr_assets::GSM8K_100),
        _ => catalog::data_file(name, None, "gsm8k/test.jsonl"),
    }
}

/// MedCalc rows of a MedCalc task (`medcalc`, `medcalc-template`, `medcalc-synth`);
/// `per_calculator` sizes the synthetic set.
fn medcalc_rows(
    name: &str,
    source: Option<&str>,
    per_calculator: usize,
) -> Result<Vec<medcalc::Row>> {
    if name == "medcalc-synth" {
        let seed = seed(name, source, MEDCALC_SYNTH_TEST_SEED)?;
        return Ok(medcalc::templates::generate(per_calculator, seed));
    }
    let path = catalog::data_file(name, source, "medcalc_bench/test_data.csv")?;
    let mut rows = medcalc::load(&path)?;
    if name == "medcalc-template" {
        rows.retain(|r| r.note_type.eq_ignore_ascii_case("template"));
    }
    Ok(rows)
}

/// How many training examples to make, where the source decides it.
#[derive(Debug, Clone, Copy)]
pub struct TrainingSize {
    /// `medcalc-synth`: rows per template calculator (11 calculators).
    pub per_calculator: usize,
    /// Keep N (MedCalc: spread evenly over the calculators; ESCI: a stratified sample; GSM8K:
    /// the first N).
    pub limit: Option<usize>,
}

/// Training examples and, for MedCalc sources, the rows they were made from.
pub struct TrainingSet {
    pub examples: Vec<ChatExample>,
    pub medcalc_rows: Option<Vec<medcalc::Row>>,
}

/// Training examples from `spec`: a domain task's data (`medcalc=CSV`, `medcalc-template=CSV`,
/// `medcalc-synth=SEED`, `esci[=DIR]`, whose train split is used) in `style`, or GSM8K
/// reference solutions (`gsm8k=JSONL`, `gsm8k-100`).
pub fn training_examples(spec: &str, style: Style, size: TrainingSize) -> Result<TrainingSet> {
    let (name, source) = split_spec(spec);
    let known = "medcalc=CSV, medcalc-template=CSV, medcalc-synth[=SEED], esci[=DIR], \
                 gsm8k=JSONL or gsm8k-100";
    let (info, _) = lookup(name)
        .filter(|(_, s)| *s == Style::LabelOnly)
        .with_context(|| format!("training source {spec:?}: expected {known}"))?;
    let mut set = match (info.domain, info.name) {
        (Some(Domain::Medcalc), base) => {
            if base == "medcalc-synth" && seed(base, source, 0)? == MEDCALC_SYNTH_TEST_SEED {
                bail!("training source {spec}: seed {MEDCALC_SYNTH_TEST_SEED} makes the test set; pick another");
            }
            let source = source.or((base == "medcalc-synth").then_some("0"));
            let mut rows = medcalc_rows(base, source, size.per_calculator)?;
            if let Some(n) = size.limit {
                rows = medcalc::spread_over_calculators(rows, n);
            }
            TrainingSet {
                examples: rows.iter().map(|r| medcalc::example(r, style)).collect(),
                medcalc_rows: Some(rows),
            }
        }
        (Some(Domain::Esci), _) => {
            let cot = style == Style::Cot;
            let examples = catalog::esci_examples(source, "train", size.limit, cot)?
                .iter()
                .map(|e| crate::esci::example(e, cot))
                .collect();
            TrainingSet {
                examples,
                medcalc_rows: None,
            }
        }
        (None, "gsm8k" | "gsm8k-100") => {
            if source.is_none() && name == "gsm8k" {
                bail!("training source gsm8k needs a file: gsm8k=JSONL");
            }
            let items = crate::gsm8k::load(&gsm8k_file(name, source)?)?;
            let examples = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    ChatExample::new(
                        i,
                        None,
                        crate::gsm8k::prompt(item, &[]),
                        item.answer.trim().to_string(),
                    )
                })
                .collect();
            TrainingSet {
                examples,
                medcalc_rows: None,
            }
        }
        _ => bail!("training source {spec:?}: expected {known}"),
    };
    if let Some(n) = size.limit {
        set.examples.truncate(n);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cot_names_resolve_to_their_domain_task_only() {
        let (info, style) = lookup("medcalc-synth-cot").unwrap();
        assert_eq!((info.name, style), ("medcalc-synth", Style::Cot));
        assert_eq!(lookup("esci-cot").unwrap().0.domain, Some(Domain::Esci));
        assert!(
            lookup("gsm8k-cot").is_none(),
            "general tasks have no CoT variant"
        );
        assert!(lookup("medcalc-synth-cot-cot").is_none());
    }

    #[test]
    fn headline_metrics_come_from_the_registry() {
        assert_eq!(
            headline_metric("ifeval-synth"),
            Some("prompt_level_strict_acc")
        );
        assert_eq!(headline_metric("gsm8k-100"), Some("exact_match_flexible"));
        assert_eq!(headline_metric("humaneval"), Some("pass@1"));
        assert_eq!(headline_metric("medcalc-cot"), Some("accuracy"));
        assert_eq!(headline_metric("nonesuch"), None);
    }

    #[test]
    fn an_unknown_task_names_every_known_one() {
        let err = build_task("ifevall", 1).err().unwrap().to_string();
        assert!(err.starts_with("unknown task \"ifevall\""), "{err}");
        for t in TASKS {
            assert!(err.contains(t.name), "{err}");
            assert!(help().contains(t.name));
        }
        assert!(err.contains("esci[-cot]"), "{err}");
    }

    #[test]
    fn synthetic_training_rows_never_come_from_the_test_seed() {
        let size = TrainingSize {
            per_calculator: 1,
            limit: None,
        };
        let err = training_examples("medcalc-synth=1000", Style::LabelOnly, size)
            .err()
            .unwrap();
        assert!(err.to_string().contains("makes the test set"), "{err}");
        let set = training_examples("medcalc-synth=1", Style::Cot, size).unwrap();
        assert_eq!(set.examples.len(), 11);
        assert!(set.examples[0].target.contains("step_by_step_thinking"));
    }
}
