//! "ifeval-synth": a seeded, synthetic stand-in for IFEval's prompts, for machines without the
//! released file. Each item pairs an ordinary writing request with one to three verifiable
//! instructions drawn from IFEval's 25 ids, with kwargs in IFEval's shapes, so the real checkers
//! score it. It measures the same skills on different prompts: report it as synthetic, never as
//! IFEval.

use super::Item;
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use serde_json::{json, Map, Value};

const TASKS: &[&str] = &[
    "Write a short blog post about {}.",
    "Write a letter to a friend describing {}.",
    "Write a product description for a new gadget related to {}.",
    "Explain {} to a ten-year-old.",
    "Write a short story that involves {}.",
    "Write a persuasive paragraph about why people should care about {}.",
    "Give advice to a student who wants to learn about {}.",
    "Write a poem about {}.",
    "Summarize the history of {} for a general audience.",
    "Write a review of a book about {}.",
];

const TOPICS: &[&str] = &[
    "urban gardening",
    "the history of the bicycle",
    "learning a second language",
    "ocean tides",
    "a rainy afternoon in a small town",
    "public libraries",
    "solar power",
    "the first day at a new job",
    "volcanoes",
    "board games",
    "the migration of birds",
    "baking bread at home",
    "space telescopes",
    "recycling",
    "a mountain hiking trip",
    "honeybees",
    "the invention of the printing press",
    "remote work",
    "street food",
    "chess",
];

const KEYWORDS: &[&str] = &[
    "bridge", "lantern", "harvest", "compass", "river", "window", "signal", "garden", "future",
    "engine", "pattern", "season", "memory", "balance", "journey",
];
const LANGUAGES: &[&str] = &["fr", "de", "es", "it", "pt", "ru", "ja", "ko", "hi", "fi"];
const END_PHRASES: &[&str] = &[
    "Any other questions?",
    "Is there anything else I can help with?",
];
const POSTSCRIPTS: &[&str] = &["P.S.", "P.P.S"];
const SPLITTERS: &[&str] = &["Section", "SECTION"];

/// Instruction ids that contradict each other or the writing task are kept apart.
fn conflicts(a: &str, b: &str) -> bool {
    let group = |id: &str| match id {
        "change_case:english_capital"
        | "change_case:english_lowercase"
        | "change_case:capital_word_frequency"
        | "language:response_language" => 1,
        "detectable_format:json_format"
        | "detectable_format:constrained_response"
        | "combination:two_responses"
        | "combination:repeat_prompt"
        | "startend:quotation"
        | "startend:end_checker"
        | "detectable_content:postscript" => 2,
        "length_constraints:number_paragraphs"
        | "length_constraints:nth_paragraph_first_word"
        | "detectable_format:multiple_sections"
        | "detectable_format:number_bullet_lists" => 3,
        "length_constraints:number_words" | "length_constraints:number_sentences" => 4,
        _ => 0,
    };
    a == b || (group(a) != 0 && group(a) == group(b))
}

fn relation(rng: &mut StdRng) -> &'static str {
    if rng.random_bool(0.5) {
        "less than"
    } else {
        "at least"
    }
}

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).expect("non-empty list")
}

/// Kwargs in IFEval's shape and the sentence that asks for them.
fn build(id: &str, rng: &mut StdRng, request: &str) -> (Map<String, Value>, String) {
    let (kwargs, text) = match id {
        "keywords:existence" => {
            let a = pick(rng, KEYWORDS);
            let b = pick(rng, KEYWORDS);
            (
                json!({"keywords": [a, b]}),
                format!("Include the keywords \"{a}\" and \"{b}\" in your response."),
            )
        }
        "keywords:frequency" => {
            let (w, n, r) = (pick(rng, KEYWORDS), rng.random_range(1..=4), relation(rng));
            (
                json!({"keyword": w, "frequency": n, "relation": r}),
                format!("The word \"{w}\" should appear {r} {n} times in your response."),
            )
        }
        "keywords:forbidden_words" => {
            let (a, b) = (pick(rng, KEYWORDS), pick(rng, KEYWORDS));
            (
                json!({"forbidden_words": [a, b]}),
                format!("Do not use the words \"{a}\" or \"{b}\" anywhere in your response."),
            )
        }
        "keywords:letter_frequency" => {
            let letter = ["a", "e", "o", "t", "r", "s", "l", "n"][rng.random_range(0..8)];
            let (n, r) = (rng.random_range(3..=12), relation(rng));
            (
                json!({"letter": letter, "let_frequency": n, "let_relation": r}),
                format!("The letter \"{letter}\" should appear {r} {n} times in your response."),
            )
        }
        "language:response_language" => {
            let code = pick(rng, LANGUAGES);
            let name = super::text::language_name(code);
            (
                json!({"language": code}),
                format!("Your whole response must be in {name}; no other language is allowed."),
            )
        }
        "length_constraints:number_sentences" => {
            let (n, r) = (rng.random_range(2..=10), relation(rng));
            (
                json!({"num_sentences": n, "relation": r}),
                format!("Your response should contain {r} {n} sentences."),
            )
        }
        "length_constraints:number_paragraphs" => {
            let n = rng.random_range(2..=5);
            (
                json!({"num_paragraphs": n}),
                format!(
                    "Write exactly {n} paragraphs, separated from each other by the markdown \
                     divider ***."
                ),
            )
        }
        "length_constraints:number_words" => {
            let (n, r) = (rng.random_range(4..=30) * 10, relation(rng));
            (
                json!({"num_words": n, "relation": r}),
                format!("Answer with {r} {n} words."),
            )
        }
        "length_constraints:nth_paragraph_first_word" => {
            let n = rng.random_range(2..=4);
            let nth = rng.random_range(1..=n);
            let w = pick(rng, KEYWORDS);
            (
                json!({"num_paragraphs": n, "nth_paragraph": nth, "first_word": w}),
                format!(
                    "Write {n} paragraphs separated by two new lines (\"\\n\\n\"). Paragraph \
                     {nth} must begin with the word \"{w}\"."
                ),
            )
        }
        "detectable_content:number_placeholders" => {
            let n = rng.random_range(1..=4);
            (
                json!({"num_placeholders": n}),
                format!("Include at least {n} placeholders in square brackets, such as [name]."),
            )
        }
        "detectable_content:postscript" => {
            let m = pick(rng, POSTSCRIPTS);
            (
                json!({"postscript_marker": m}),
                format!("End your response with a postscript that starts with {m}"),
            )
        }
        "detectable_format:number_bullet_lists" => {
            let n = rng.random_range(2..=5);
            (
                json!({"num_bullets": n}),
                format!(
                    "Your answer must contain exactly {n} bullet points, written as markdown \
                     bullets such as:\n* This is a point."
                ),
            )
        }
        "detectable_format:constrained_response" => (
            json!({}),
            "Answer with one of the following options: \"My answer is yes.\", \"My answer is \
             no.\", \"My answer is maybe.\""
                .to_string(),
        ),
        "detectable_format:number_highlighted_sections" => {
            let n = rng.random_range(1..=4);
            (
                json!({"num_highlights": n}),
                format!(
                    "Highlight at least {n} sections of your answer with markdown, for example \
                     *highlighted section*."
                ),
            )
        }
        "detectable_format:multiple_sections" => {
            let (s, n) = (pick(rng, SPLITTERS), rng.random_range(2..=4));
            (
                json!({"section_spliter": s, "num_sections": n}),
                format!(
                    "Your response must have {n} sections. Mark the start of each section with \
                     \"{s} X\", where X is the section number."
                ),
            )
        }
        "detectable_format:json_format" => (
            json!({}),
            "Wrap your entire output in JSON format; you may use markdown ticks such as ```."
                .to_string(),
        ),
        "detectable_format:title" => (
            json!({}),
            "Your answer must contain a title, wrapped in double angular brackets, such as \
             <<my title>>."
                .to_string(),
        ),
        "combination:two_responses" => (
            json!({}),
            "Give two different responses. Separate them with six asterisk symbols: ******."
                .to_string(),
        ),
        "combination:repeat_prompt" => (
            json!({"prompt_to_repeat": request}),
            "First repeat the request word for word without change, then give your answer. Do \
             not say anything before repeating the request."
                .to_string(),
        ),
        "startend:end_checker" => {
            let p = pick(rng, END_PHRASES);
            (
                json!({"end_phrase": p}),
                format!("Finish your response with the exact phrase \"{p}\". No other words should follow it."),
            )
        }
        "change_case:capital_word_frequency" => {
            let (n, r) = (rng.random_range(2..=10), relation(rng));
            (
                json!({"capital_frequency": n, "capital_relation": r}),
                format!(
                    "Words in all capital letters should appear {r} {n} times in your response."
                ),
            )
        }
        "change_case:english_capital" => (
            json!({}),
            "Your entire response should be in English and in all capital letters.".to_string(),
        ),
        "change_case:english_lowercase" => (
            json!({}),
            "Your entire response should be in English and in lowercase letters only; no \
             capital letters are allowed."
                .to_string(),
        ),
        "punctuation:no_comma" => (
            json!({}),
            "Do not use any commas in your response.".to_string(),
        ),
        "startend:quotation" => (
            json!({}),
            "Wrap your entire response in double quotation marks.".to_string(),
        ),
        other => unreachable!("synth covers every IFEval id, not {other}"),
    };
    let Value::Object(map) = kwargs else {
        unreachable!("kwargs are objects")
    };
    (map, text)
}

/// `n` synthetic items from `seed`; keys count up from 1_000_000 so they never collide with
/// IFEval's own keys. The same seed always gives the same items.
pub fn generate(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let request = pick(&mut rng, TASKS).replace("{}", pick(&mut rng, TOPICS));
            let wanted = rng.random_range(1..=3);
            let mut ids: Vec<&str> = Vec::new();
            while ids.len() < wanted {
                let id = *super::INSTRUCTION_IDS.choose(&mut rng).expect("25 ids");
                if !ids.iter().any(|prev| conflicts(prev, id)) {
                    ids.push(id);
                }
            }
            let mut prompt = request.clone();
            let mut kwargs = Vec::new();
            for id in &ids {
                let (kw, text) = build(id, &mut rng, &request);
                prompt.push(' ');
                prompt.push_str(&text);
                kwargs.push(kw);
            }
            Item {
                key: 1_000_000 + i as u64,
                prompt,
                instruction_id_list: ids.iter().map(|s| s.to_string()).collect(),
                kwargs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_items_are_seeded_and_buildable() {
        let a = generate(300, 7);
        let b = generate(300, 7);
        let c = generate(300, 8);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_ne!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&c).unwrap()
        );
        let mut seen = std::collections::HashSet::new();
        for item in &a {
            assert!(!item.instructions().unwrap().is_empty());
            seen.extend(item.instruction_id_list.iter().cloned());
        }
        assert_eq!(seen.len(), 25, "300 items should use every instruction id");
    }
}
