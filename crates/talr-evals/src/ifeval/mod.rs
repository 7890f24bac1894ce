//! IFEval: verifiable instruction following, scored as lm-evaluation-harness's `ifeval` task does.
//!
//! - Data: JSONL rows `{"key", "prompt", "instruction_id_list", "kwargs"}` (the released
//!   `input_data.jsonl`, or hub `google/IFEval`), or the seeded synthetic set from [`synth`]
//!   ("ifeval-synth"), which uses the same ids and kwargs shapes with our own writing requests.
//! - Prompt: the item's prompt as the single user message.
//! - Scoring: every instruction is checked on the response (strict) and on eight variants of it
//!   (loose: as is, with `*` removed, without its first line, without its last line, without both,
//!   and each removal with `*` removed); a variant counts only when it is not blank. Prompt-level
//!   accuracy needs every instruction followed; instruction-level accuracy averages over all
//!   instructions of all prompts. An empty response fails everything.
//! - Text measurements that differ from the reference's NLTK/langdetect are listed in [`text`].

pub mod checkers;
pub mod synth;
pub mod text;

use crate::responses::read_jsonl;
use anyhow::{Context, Result};
pub use checkers::{Instruction, Relation, INSTRUCTION_IDS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub key: u64,
    pub prompt: String,
    pub instruction_id_list: Vec<String>,
    pub kwargs: Vec<Map<String, Value>>,
}

impl Item {
    pub fn id(&self) -> String {
        self.key.to_string()
    }

    /// The item's instructions, built from ids and kwargs; errors name the instruction.
    pub fn instructions(&self) -> Result<Vec<Instruction>> {
        if self.kwargs.len() != self.instruction_id_list.len() {
            anyhow::bail!(
                "key {}: {} instruction ids but {} kwargs objects",
                self.key,
                self.instruction_id_list.len(),
                self.kwargs.len()
            );
        }
        self.instruction_id_list
            .iter()
            .zip(&self.kwargs)
            .map(|(id, kw)| {
                Instruction::from_kwargs(id, kw)
                    .with_context(|| format!("key {}: instruction {id}", self.key))
            })
            .collect()
    }
}

/// Loads an IFEval JSONL file and checks that every instruction in it can be built.
pub fn load(path: &Path) -> Result<Vec<Item>> {
    let items: Vec<Item> = read_jsonl(path)?;
    for item in &items {
        item.instructions()
            .with_context(|| format!("in {}", path.display()))?;
    }
    Ok(items)
}

/// The eight loose-scoring variants of a response, in the reference's order.
pub fn loose_variants(response: &str) -> [String; 8] {
    let lines: Vec<&str> = response.split('\n').collect();
    let join = |ls: &[&str]| ls.join("\n").trim().to_string();
    let n = lines.len();
    let remove_first = join(&lines[1.min(n)..]);
    let remove_last = join(&lines[..n.saturating_sub(1)]);
    let remove_both = if n >= 2 {
        join(&lines[1..n - 1])
    } else {
        String::new()
    };
    let unstar = |s: &str| s.replace('*', "");
    [
        response.to_string(),
        unstar(response),
        remove_first.clone(),
        remove_last.clone(),
        remove_both.clone(),
        unstar(&remove_first),
        unstar(&remove_last),
        unstar(&remove_both),
    ]
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemScore {
    pub key: u64,
    pub instruction_id_list: Vec<String>,
    pub follow_strict: Vec<bool>,
    pub follow_loose: Vec<bool>,
}

pub fn score_item(item: &Item, instructions: &[Instruction], response: &str) -> ItemScore {
    let variants = loose_variants(response);
    let strict = instructions
        .iter()
        .map(|ins| !response.trim().is_empty() && ins.check(response))
        .collect();
    let loose = instructions
        .iter()
        .map(|ins| {
            variants
                .iter()
                .any(|v| !v.trim().is_empty() && ins.check(v))
        })
        .collect();
    ItemScore {
        key: item.key,
        instruction_id_list: item.instruction_id_list.clone(),
        follow_strict: strict,
        follow_loose: loose,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub prompt_level_strict_acc: f64,
    pub inst_level_strict_acc: f64,
    pub prompt_level_loose_acc: f64,
    pub inst_level_loose_acc: f64,
    pub n: usize,
    /// Items without a response; they are scored as empty responses (failing everything).
    pub missing: usize,
    /// Instruction-level strict accuracy per instruction id.
    pub per_instruction_strict: HashMap<String, f64>,
}

/// Scores every item; a missing response counts as empty.
pub fn score(
    items: &[Item],
    responses: &HashMap<String, String>,
) -> Result<(Aggregate, Vec<ItemScore>)> {
    let mut scores = Vec::with_capacity(items.len());
    let mut missing = 0;
    for item in items {
        let instructions = item.instructions()?;
        let response = responses.get(&item.id()).map_or_else(
            || {
                missing += 1;
                ""
            },
            String::as_str,
        );
        scores.push(score_item(item, &instructions, response));
    }
    Ok((aggregate(&scores, missing), scores))
}

fn aggregate(scores: &[ItemScore], missing: usize) -> Aggregate {
    let frac = |num: usize, den: usize| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    let prompts = scores.len();
    let insts: usize = scores.iter().map(|s| s.follow_strict.len()).sum();
    let count_all =
        |f: fn(&ItemScore) -> &Vec<bool>| scores.iter().filter(|s| f(s).iter().all(|b| *b)).count();
    let count_each = |f: fn(&ItemScore) -> &Vec<bool>| {
        scores
            .iter()
            .map(|s| f(s).iter().filter(|b| **b).count())
            .sum::<usize>()
    };
    let mut per: HashMap<String, (usize, usize)> = HashMap::new();
    for s in scores {
        for (id, ok) in s.instruction_id_list.iter().zip(&s.follow_strict) {
            let e = per.entry(id.clone()).or_default();
            e.0 += usize::from(*ok);
            e.1 += 1;
        }
    }
    Aggregate {
        prompt_level_strict_acc: frac(count_all(|s| &s.follow_strict), prompts),
        inst_level_strict_acc: frac(count_each(|s| &s.follow_strict), insts),
        prompt_level_loose_acc: frac(count_all(|s| &s.follow_loose), prompts),
        inst_level_loose_acc: frac(count_each(|s| &s.follow_loose), insts),
        n: prompts,
        missing,
        per_instruction_strict: per
            .into_iter()
            .map(|(k, (ok, n))| (k, frac(ok, n)))
            .collect(),
    }
}

/// IFEval (or ifeval-synth) as a runner task.
pub struct IfevalTask {
    pub name: String,
    pub items: Vec<Item>,
}

impl crate::task::Task for IfevalTask {
    fn name(&self) -> &str {
        &self.name
    }

    fn prompts(&self) -> Vec<crate::task::PromptItem> {
        self.items
            .iter()
            .map(|it| crate::task::PromptItem {
                system: None,
                id: it.id(),
                user_message: it.prompt.clone(),
            })
            .collect()
    }

    fn max_new_tokens(&self) -> usize {
        512
    }

    fn score(&self, responses: &HashMap<String, String>) -> Result<crate::task::Scored> {
        let (agg, items) = score(&self.items, responses)?;
        crate::task::Scored::from_parts(agg, items)
    }

    fn truncate(&mut self, n: usize) {
        self.items.truncate(n);
    }
}
