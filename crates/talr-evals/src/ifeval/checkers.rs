//! The 25 IFEval instruction checkers, each a pure function of the response, with the reference's
//! semantics (google-research `instructions.py`, as lm-evaluation-harness runs it). Keyword-like
//! arguments are used as regular expressions, as the reference does; one that is not a valid
//! regex is matched literally.

use super::text;
use anyhow::{bail, Context, Result};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    LessThan,
    AtLeast,
}

impl Relation {
    fn parse(s: &str, field: &str) -> Result<Self> {
        match s {
            "less than" => Ok(Self::LessThan),
            "at least" => Ok(Self::AtLeast),
            other => bail!("`{field}` must be \"less than\" or \"at least\", got {other:?}"),
        }
    }

    fn holds(self, actual: usize, threshold: usize) -> bool {
        match self {
            Self::LessThan => actual < threshold,
            Self::AtLeast => actual >= threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LessThan => "less than",
            Self::AtLeast => "at least",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    KeywordsExistence {
        keywords: Vec<String>,
    },
    KeywordsFrequency {
        keyword: String,
        frequency: usize,
        relation: Relation,
    },
    ForbiddenWords {
        words: Vec<String>,
    },
    LetterFrequency {
        letter: char,
        frequency: usize,
        relation: Relation,
    },
    ResponseLanguage {
        language: String,
    },
    NumberSentences {
        count: usize,
        relation: Relation,
    },
    NumberParagraphs {
        count: usize,
    },
    NumberWords {
        count: usize,
        relation: Relation,
    },
    NthParagraphFirstWord {
        paragraphs: usize,
        nth: usize,
        first_word: String,
    },
    NumberPlaceholders {
        count: usize,
    },
    Postscript {
        marker: String,
    },
    NumberBulletLists {
        count: usize,
    },
    ConstrainedResponse,
    NumberHighlightedSections {
        count: usize,
    },
    MultipleSections {
        splitter: String,
        count: usize,
    },
    JsonFormat,
    Title,
    TwoResponses,
    RepeatPrompt {
        prompt: String,
    },
    EndChecker {
        phrase: String,
    },
    CapitalWordFrequency {
        frequency: usize,
        relation: Relation,
    },
    EnglishCapital,
    EnglishLowercase,
    NoComma,
    Quotation,
}

/// Every instruction id IFEval uses, in the reference registry's order.
pub const INSTRUCTION_IDS: [&str; 25] = [
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
];

const CONSTRAINED_OPTIONS: [&str; 3] = [
    "My answer is yes.",
    "My answer is no.",
    "My answer is maybe.",
];

struct Kwargs<'a>(&'a Map<String, Value>);

impl Kwargs<'_> {
    /// The reference drops falsy kwargs (`if v`) before building an instruction; so do we.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }

    fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => bail!("kwarg `{key}` must be a string, got {other}"),
            None => bail!("missing kwarg `{key}`"),
        }
    }

    fn count(&self, key: &str) -> Result<usize> {
        match self.get(key) {
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|v| v as usize)
                .with_context(|| format!("kwarg `{key}` must be a non-negative integer, got {n}")),
            Some(other) => bail!("kwarg `{key}` must be an integer, got {other}"),
            None => bail!("missing kwarg `{key}`"),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("kwarg `{key}` must hold strings, got {v}"))
                })
                .collect(),
            Some(other) => bail!("kwarg `{key}` must be a list of strings, got {other}"),
            None => bail!("missing kwarg `{key}`"),
        }
    }

    fn relation(&self, key: &str) -> Result<Relation> {
        Relation::parse(&self.string(key)?, key)
    }
}

impl Instruction {
    /// Builds the instruction `id` from its kwargs object (keys with null values are ignored, as
    /// in the released data where every row carries every key).
    pub fn from_kwargs(id: &str, kwargs: &Map<String, Value>) -> Result<Self> {
        let k = Kwargs(kwargs);
        let parsed = match id {
            "keywords:existence" => Self::KeywordsExistence {
                keywords: k.strings("keywords")?,
            },
            "keywords:frequency" => Self::KeywordsFrequency {
                keyword: k.string("keyword")?,
                frequency: k.count("frequency")?,
                relation: k.relation("relation")?,
            },
            "keywords:forbidden_words" => Self::ForbiddenWords {
                words: k.strings("forbidden_words")?,
            },
            "keywords:letter_frequency" => {
                let letter = k.string("letter")?.trim().to_lowercase();
                let mut chars = letter.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    bail!("kwarg `letter` must be one letter, got {letter:?}");
                };
                Self::LetterFrequency {
                    letter: c,
                    frequency: k.count("let_frequency")?,
                    relation: k.relation("let_relation")?,
                }
            }
            "language:response_language" => {
                let language = k.string("language")?;
                if !text::is_known_language(&language) {
                    bail!("kwarg `language`: {language:?} is not one of IFEval's language codes");
                }
                Self::ResponseLanguage { language }
            }
            "length_constraints:number_sentences" => Self::NumberSentences {
                count: k.count("num_sentences")?,
                relation: k.relation("relation")?,
            },
            "length_constraints:number_paragraphs" => Self::NumberParagraphs {
                count: k.count("num_paragraphs")?,
            },
            "length_constraints:number_words" => Self::NumberWords {
                count: k.count("num_words")?,
                relation: k.relation("relation")?,
            },
            "length_constraints:nth_paragraph_first_word" => Self::NthParagraphFirstWord {
                paragraphs: k.count("num_paragraphs")?,
                nth: k.count("nth_paragraph")?,
                first_word: k.string("first_word")?.to_lowercase(),
            },
            "detectable_content:number_placeholders" => Self::NumberPlaceholders {
                count: k.count("num_placeholders")?,
            },
            "detectable_content:postscript" => Self::Postscript {
                marker: k.string("postscript_marker")?.trim().to_string(),
            },
            "detectable_format:number_bullet_lists" => Self::NumberBulletLists {
                count: k.count("num_bullets")?,
            },
            "detectable_format:constrained_response" => Self::ConstrainedResponse,
            "detectable_format:number_highlighted_sections" => Self::NumberHighlightedSections {
                count: k.count("num_highlights")?,
            },
            "detectable_format:multiple_sections" => Self::MultipleSections {
                splitter: k.string("section_spliter")?.trim().to_string(),
                count: k.count("num_sections")?,
            },
            "detectable_format:json_format" => Self::JsonFormat,
            "detectable_format:title" => Self::Title,
            "combination:two_responses" => Self::TwoResponses,
            "combination:repeat_prompt" => Self::RepeatPrompt {
                prompt: k.string("prompt_to_repeat")?,
            },
            "startend:end_checker" => Self::EndChecker {
                phrase: k.string("end_phrase")?.trim().to_string(),
            },
            "change_case:capital_word_frequency" => Self::CapitalWordFrequency {
                frequency: k.count("capital_frequency")?,
                relation: k.relation("capital_relation")?,
            },
            "change_case:english_capital" => Self::EnglishCapital,
            "change_case:english_lowercase" => Self::EnglishLowercase,
            "punctuation:no_comma" => Self::NoComma,
            "startend:quotation" => Self::Quotation,
            other => bail!(
                "unknown instruction id {other:?} (expected one of IFEval's 25, e.g. \
                 \"punctuation:no_comma\")"
            ),
        };
        Ok(parsed)
    }

    /// Whether `response` follows this instruction (the reference's `check_following`).
    pub fn check(&self, response: &str) -> bool {
        match self {
            Self::KeywordsExistence { keywords } => {
                keywords.iter().all(|kw| user_regex(kw).is_match(response))
            }
            Self::KeywordsFrequency {
                keyword,
                frequency,
                relation,
            } => relation.holds(user_regex(keyword).find_iter(response).count(), *frequency),
            Self::ForbiddenWords { words } => words
                .iter()
                .all(|w| !user_regex(&format!(r"\b{w}\b")).is_match(response)),
            Self::LetterFrequency {
                letter,
                frequency,
                relation,
            } => {
                let n = response
                    .to_lowercase()
                    .chars()
                    .filter(|c| c == letter)
                    .count();
                relation.holds(n, *frequency)
            }
            Self::ResponseLanguage { language } => {
                text::detect_is(response, language).unwrap_or(true)
            }
            Self::NumberSentences { count, relation } => {
                relation.holds(text::count_sentences(response), *count)
            }
            Self::NumberParagraphs { count } => star_paragraphs(response) == Some(*count),
            Self::NumberWords { count, relation } => {
                relation.holds(text::count_words(response), *count)
            }
            Self::NthParagraphFirstWord {
                paragraphs,
                nth,
                first_word,
            } => nth_paragraph_first_word(response, *paragraphs, *nth, first_word),
            Self::NumberPlaceholders { count } => {
                fixed_regex(r"\[.*?\]").find_iter(response).count() >= *count
            }
            Self::Postscript { marker } => {
                let pattern = match marker.as_str() {
                    "P.P.S" => r"(?m)\s*p\.\s?p\.\s?s.*$".to_string(),
                    "P.S." => r"(?m)\s*p\.\s?s\..*$".to_string(),
                    other => format!(r"(?m)\s*{}.*$", other.to_lowercase()),
                };
                user_regex(&pattern).is_match(&response.to_lowercase())
            }
            Self::NumberBulletLists { count } => {
                let stars = fixed_regex(r"(?m)^\s*\*[^\*].*$")
                    .find_iter(response)
                    .count();
                let dashes = fixed_regex(r"(?m)^\s*-.*$").find_iter(response).count();
                stars + dashes == *count
            }
            Self::ConstrainedResponse => {
                let trimmed = response.trim();
                CONSTRAINED_OPTIONS.iter().any(|o| trimmed.contains(o))
            }
            Self::NumberHighlightedSections { count } => {
                let single = fixed_regex(r"\*[^\n\*]*\*")
                    .find_iter(response)
                    .filter(|m| !m.as_str().trim_matches('*').trim().is_empty())
                    .count();
                let double = fixed_regex(r"\*\*[^\n\*]*\*\*")
                    .find_iter(response)
                    .filter(|m| {
                        let s = m.as_str();
                        !s[2..s.len() - 2].trim().is_empty()
                    })
                    .count();
                single + double >= *count
            }
            Self::MultipleSections { splitter, count } => {
                let re = user_regex(&format!(r"\s?{splitter}\s?\d+\s?"));
                re.split(response).count() > *count
            }
            Self::JsonFormat => {
                let mut v = response.trim();
                for prefix in ["```json", "```Json", "```JSON", "```"] {
                    if let Some(rest) = v.strip_prefix(prefix) {
                        v = rest;
                        break;
                    }
                }
                let v = v.strip_suffix("```").unwrap_or(v).trim();
                serde_json::from_str::<Value>(v).is_ok()
            }
            Self::Title => fixed_regex(r"<<[^\n]+>>").find_iter(response).any(|m| {
                !m.as_str()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim()
                    .is_empty()
            }),
            Self::TwoResponses => two_responses(response),
            Self::RepeatPrompt { prompt } => response
                .trim()
                .to_lowercase()
                .starts_with(&prompt.trim().to_lowercase()),
            Self::EndChecker { phrase } => response
                .trim()
                .trim_matches('"')
                .to_lowercase()
                .ends_with(&phrase.trim().to_lowercase()),
            Self::CapitalWordFrequency {
                frequency,
                relation,
            } => relation.holds(
                text::word_tokens(response)
                    .filter(|w| text::is_upper(w))
                    .count(),
                *frequency,
            ),
            Self::EnglishCapital => {
                text::is_upper(response) && text::detect_is(response, "en").unwrap_or(true)
            }
            Self::EnglishLowercase => {
                text::is_lower(response) && text::detect_is(response, "en").unwrap_or(true)
            }
            Self::NoComma => !response.contains(','),
            Self::Quotation => {
                let v = response.trim();
                v.chars().count() > 1 && v.starts_with('"') && v.ends_with('"')
            }
        }
    }
}

/// A pattern taken from the data, case-insensitive; literal when it is not a valid regex.
fn user_regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .unwrap_or_else(|_| {
            RegexBuilder::new(&regex::escape(pattern))
                .case_insensitive(true)
                .build()
                .expect("escaped pattern is valid")
        })
}

fn fixed_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid built-in regex")
}

/// Paragraphs separated by `***`; blank ones are allowed only at either end. `None` when a blank
/// paragraph sits in the middle (the reference fails the instruction then).
fn star_paragraphs(response: &str) -> Option<usize> {
    let parts: Vec<&str> = fixed_regex(r"\s?\*\*\*\s?").split(response).collect();
    let mut n = parts.len();
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() {
            if i == 0 || i == parts.len() - 1 {
                n -= 1;
            } else {
                return None;
            }
        }
    }
    Some(n)
}

fn nth_paragraph_first_word(response: &str, expected: usize, nth: usize, word: &str) -> bool {
    let parts: Vec<&str> = response.split("\n\n").collect();
    let n = parts.iter().filter(|p| !p.trim().is_empty()).count();
    if nth == 0 || nth > n {
        return false;
    }
    let paragraph = parts[nth - 1].trim();
    let Some(first) = paragraph.split_whitespace().next() else {
        return false;
    };
    let first = first.trim_start_matches('\'').trim_start_matches('"');
    let found: String = first
        .chars()
        .take_while(|c| !matches!(c, '.' | ',' | '?' | '!' | '\'' | '"'))
        .flat_map(char::to_lowercase)
        .collect();
    n == expected && found == word
}

fn two_responses(response: &str) -> bool {
    let parts: Vec<&str> = response.split("******").collect();
    let mut valid = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() {
            if i != 0 && i != parts.len() - 1 {
                return false;
            }
        } else {
            valid.push(p.trim());
        }
    }
    valid.len() == 2 && valid[0] != valid[1]
}
