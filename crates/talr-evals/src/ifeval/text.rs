//! Text measurements the IFEval checkers need, and where ours differ from the reference's.
//!
//! - Words: the reference counts `\w+` runs (NLTK's `RegexpTokenizer(r"\w+")`); so do we, exactly.
//! - Sentences: the reference uses NLTK's punkt model for English. We use Unicode sentence
//!   boundaries (UAX #29, `unicode-segmentation`), which knows no abbreviations: "Dr. Smith
//!   arrived." is two sentences for us and one for punkt. Sentence counts can therefore be higher
//!   than the reference's on text with abbreviations before capitalised words.
//! - Capitalised words: the reference tokenises with NLTK's Treebank `word_tokenize`; we split on
//!   whitespace and punctuation, keeping hyphens and apostrophes inside a word. "DON'T" is one
//!   capital word for us and two ("DO", "N'T") for the reference.
//! - Language: the reference uses langdetect; we use whatlang (trigram profiles, 69 languages).
//!   Both are statistical and can disagree on short or mixed text. whatlang has no Swahili model,
//!   so `sw` is never detected. Text with no letters counts as followed, as the reference does when
//!   langdetect raises.

use regex::Regex;
use std::sync::OnceLock;
use unicode_segmentation::UnicodeSegmentation;
use whatlang::Lang;

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid built-in regex"))
}

pub fn count_words(text: &str) -> usize {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"\w+").find_iter(text).count()
}

pub fn count_sentences(text: &str) -> usize {
    text.unicode_sentences()
        .filter(|s| s.chars().any(|c| !c.is_whitespace()))
        .count()
}

/// Python's `str.isupper()`: at least one cased character and none of them lowercase.
pub fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Python's `str.islower()`.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// Words for the capital-word count: letter/digit runs with inner hyphens or apostrophes.
pub fn word_tokens(text: &str) -> impl Iterator<Item = &str> {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"\w+(?:['’-]\w+)*")
        .find_iter(text)
        .map(|m| m.as_str())
}

/// ISO 639-1 codes of the languages IFEval asks for, with whatlang's model for each.
const LANGUAGES: &[(&str, Option<Lang>)] = &[
    ("en", Some(Lang::Eng)),
    ("es", Some(Lang::Spa)),
    ("pt", Some(Lang::Por)),
    ("ar", Some(Lang::Ara)),
    ("hi", Some(Lang::Hin)),
    ("fr", Some(Lang::Fra)),
    ("ru", Some(Lang::Rus)),
    ("de", Some(Lang::Deu)),
    ("ja", Some(Lang::Jpn)),
    ("it", Some(Lang::Ita)),
    ("bn", Some(Lang::Ben)),
    ("uk", Some(Lang::Ukr)),
    ("th", Some(Lang::Tha)),
    ("ur", Some(Lang::Urd)),
    ("ta", Some(Lang::Tam)),
    ("te", Some(Lang::Tel)),
    ("bg", Some(Lang::Bul)),
    ("ko", Some(Lang::Kor)),
    ("pl", Some(Lang::Pol)),
    ("he", Some(Lang::Heb)),
    ("fa", Some(Lang::Pes)),
    ("vi", Some(Lang::Vie)),
    ("ne", Some(Lang::Nep)),
    ("sw", None),
    ("kn", Some(Lang::Kan)),
    ("mr", Some(Lang::Mar)),
    ("gu", Some(Lang::Guj)),
    ("pa", Some(Lang::Pan)),
    ("ml", Some(Lang::Mal)),
    ("fi", Some(Lang::Fin)),
];

pub fn is_known_language(code: &str) -> bool {
    LANGUAGES.iter().any(|(c, _)| *c == code)
}

pub fn language_name(code: &str) -> &'static str {
    match code {
        "en" => "English",
        "es" => "Spanish",
        "pt" => "Portuguese",
        "ar" => "Arabic",
        "hi" => "Hindi",
        "fr" => "French",
        "ru" => "Russian",
        "de" => "German",
        "ja" => "Japanese",
        "it" => "Italian",
        "bn" => "Bengali",
        "uk" => "Ukrainian",
        "th" => "Thai",
        "ur" => "Urdu",
        "ta" => "Tamil",
        "te" => "Telugu",
        "bg" => "Bulgarian",
        "ko" => "Korean",
        "pl" => "Polish",
        "he" => "Hebrew",
        "fa" => "Persian",
        "vi" => "Vietnamese",
        "ne" => "Nepali",
        "sw" => "Swahili",
        "kn" => "Kannada",
        "mr" => "Marathi",
        "gu" => "Gujarati",
        "pa" => "Punjabi",
        "ml" => "Malayalam",
        "fi" => "Finnish",
        _ => "an unknown language",
    }
}

/// Whether `text` is detected as the language with ISO 639-1 `code`. `None` when nothing can be
/// detected (no letters), which the checkers count as followed, like the reference.
pub fn detect_is(text: &str, code: &str) -> Option<bool> {
    let detected = whatlang::detect_lang(text)?;
    let wanted = LANGUAGES
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, l)| *l);
    Some(wanted == Some(detected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_word_character_runs() {
        assert_eq!(count_words("Hello, world! It's 2024."), 5);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn sentences_split_on_terminal_punctuation() {
        assert_eq!(count_sentences("One. Two! Three? Four"), 4);
        assert_eq!(count_sentences("Pi is 3.14 today."), 1);
        assert_eq!(count_sentences("   "), 0);
    }

    #[test]
    fn python_case_predicates() {
        assert!(is_upper("HELLO, 123"));
        assert!(!is_upper("123"));
        assert!(!is_upper("HELLo"));
        assert!(is_lower("hello, 123"));
        assert!(!is_lower("Hello"));
    }

    #[test]
    fn detects_common_languages() {
        let en = "The quick brown fox jumps over the lazy dog and keeps running through the field.";
        let de = "Der schnelle braune Fuchs springt über den faulen Hund und läuft weiter.";
        assert_eq!(detect_is(en, "en"), Some(true));
        assert_eq!(detect_is(de, "de"), Some(true));
        assert_eq!(detect_is(de, "en"), Some(false));
        assert_eq!(detect_is("12345 !!!", "en"), None);
    }
}
