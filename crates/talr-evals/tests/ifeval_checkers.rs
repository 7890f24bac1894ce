//! Each of IFEval's 25 instructions on responses that follow it and responses that do not,
//! strict and loose.

use serde_json::{json, Value};
use talr_evals::ifeval::{score_item, Instruction, Item, INSTRUCTION_IDS};

/// (strict, loose) for one instruction on one response.
fn judge(id: &str, kwargs: Value, response: &str) -> (bool, bool) {
    let item = Item {
        key: 1,
        prompt: "p".into(),
        instruction_id_list: vec![id.into()],
        kwargs: vec![kwargs.as_object().unwrap().clone()],
    };
    let instructions = item.instructions().unwrap();
    let s = score_item(&item, &instructions, response);
    (s.follow_strict[0], s.follow_loose[0])
}

fn follows(id: &str, kwargs: Value, response: &str) {
    assert_eq!(
        judge(id, kwargs, response),
        (true, true),
        "{id} should pass on {response:?}"
    );
}

fn fails(id: &str, kwargs: Value, response: &str) {
    assert_eq!(
        judge(id, kwargs, response),
        (false, false),
        "{id} should fail on {response:?}"
    );
}

/// Strict fails but a loose variant passes.
fn loose_only(id: &str, kwargs: Value, response: &str) {
    assert_eq!(
        judge(id, kwargs, response),
        (false, true),
        "{id}: only loose should pass on {response:?}"
    );
}

#[test]
fn keywords_existence() {
    let kw = json!({"keywords": ["river", "Lantern"]});
    follows("keywords:existence", kw.clone(), "A LANTERN by the River.");
    fails("keywords:existence", kw, "Only the river here.");
}

#[test]
fn keywords_frequency() {
    let at_least = json!({"keyword": "sun", "frequency": 3, "relation": "at least"});
    follows(
        "keywords:frequency",
        at_least.clone(),
        "Sun, sun and more SUN.",
    );
    fails("keywords:frequency", at_least, "sun sun");
    let less = json!({"keyword": "sun", "frequency": 2, "relation": "less than"});
    follows("keywords:frequency", less.clone(), "One sun.");
    fails("keywords:frequency", less, "sun sun");
}

#[test]
fn forbidden_words_match_whole_words_only() {
    let kw = json!({"forbidden_words": ["cat"]});
    follows(
        "keywords:forbidden_words",
        kw.clone(),
        "A category of concatenation.",
    );
    fails("keywords:forbidden_words", kw, "The Cat sat.");
}

#[test]
fn letter_frequency() {
    let kw = json!({"letter": "e", "let_frequency": 3, "let_relation": "at least"});
    follows("keywords:letter_frequency", kw.clone(), "EeE");
    fails("keywords:letter_frequency", kw, "ee");
    let less = json!({"letter": "z", "let_frequency": 1, "let_relation": "less than"});
    follows("keywords:letter_frequency", less.clone(), "no such letter");
    fails("keywords:letter_frequency", less, "zebra");
}

#[test]
fn response_language() {
    let kw = json!({"language": "fr"});
    follows(
        "language:response_language",
        kw.clone(),
        "Le petit chat est assis sur le tapis et il regarde les oiseaux dans le jardin.",
    );
    fails(
        "language:response_language",
        kw.clone(),
        "The small cat is sitting on the mat and watching the birds in the garden.",
    );
    // No letters at all: nothing to detect, counted as followed (as the reference does).
    follows("language:response_language", kw, "12345 678");
}

#[test]
fn number_sentences() {
    let kw = json!({"num_sentences": 3, "relation": "less than"});
    follows(
        "length_constraints:number_sentences",
        kw.clone(),
        "One. Two.",
    );
    fails(
        "length_constraints:number_sentences",
        kw,
        "One. Two. Three.",
    );
    let kw = json!({"num_sentences": 3, "relation": "at least"});
    follows(
        "length_constraints:number_sentences",
        kw,
        "One. Two! Three?",
    );
}

#[test]
fn number_paragraphs() {
    let kw = json!({"num_paragraphs": 2});
    follows(
        "length_constraints:number_paragraphs",
        kw.clone(),
        "First.\n***\nSecond.",
    );
    // Blank paragraphs are allowed at either end but not in the middle.
    follows(
        "length_constraints:number_paragraphs",
        kw.clone(),
        "***\nFirst.\n***\nSecond.\n***",
    );
    fails(
        "length_constraints:number_paragraphs",
        kw.clone(),
        "First.\n***\n***\nSecond.",
    );
    fails("length_constraints:number_paragraphs", kw, "Just one.");
}

#[test]
fn number_words() {
    let kw = json!({"num_words": 5, "relation": "at least"});
    follows(
        "length_constraints:number_words",
        kw.clone(),
        "one two three four five",
    );
    fails("length_constraints:number_words", kw, "one two three four");
    let kw = json!({"num_words": 3, "relation": "less than"});
    follows("length_constraints:number_words", kw, "it's");
}

#[test]
fn nth_paragraph_first_word() {
    let kw = json!({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Bridge"});
    let id = "length_constraints:nth_paragraph_first_word";
    follows(id, kw.clone(), "Opening words.\n\n\"Bridge, they said.\"");
    fails(id, kw.clone(), "Opening words.\n\nRiver bridge.");
    fails(id, kw.clone(), "Bridge alone.");
    // Three paragraphs; dropping the last line leaves the two asked for.
    loose_only(id, kw, "One.\n\nBridge two.\n\nThree.");
}

#[test]
fn number_placeholders() {
    let kw = json!({"num_placeholders": 2});
    follows(
        "detectable_content:number_placeholders",
        kw.clone(),
        "Dear [name], at [address].",
    );
    fails("detectable_content:number_placeholders", kw, "Dear [name].");
}

#[test]
fn postscript() {
    let id = "detectable_content:postscript";
    follows(
        id,
        json!({"postscript_marker": "P.S."}),
        "Body.\n\nP.S. See you.",
    );
    follows(
        id,
        json!({"postscript_marker": "P.P.S"}),
        "Body.\np. p. s. later",
    );
    fails(
        id,
        json!({"postscript_marker": "P.S."}),
        "Body without one.",
    );
}

#[test]
fn number_bullet_lists() {
    let kw = json!({"num_bullets": 2});
    let id = "detectable_format:number_bullet_lists";
    follows(id, kw.clone(), "Intro\n* one\n- two");
    fails(id, kw.clone(), "Intro\n* one\n* two\n* three\n* four");
    loose_only(id, kw.clone(), "Intro\n* one\n* two\n* three");
    // `**bold**` lines are not bullets.
    fails(id, kw, "**Title**\n* one");
}

#[test]
fn constrained_response() {
    let id = "detectable_format:constrained_response";
    follows(id, json!({}), "Let me think. My answer is maybe.");
    fails(id, json!({}), "My answer is probably.");
}

#[test]
fn highlighted_sections() {
    let kw = json!({"num_highlights": 2});
    let id = "detectable_format:number_highlighted_sections";
    follows(id, kw.clone(), "*one* and **two**");
    fails(id, kw.clone(), "*one* and ** **");
    fails(id, kw, "no highlights");
}

#[test]
fn multiple_sections() {
    let kw = json!({"section_spliter": "Section", "num_sections": 2});
    let id = "detectable_format:multiple_sections";
    follows(id, kw.clone(), "Section 1\nalpha\nSection 2\nbeta");
    fails(id, kw, "Section 1\nalpha only");
}

#[test]
fn json_format() {
    let id = "detectable_format:json_format";
    follows(id, json!({}), "```json\n{\"a\": [1, 2]}\n```");
    follows(id, json!({}), "  [1, 2, 3] ");
    fails(id, json!({}), "Here it is: {\"a\": 1}");
}

#[test]
fn title() {
    let id = "detectable_format:title";
    follows(id, json!({}), "<<A Day Out>>\nText.");
    fails(id, json!({}), "<< >> text");
    fails(id, json!({}), "<<split\ntitle>>");
}

#[test]
fn two_responses() {
    let id = "combination:two_responses";
    follows(id, json!({}), "First answer.\n******\nSecond answer.");
    fails(id, json!({}), "Same.\n******\nSame.");
    fails(id, json!({}), "One.\n******\n******\nTwo.");
}

#[test]
fn repeat_prompt() {
    let kw = json!({"prompt_to_repeat": "Write a poem about rain."});
    let id = "combination:repeat_prompt";
    follows(id, kw.clone(), "write a poem about rain. Drops fall...");
    fails(id, kw.clone(), "Here is a poem about rain.");
    // A one-line preamble is forgiven by the loose variants only.
    loose_only(id, kw, "Sure!\nWrite a poem about rain.\nDrops fall.");
}

#[test]
fn end_checker() {
    let kw = json!({"end_phrase": "Any other questions?"});
    let id = "startend:end_checker";
    follows(id, kw.clone(), "Done. any other questions?\"");
    fails(id, kw.clone(), "Any other questions? Bye.");
    loose_only(id, kw, "Done. Any other questions?\n(Generated by a model)");
}

#[test]
fn capital_word_frequency() {
    let kw = json!({"capital_frequency": 2, "capital_relation": "at least"});
    let id = "change_case:capital_word_frequency";
    follows(id, kw.clone(), "This is VERY IMPORTANT.");
    fails(id, kw, "Only ONE here.");
    let kw = json!({"capital_frequency": 1, "capital_relation": "less than"});
    follows(id, kw, "nothing shouted");
}

#[test]
fn english_capital() {
    let id = "change_case:english_capital";
    follows(
        id,
        json!({}),
        "THE WEATHER IS LOVELY TODAY AND WE ARE GOING TO THE PARK.",
    );
    fails(id, json!({}), "THE WEATHER IS lovely TODAY.");
    fails(
        id,
        json!({}),
        "LE CHAT EST ASSIS SUR LE TAPIS ET IL REGARDE LES OISEAUX DANS LE JARDIN.",
    );
}

#[test]
fn english_lowercase() {
    let id = "change_case:english_lowercase";
    follows(
        id,
        json!({}),
        "the weather is lovely today and we are going to the park.",
    );
    fails(id, json!({}), "The weather is lovely today.");
    // `*` are not letters, so removing them changes nothing here; a capitalised title line is
    // what loose scoring forgives.
    loose_only(
        id,
        json!({}),
        "Title Line\nthe weather is lovely today and we are going to the park.",
    );
}

#[test]
fn no_comma() {
    let id = "punctuation:no_comma";
    follows(id, json!({}), "No commas here.");
    fails(id, json!({}), "One, two.");
    loose_only(id, json!({}), "Sure, here it is:\nNo commas in the answer.");
}

#[test]
fn quotation() {
    let id = "startend:quotation";
    follows(id, json!({}), "  \"Wrapped.\"  ");
    fails(id, json!({}), "\"");
    fails(id, json!({}), "\"Half wrapped.");
}

#[test]
fn loose_scoring_removes_markdown_stars() {
    // The response ends with the phrase only once the bold markers are removed.
    let kw = json!({"end_phrase": "Is there anything else I can help with?"});
    loose_only(
        "startend:end_checker",
        kw,
        "Done. **Is there anything else I can help with?**",
    );
}

#[test]
fn empty_response_fails_everything() {
    for id in ["punctuation:no_comma", "keywords:forbidden_words"] {
        let kw = if id == "punctuation:no_comma" {
            json!({})
        } else {
            json!({"forbidden_words": ["x"]})
        };
        assert_eq!(judge(id, kw.clone(), ""), (false, false));
        assert_eq!(judge(id, kw, "  \n "), (false, false));
    }
}

#[test]
fn every_id_builds_and_bad_kwargs_name_the_field() {
    assert_eq!(INSTRUCTION_IDS.len(), 25);
    let err = Instruction::from_kwargs(
        "keywords:frequency",
        json!({"keyword": "a", "frequency": 2, "relation": "more than"})
            .as_object()
            .unwrap(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("relation"), "{err:#}");
    let err = Instruction::from_kwargs("length_constraints:number_words", &Default::default())
        .unwrap_err();
    assert!(format!("{err:#}").contains("num_words"), "{err:#}");
    let err = Instruction::from_kwargs("keywords:nonsense", &Default::default()).unwrap_err();
    assert!(format!("{err:#}").contains("keywords:nonsense"), "{err:#}");
    // Null-valued keys (every row of the released file has all of them) are ignored.
    let with_nulls = json!({"num_words": 10, "relation": "at least", "keywords": null});
    assert!(Instruction::from_kwargs(
        "length_constraints:number_words",
        with_nulls.as_object().unwrap()
    )
    .is_ok());
}
