//! Batched generation equals one-at-a-time generation, and SmolLM2 answers a simple question.

mod common;

use candle_core::DType;
use common::{smollm2_if_cached, tiny};
use talr_model::generate::{generate, Generation, GenerationConfig};
use talr_model::{ChatMessage, LoadedModel, Trainability};

fn chat_ids(model: &LoadedModel, text: &str) -> Vec<u32> {
    let rendered = model
        .tokenizer
        .apply_chat_template(&[ChatMessage::new("user", text)], true)
        .unwrap();
    model.tokenizer.encode(&rendered).unwrap()
}

fn batched_equals_single(model: &LoadedModel, prompts: &[&str], max_new_tokens: usize) {
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| chat_ids(model, p)).collect();
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    assert!(
        lens.iter().any(|&l| l != lens[0]),
        "prompts must differ in length: {lens:?}"
    );
    let cfg = GenerationConfig {
        max_new_tokens,
        ..Default::default()
    };
    let batched = generate(&model.decoder, &model.tokenizer, &ids, &cfg, |_| {}).unwrap();
    assert_each_equals_single(model, &ids, &cfg, &batched);
}

fn assert_each_equals_single(
    model: &LoadedModel,
    ids: &[Vec<u32>],
    cfg: &GenerationConfig,
    batched: &[Generation],
) {
    for (i, p) in ids.iter().enumerate() {
        let single = generate(
            &model.decoder,
            &model.tokenizer,
            std::slice::from_ref(p),
            cfg,
            |_| {},
        )
        .unwrap();
        assert_eq!(batched[i].tokens, single[0].tokens, "prompt {i}");
        assert_eq!(batched[i].finish, single[0].finish, "prompt {i}");
    }
}

#[test]
fn tiny_model_batched_generation_equals_single() {
    let (model, _) = tiny(false, DType::F32, 0.3, Trainability::Frozen);
    batched_equals_single(
        &model,
        &["hi", "a much longer prompt than the first", "mid-sized one"],
        24,
    );
}

#[test]
fn rows_that_finish_early_leave_the_batch_without_changing_the_others() {
    let (mut model, _) = tiny(false, DType::F32, 0.3, Trainability::Frozen);
    let prompts = ["hi", "a much longer prompt than the first", "mid-sized one"];
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| chat_ids(&model, p)).collect();
    let cfg = GenerationConfig {
        max_new_tokens: 24,
        ..Default::default()
    };
    // Make a token of the first row's free-running reply (its first new one after step 1) an eos,
    // so that row ends early while the others (unless they meet the same token) run on.
    let free = generate(&model.decoder, &model.tokenizer, &ids[..1], &cfg, |_| {}).unwrap();
    let tokens = &free[0].tokens;
    let cut = (1..tokens.len())
        .find(|&k| !tokens[..k].contains(&tokens[k]))
        .expect("the tiny model repeats one token; pick another seed");
    model.tokenizer.eos_ids = vec![tokens[cut]];
    let mut running_per_step = Vec::new();
    let batched = generate(&model.decoder, &model.tokenizer, &ids, &cfg, |running| {
        running_per_step.push(running)
    })
    .unwrap();
    assert_eq!(batched[0].tokens, tokens[..cut]);
    assert!(
        running_per_step.windows(2).any(|w| w[1] < w[0] && w[1] > 0),
        "no row left the batch while others ran: {running_per_step:?}"
    );
    assert_each_equals_single(&model, &ids, &cfg, &batched);
}

#[test]
fn stop_strings_and_length_limits_end_rows() {
    let (model, _) = tiny(false, DType::F32, 0.3, Trainability::Frozen);
    let ids = vec![chat_ids(&model, "hello")];
    let free = generate(
        &model.decoder,
        &model.tokenizer,
        &ids,
        &GenerationConfig {
            max_new_tokens: 12,
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(free[0].tokens.len(), 12);
    assert_eq!(free[0].finish, talr_model::generate::FinishReason::Length);
    // Stop on a string the model is known to produce.
    let stop: String = free[0].text.chars().skip(3).take(2).collect();
    let cut = generate(
        &model.decoder,
        &model.tokenizer,
        &ids,
        &GenerationConfig {
            max_new_tokens: 12,
            stop_strings: vec![stop.clone()],
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(
        cut[0].finish,
        talr_model::generate::FinishReason::StopString
    );
    assert!(!cut[0].text.contains(&stop) && free[0].text.starts_with(&cut[0].text));
}

#[test]
fn smollm2_batched_generation_equals_single_when_cached() {
    let Some(model) = smollm2_if_cached() else {
        return;
    };
    batched_equals_single(
        &model,
        &[
            "What is 2+2?",
            "Name three colours of the rainbow, please.",
            "Hi",
        ],
        16,
    );
}

#[test]
fn smollm2_knows_the_capital_of_france_when_cached() {
    let Some(model) = smollm2_if_cached() else {
        return;
    };
    let ids = vec![chat_ids(&model, "What is the capital of France?")];
    let out = generate(
        &model.decoder,
        &model.tokenizer,
        &ids,
        &GenerationConfig {
            max_new_tokens: 32,
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    assert!(out[0].text.contains("Paris"), "{:?}", out[0].text);
    assert_eq!(out[0].finish, talr_model::generate::FinishReason::Eos);
}
