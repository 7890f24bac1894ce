//! Amazon Shopping Queries (ESCI): is a product an Exact match, a Substitute, a Complement or
//! Irrelevant for a query.
//!
//! - Data: the official parquet files, read with polars: `shopping_queries_dataset_examples.parquet`
//!   (example_id, query, query_id, product_id, product_locale, esci_label, small_version,
//!   large_version, split) joined to `shopping_queries_dataset_products.parquet` on
//!   (product_id, product_locale); filtered on locale, small_version and split; optionally a
//!   stratified (per label), seeded subsample.
//! - Prompt: 4-way classification answered as JSON, `{"label": "E"}` (label-only) or with a
//!   `rationale` first when the examples carry a rationale column (CoT).
//! - Extraction: the last `"label": "X"`, else the last label word (Exact, Substitute, ...), else
//!   the last standalone E/S/C/I.
//! - Metrics: accuracy (= micro-F1 for single-label), macro-F1, per-class precision / recall / F1
//!   and the confusion matrix (rows gold, columns predicted, plus "none" for no label found).

use crate::parquet::{integers, read as read_parquet, strings};
use anyhow::{bail, Result};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;

pub const LABELS: [char; 4] = ['E', 'S', 'C', 'I'];
pub const EXAMPLES_FILE: &str = "shopping_queries_dataset_examples.parquet";
pub const PRODUCTS_FILE: &str = "shopping_queries_dataset_products.parquet";

#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub example_id: i64,
    pub query: String,
    pub product_id: String,
    pub locale: String,
    pub label: char,
    pub title: String,
    pub description: String,
    pub bullet_points: String,
    pub brand: String,
    pub color: String,
    pub rationale: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    /// `us`, `es` or `jp`; `None` keeps every locale.
    pub locale: Option<String>,
    /// Keep only the rows of the small version (the task-1 subset).
    pub small_version: bool,
    /// `train` or `test`.
    pub split: String,
    /// A stratified subsample of this many examples.
    pub sample: Option<usize>,
    pub seed: u64,
    /// Skip examples whose product is missing from the products file (counted), instead of
    /// failing.
    pub skip_missing_products: bool,
    /// A column of the examples file holding a rationale (enables CoT targets).
    pub rationale_column: Option<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            locale: Some("us".into()),
            small_version: true,
            split: "test".into(),
            sample: None,
            seed: 0,
            skip_missing_products: false,
            rationale_column: None,
        }
    }
}

/// Loads, joins and filters the ESCI examples in `dir` (the two official parquet files).
/// Returns the examples and how many were skipped for a missing product.
pub fn load(dir: &Path, filter: &Filter) -> Result<(Vec<Example>, usize)> {
    let (ex_path, pr_path) = (dir.join(EXAMPLES_FILE), dir.join(PRODUCTS_FILE));
    let ex = read_parquet(&ex_path)?;
    let pr = read_parquet(&pr_path)?;

    let mut products: HashMap<(String, String), [String; 5]> = HashMap::new();
    let pid = strings(&pr, "product_id", &pr_path)?;
    let ploc = strings(&pr, "product_locale", &pr_path)?;
    let cols: Vec<Vec<String>> = [
        "product_title",
        "product_description",
        "product_bullet_point",
        "product_brand",
        "product_color",
    ]
    .iter()
    .map(|c| strings(&pr, c, &pr_path))
    .collect::<Result<_>>()?;
    for i in 0..pid.len() {
        products.insert(
            (pid[i].clone(), ploc[i].clone()),
            std::array::from_fn(|k| cols[k][i].clone()),
        );
    }

    let ids = integers(&ex, "example_id", &ex_path)?;
    let queries = strings(&ex, "query", &ex_path)?;
    let eprod = strings(&ex, "product_id", &ex_path)?;
    let eloc = strings(&ex, "product_locale", &ex_path)?;
    let labels = strings(&ex, "esci_label", &ex_path)?;
    let small = integers(&ex, "small_version", &ex_path)?;
    let split = strings(&ex, "split", &ex_path)?;
    let rationale = match &filter.rationale_column {
        Some(c) => Some(strings(&ex, c, &ex_path)?),
        None => None,
    };
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for i in 0..ids.len() {
        if filter.locale.as_ref().is_some_and(|l| *l != eloc[i])
            || (filter.small_version && small[i] != 1)
            || split[i] != filter.split
        {
            continue;
        }
        let label = match labels[i].as_str() {
            "E" | "S" | "C" | "I" => labels[i].chars().next().expect("one letter"),
            other => bail!(
                "{}: example {} has esci_label {other:?} (expected E, S, C or I)",
                ex_path.display(),
                ids[i]
            ),
        };
        let Some(p) = products.get(&(eprod[i].clone(), eloc[i].clone())) else {
            missing.push(format!("{} ({})", eprod[i], eloc[i]));
            continue;
        };
        out.push(Example {
            example_id: ids[i],
            query: queries[i].clone(),
            product_id: eprod[i].clone(),
            locale: eloc[i].clone(),
            label,
            title: p[0].clone(),
            description: p[1].clone(),
            bullet_points: p[2].clone(),
            brand: p[3].clone(),
            color: p[4].clone(),
            rationale: rationale.as_ref().map(|r| r[i].clone()),
        });
    }
    if !missing.is_empty() && !filter.skip_missing_products {
        bail!(
            "{}: {} examples name products missing from {} (first: {}); pass skip_missing_products to drop them",
            ex_path.display(),
            missing.len(),
            pr_path.display(),
            missing[..missing.len().min(3)].join(", ")
        );
    }
    if let Some(n) = filter.sample {
        out = stratified_sample(out, n, filter.seed);
    }
    Ok((out, missing.len()))
}

/// `n` examples keeping each label's share (largest remainders), chosen with `seed`, in
/// example-id order.
pub fn stratified_sample(examples: Vec<Example>, n: usize, seed: u64) -> Vec<Example> {
    if n >= examples.len() {
        return examples;
    }
    let total = examples.len();
    let mut by_label: BTreeMap<char, Vec<Example>> = BTreeMap::new();
    for e in examples {
        by_label.entry(e.label).or_default().push(e);
    }
    let mut quotas: Vec<(char, usize, f64)> = by_label
        .iter()
        .map(|(l, v)| {
            let exact = n as f64 * v.len() as f64 / total as f64;
            (*l, exact.floor() as usize, exact.fract())
        })
        .collect();
    let mut left = n - quotas.iter().map(|q| q.1).sum::<usize>();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|&a, &b| quotas[b].2.total_cmp(&quotas[a].2));
    for i in order {
        if left == 0 {
            break;
        }
        quotas[i].1 += 1;
        left -= 1;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for (label, quota, _) in quotas {
        let mut v = by_label.remove(&label).unwrap_or_default();
        v.shuffle(&mut rng);
        v.truncate(quota);
        out.extend(v);
    }
    out.sort_by_key(|e| e.example_id);
    out
}

fn clip(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

const SYSTEM: &str = "You judge how relevant a product is to a shopping query. Use one of four \
labels: E (Exact: the product matches the query), S (Substitute: it does not fully match but could \
serve instead), C (Complement: it does not match but goes with a product that does), I \
(Irrelevant).";

/// System and user messages; `cot` asks for a rationale before the label.
pub fn prompt(e: &Example, cot: bool) -> (String, String) {
    let shape = if cot {
        r#"{"rationale": "<one or two sentences>", "label": "<E, S, C or I>"}"#
    } else {
        r#"{"label": "<E, S, C or I>"}"#
    };
    let user = format!(
        "Query: {}\n\nProduct title: {}\nBrand: {}\nColor: {}\nDescription: {}\nBullet points: {}\n\nReply only with the JSON {shape}.",
        e.query,
        e.title,
        e.brand,
        e.color,
        clip(&e.description, 400),
        clip(&e.bullet_points, 400),
    );
    (SYSTEM.to_string(), user)
}

/// The SFT target in the shape the prompt asks for.
pub fn target(e: &Example, cot: bool) -> String {
    let label = serde_json::Value::from(e.label.to_string());
    match (&e.rationale, cot) {
        (Some(r), true) => format!(
            "{{\"rationale\": {}, \"label\": {label}}}",
            serde_json::Value::from(r.as_str())
        ),
        _ => format!("{{\"label\": {label}}}"),
    }
}

/// The training example for `e`, with its example id as id.
pub fn example(e: &Example, cot: bool) -> talr_model::ChatExample {
    let (system, user) = prompt(e, cot);
    talr_model::ChatExample::new(e.example_id, Some(system), user, target(e, cot))
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid built-in regex"))
}

/// The label a reply gives, if any.
pub fn extract(response: &str) -> Option<char> {
    static JSON: OnceLock<Regex> = OnceLock::new();
    static WORD: OnceLock<Regex> = OnceLock::new();
    static LETTER: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(&JSON, r#"(?i)"label"\s*:\s*"?\s*([ESCI])\b"#)
        .captures_iter(response)
        .last()
    {
        return c[1].to_uppercase().chars().next();
    }
    if let Some(m) = re(&WORD, r"(?i)\b(exact|substitute|complement|irrelevant)\b")
        .find_iter(response)
        .last()
    {
        return m.as_str().to_uppercase().chars().next();
    }
    re(&LETTER, r"\b([ESCI])\b")
        .find_iter(response)
        .last()
        .and_then(|m| m.as_str().chars().next())
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub accuracy: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub n: usize,
    pub missing: usize,
    pub per_class: BTreeMap<String, ClassScore>,
    /// Rows: gold E, S, C, I; columns: predicted E, S, C, I, none.
    pub confusion: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemScore {
    pub example_id: i64,
    pub gold: char,
    pub predicted: Option<char>,
    pub correct: bool,
}

/// Scores replies keyed by `example_id`; a missing reply counts as no label.
pub fn score(
    examples: &[Example],
    responses: &HashMap<String, String>,
) -> (Aggregate, Vec<ItemScore>) {
    let idx = |c: char| LABELS.iter().position(|l| *l == c);
    let mut confusion = vec![vec![0usize; 5]; 4];
    let mut missing = 0;
    let items: Vec<ItemScore> = examples
        .iter()
        .map(|e| {
            let predicted = match responses.get(&e.example_id.to_string()) {
                Some(r) => extract(r),
                None => {
                    missing += 1;
                    None
                }
            };
            let gold = idx(e.label).expect("labels are validated on load");
            confusion[gold][predicted.and_then(idx).unwrap_or(4)] += 1;
            ItemScore {
                example_id: e.example_id,
                gold: e.label,
                predicted,
                correct: predicted == Some(e.label),
            }
        })
        .collect();
    let n = examples.len();
    let correct = items.iter().filter(|i| i.correct).count();
    let mut per_class = BTreeMap::new();
    let mut f1s = Vec::new();
    for (k, label) in LABELS.iter().enumerate() {
        let tp = confusion[k][k];
        let support: usize = confusion[k].iter().sum();
        let predicted: usize = (0..4).map(|g| confusion[g][k]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        if support > 0 || predicted > 0 {
            f1s.push(f1);
        }
        per_class.insert(
            label.to_string(),
            ClassScore {
                precision: p,
                recall: r,
                f1,
                support,
            },
        );
    }
    let accuracy = correct as f64 / n.max(1) as f64;
    (
        Aggregate {
            accuracy,
            micro_f1: accuracy,
            macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
            n,
            missing,
            per_class,
            confusion,
        },
        items,
    )
}

/// ESCI as a runner task.
pub struct EsciTask {
    pub name: String,
    pub examples: Vec<Example>,
    pub cot: bool,
}

impl crate::task::Task for EsciTask {
    fn name(&self) -> &str {
        &self.name
    }

    fn prompts(&self) -> Vec<crate::task::PromptItem> {
        self.examples
            .iter()
            .map(|e| {
                let (system, user) = prompt(e, self.cot);
                crate::task::PromptItem {
                    id: e.example_id.to_string(),
                    system: Some(system),
                    user_message: user,
                }
            })
            .collect()
    }

    fn max_new_tokens(&self) -> usize {
        if self.cot {
            160
        } else {
            16
        }
    }

    fn score(&self, responses: &HashMap<String, String>) -> Result<crate::task::Scored> {
        let (agg, items) = score(&self.examples, responses);
        crate::task::Scored::from_parts(agg, items)
    }

    fn truncate(&mut self, n: usize) {
        self.examples.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_extracted_from_json_words_or_letters() {
        assert_eq!(extract(r#"{"label": "S"}"#), Some('S'));
        assert_eq!(
            extract(r#"{"rationale": "an Exact fit", "label": "c"}"#),
            Some('C')
        );
        assert_eq!(extract("It is irrelevant."), Some('I'));
        assert_eq!(extract("Answer: E"), Some('E'));
        assert_eq!(extract("no idea"), None);
    }
}
