//! MedCalc-Bench answer extraction and correctness, as the reference's `extract_answer` and
//! `check_correctness` define them, without evaluating code: `str(...)` answers go through a small
//! arithmetic evaluator that accepts the numbers, operators and functions the reference's `eval`
//! environment offers (`round`, `min`, `max`, `pow`, `abs`, `int`, `float`, `math.*`).

use super::expr;
use chrono::NaiveDate;
use regex::Regex;
use std::sync::OnceLock;

/// How a calculator's answer is compared, by calculator id (the reference's id lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// MM/DD/YYYY, compared exactly (ids 13, 68).
    Date,
    /// (weeks, days) (id 69).
    WeeksDays,
    /// Rounded to an integer and compared exactly.
    Integer,
    /// Correct when Lower Limit <= answer <= Upper Limit.
    Decimal,
}

const INTEGER_IDS: [u32; 18] = [
    4, 15, 16, 17, 18, 20, 21, 25, 27, 28, 29, 32, 33, 36, 43, 45, 48, 51,
];
const DECIMAL_IDS: [u32; 34] = [
    2, 3, 5, 6, 7, 8, 9, 10, 11, 19, 22, 23, 24, 26, 30, 31, 38, 39, 40, 44, 46, 49, 56, 57, 58,
    59, 60, 61, 62, 63, 64, 65, 66, 67,
];

pub fn output_kind(calculator_id: u32) -> Option<OutputKind> {
    match calculator_id {
        13 | 68 => Some(OutputKind::Date),
        69 => Some(OutputKind::WeeksDays),
        id if INTEGER_IDS.contains(&id) => Some(OutputKind::Integer),
        id if DECIMAL_IDS.contains(&id) => Some(OutputKind::Decimal),
        _ => None,
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid built-in regex"))
}

/// The text after the last `"answer":` up to the next `}`, unquoted; `None` when absent or when
/// it is the prompt's own placeholder.
pub fn answer_field(response: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let raw = re(&RE, r#"(?s)[Aa]nswer":\s*(.*?)\}"#)
        .captures_iter(response)
        .last()?
        .get(1)?
        .as_str()
        .trim()
        .trim_matches('"')
        .to_string();
    let placeholders = [
        "str(short_and_direct_answer_of_the_question)",
        "str(value which is the answer to the question)",
        "X.XX",
    ];
    (!placeholders.contains(&raw.as_str())).then_some(raw)
}

fn weeks_days_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(
        &RE,
        r#"\(?["']?(\d+)\s*(weeks?)?["']?,?\s*["']?(\d+)\s*(days?)?["']?\s*\)?"#,
    )
}

/// A parsed answer, ready to compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Date(NaiveDate),
    WeeksDays(u64, u64),
    Number(f64),
}

/// Extracts the answer of `response` for a calculator of `kind`, or `None` ("N/A").
pub fn extract(response: &str, kind: OutputKind) -> Option<Answer> {
    let text = answer_field(response)?;
    match kind {
        OutputKind::Date => {
            static RE: OnceLock<Regex> = OnceLock::new();
            let c =
                re(&RE, r"^(0?[1-9]|1[0-2])/(0?[1-9]|[12][0-9]|3[01])/(\d{4})").captures(&text)?;
            parse_date_parts(&c[1], &c[2], &c[3])
        }
        OutputKind::WeeksDays => {
            let cleaned = text
                .replace('[', "(")
                .replace(']', ")")
                .replace(['\'', '"'], "");
            parse_weeks_days(&cleaned)
        }
        OutputKind::Integer => integer_answer(&text).map(Answer::Number),
        OutputKind::Decimal => decimal_answer(&text).map(Answer::Number),
    }
}

fn parse_date_parts(m: &str, d: &str, y: &str) -> Option<Answer> {
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).map(Answer::Date)
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.trim().split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    match parse_date_parts(m, d, y)? {
        Answer::Date(date) => Some(date),
        _ => None,
    }
}

pub fn parse_weeks_days(s: &str) -> Option<Answer> {
    let c = weeks_days_re().captures(s)?;
    Some(Answer::WeeksDays(c[1].parse().ok()?, c[3].parse().ok()?))
}

fn last_number(text: &str) -> Option<f64> {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(&RE, r"-?\d+(\.\d+)?")
        .find_iter(text)
        .last()
        .and_then(|m| m.as_str().parse().ok())
}

fn integer_answer(text: &str) -> Option<f64> {
    static OUT_OF: OnceLock<Regex> = OnceLock::new();
    static LIST: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(&OUT_OF, r"(\d+) out of").captures(text) {
        return c[1].parse().ok();
    }
    if let Some(m) = re(&LIST, r"-?\d+(, ?-?\d+)+").find(text) {
        return Some(m.as_str().split(',').count() as f64);
    }
    last_number(text)
}

fn decimal_answer(text: &str) -> Option<f64> {
    static STR_CALL: OnceLock<Regex> = OnceLock::new();
    static GFR: OnceLock<Regex> = OnceLock::new();
    static PERCENT: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(&STR_CALL, r"str\((.*)\)").captures(text) {
        return expr::evaluate_reference_expression(&c[1]);
    }
    if let Some(c) = re(&GFR, r"(-?\d+(\.\d+)?)\s*mL/min/1.73").captures(text) {
        return c[1].parse().ok();
    }
    if let Some(c) = re(&PERCENT, r"(-?\d+(\.\d+)?)%").captures_iter(text).last() {
        return c[1].parse::<f64>().ok().map(|v| v / 100.0);
    }
    last_number(text)
}

/// A row's ground truth, parsed once.
#[derive(Debug, Clone)]
pub struct Truth {
    pub kind: OutputKind,
    pub answer: Answer,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Truth {
    /// Parses the dataset's ground-truth columns for a calculator of `kind`.
    pub fn parse(kind: OutputKind, answer: &str, lower: &str, upper: &str) -> Option<Self> {
        let parsed = match kind {
            OutputKind::Date => Answer::Date(parse_date(answer)?),
            OutputKind::WeeksDays => parse_weeks_days(answer)?,
            OutputKind::Integer | OutputKind::Decimal => {
                Answer::Number(answer.trim().parse().ok()?)
            }
        };
        Some(Self {
            kind,
            answer: parsed,
            lower: lower.trim().parse().ok(),
            upper: upper.trim().parse().ok(),
        })
    }

    /// The reference's `check_correctness`.
    pub fn accepts(&self, answer: &Answer) -> bool {
        match (self.kind, answer, &self.answer) {
            (OutputKind::Date, Answer::Date(a), Answer::Date(t)) => a == t,
            (OutputKind::WeeksDays, Answer::WeeksDays(w, d), Answer::WeeksDays(tw, td)) => {
                (w, d) == (tw, td)
            }
            (OutputKind::Integer, Answer::Number(a), Answer::Number(t)) => python_round(*a) == *t,
            (OutputKind::Decimal, Answer::Number(a), _) => match (self.lower, self.upper) {
                (Some(lo), Some(hi)) => lo <= *a && *a <= hi,
                _ => false,
            },
            _ => false,
        }
    }
}

/// Python's `round(x)`: to the nearest integer, ties to even.
pub fn python_round(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(response: &str, kind: OutputKind) -> Option<f64> {
        match extract(response, kind)? {
            Answer::Number(v) => Some(v),
            other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn takes_the_last_answer_field() {
        let r = r#"{"step_by_step_thinking": "x", "answer": "12"} then {"answer": "13.5"}"#;
        assert_eq!(num(r, OutputKind::Decimal), Some(13.5));
        assert_eq!(num(r#"{"answer": "X.XX"}"#, OutputKind::Decimal), None);
        assert_eq!(num("no json at all", OutputKind::Decimal), None);
    }

    #[test]
    fn decimal_forms() {
        let d = OutputKind::Decimal;
        assert_eq!(num(r#"{"answer": "53.1%"}"#, d), Some(0.531));
        assert_eq!(num(r#"{"answer": "8.1 mL/min/1.73 m²"}"#, d), Some(8.1));
        assert_eq!(num(r#"{"answer": "str(round(60 / 4, 2))"}"#, d), Some(15.0));
        assert_eq!(num(r#"{"answer": "about 3 or 4.5 msec"}"#, d), Some(4.5));
    }

    #[test]
    fn integer_forms() {
        let i = OutputKind::Integer;
        assert_eq!(num(r#"{"answer": "3 out of 5"}"#, i), Some(3.0));
        assert_eq!(num(r#"{"answer": "1, 2, 3"}"#, i), Some(3.0));
        assert_eq!(num(r#"{"answer": "score 7"}"#, i), Some(7.0));
        let t = Truth::parse(i, "4", "4", "4").unwrap();
        assert!(t.accepts(&Answer::Number(4.4)));
        assert!(!t.accepts(&Answer::Number(4.6)));
        assert!(t.accepts(&Answer::Number(4.5)), "Python rounds 4.5 to 4");
    }

    #[test]
    fn dates_and_gestational_age() {
        let t = Truth::parse(OutputKind::Date, "02/08/2012", "02/08/2012", "02/08/2012").unwrap();
        let a = extract(r#"{"answer": "2/8/2012"}"#, OutputKind::Date).unwrap();
        assert!(t.accepts(&a));
        let wrong = extract(r#"{"answer": "02/09/2012"}"#, OutputKind::Date).unwrap();
        assert!(!t.accepts(&wrong));
        assert_eq!(
            extract(r#"{"answer": "Feb 8, 2012"}"#, OutputKind::Date),
            None
        );
        let g = Truth::parse(OutputKind::WeeksDays, "('4 weeks', '3 days')", "", "").unwrap();
        for r in [
            r#"{"answer": "(4 weeks, 3 days)"}"#,
            r#"{"answer": "('4 weeks', '3 days')"}"#,
            r#"{"answer": "[4, 3]"}"#,
            r#"{"answer": "4 weeks 3 days"}"#,
        ] {
            let a = extract(r, OutputKind::WeeksDays).unwrap();
            assert!(g.accepts(&a), "{r}");
        }
        let a = extract(r#"{"answer": "(4, 2)"}"#, OutputKind::WeeksDays).unwrap();
        assert!(!g.accepts(&a));
    }

    #[test]
    fn decimal_limits_are_inclusive() {
        let t = Truth::parse(OutputKind::Decimal, "100.0", "95.0", "105.0").unwrap();
        assert!(t.accepts(&Answer::Number(95.0)));
        assert!(t.accepts(&Answer::Number(105.0)));
        assert!(!t.accepts(&Answer::Number(94.999)));
        assert!(!t.accepts(&Answer::Number(105.001)));
    }
}
