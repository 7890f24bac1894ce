//! Training data: chat examples (messages + target response) as JSONL, tokenised with the model's
//! chat template.

use anyhow::{bail, Context, Result};
use std::path::Path;
use talr_model::{ChatExample, TextTokenizer};

/// One line of a training file: a chat example (see [`talr_model::ChatExample`]).
pub type Example = ChatExample;

pub fn load_examples(path: &Path) -> Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a training example", path.display(), i + 1))?;
        if ex.messages.is_empty() {
            bail!("{}:{}: `messages` is empty", path.display(), i + 1);
        }
        if ex.target.trim().is_empty() {
            bail!(
                "{}:{}: `target` is empty; the loss would see only the end-of-turn token",
                path.display(),
                i + 1
            );
        }
        out.push(ex);
    }
    if out.is_empty() {
        bail!("{}: no training examples", path.display());
    }
    Ok(out)
}

/// Token ids of one example: the rendered prompt (generation prompt opened) and the target
/// followed by the end-of-turn token, so the model learns to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedExample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

/// Tokenises every example; prompts longer than `max_length` minus the response lose their
/// oldest tokens, and a response that alone exceeds `max_length` is an error naming the example.
pub fn tokenize(
    examples: &[Example],
    tokenizer: &TextTokenizer,
    max_length: usize,
) -> Result<Vec<TokenizedExample>> {
    let eos = *tokenizer
        .eos_ids
        .first()
        .context("the tokenizer has no eos token to end targets with")?;
    examples
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            if ex.target.trim().is_empty() {
                bail!(
                    "example {} has an empty target; the loss would see only the end-of-turn token",
                    describe(i, ex)
                );
            }
            let prompt_text = tokenizer.apply_chat_template(&ex.messages, true)?;
            let mut prompt = tokenizer.encode(&prompt_text)?;
            let mut response = tokenizer.encode(&ex.target)?;
            response.push(eos);
            if response.len() + 1 > max_length {
                bail!(
                    "example {}: the target is {} tokens, over training.max_length ({max_length})",
                    describe(i, ex),
                    response.len()
                );
            }
            let room = max_length - response.len();
            if prompt.len() > room {
                prompt.drain(..prompt.len() - room);
            }
            Ok(TokenizedExample { prompt, response })
        })
        .collect()
}

/// An example as a message names it: its position, and its id where it has one.
fn describe(index: usize, ex: &Example) -> String {
    match &ex.id {
        Some(id) => format!("{index} (id {id})"),
        None => index.to_string(),
    }
}
