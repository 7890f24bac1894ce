//! A small arithmetic evaluator for MedCalc-Bench answers written as `str(<expression>)`. The
//! reference rewrites such an expression (`^` → `**`, unit words removed, unbalanced parentheses
//! closed) and then runs Python's `eval` with only `min`, `pow`, `round`, `abs`, `int`, `float`,
//! `math` and `np` in scope. We apply the same rewrites and evaluate numbers, `+ - * / // % **`,
//! parentheses and those functions, without running any code; anything else is "N/A", as it would
//! be for the reference when its `eval` raises.

/// The reference's rewrites, then evaluation; `None` when it cannot be evaluated.
pub fn evaluate_reference_expression(raw: &str) -> Option<f64> {
    let mut e = raw.to_string();
    for (from, to) in [
        ("^", "**"),
        ("is odd", "% 2 == 1"),
        ("is even", "% 2 == 0"),
        ("sqrt", "math.sqrt"),
        (".math", ""),
        ("weight", ""),
        ("height", ""),
        ("mg/dl", ""),
        ("g/dl", ""),
        ("mmol/L", ""),
        ("kg", ""),
        ("g", ""),
        ("mEq/L", ""),
    ] {
        e = e.replace(from, to);
    }
    let mut e = e.split('#').next().unwrap_or_default().to_string();
    let open = e.matches('(').count();
    let close = e.matches(')').count();
    if open > close {
        e.push_str(&")".repeat(open - close));
    } else if close > open {
        e = "(".repeat(close - open) + &e;
    }
    evaluate(&e)
}

/// Evaluates a plain arithmetic expression.
pub fn evaluate(src: &str) -> Option<f64> {
    let tokens = tokenize(src)?;
    let mut p = Parser { tokens, pos: 0 };
    let v = p.expr()?;
    (p.pos == p.tokens.len() && v.is_finite()).then_some(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(src: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            out.push(Tok::Num(text.parse().ok()?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "**" => Some("**"),
                "//" => Some("//"),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Tok::Op(op));
                i += 2;
                continue;
            }
            out.push(match c {
                '+' => Tok::Op("+"),
                '-' => Tok::Op("-"),
                '*' => Tok::Op("*"),
                '/' => Tok::Op("/"),
                '%' => Tok::Op("%"),
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                _ => return None,
            });
            i += 1;
        }
    }
    Some(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        loop {
            if self.eat(&Tok::Op("+")) {
                v += self.term()?;
            } else if self.eat(&Tok::Op("-")) {
                v -= self.term()?;
            } else {
                return Some(v);
            }
        }
    }

    fn term(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat(&Tok::Op("*")) {
                v *= self.unary()?;
            } else if self.eat(&Tok::Op("/")) {
                let d = self.unary()?;
                if d == 0.0 {
                    return None;
                }
                v /= d;
            } else if self.eat(&Tok::Op("//")) {
                let d = self.unary()?;
                if d == 0.0 {
                    return None;
                }
                v = (v / d).floor();
            } else if self.eat(&Tok::Op("%")) {
                let d = self.unary()?;
                if d == 0.0 {
                    return None;
                }
                v -= d * (v / d).floor();
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self) -> Option<f64> {
        if self.eat(&Tok::Op("-")) {
            return Some(-self.unary()?);
        }
        if self.eat(&Tok::Op("+")) {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.atom()?;
        if self.eat(&Tok::Op("**")) {
            let exp = self.unary()?;
            return Some(base.powf(exp));
        }
        Some(base)
    }

    fn atom(&mut self) -> Option<f64> {
        match self.peek()?.clone() {
            Tok::Num(v) => {
                self.pos += 1;
                Some(v)
            }
            Tok::LParen => {
                self.pos += 1;
                let v = self.expr()?;
                self.eat(&Tok::RParen).then_some(v)
            }
            Tok::Name(name) => {
                self.pos += 1;
                if self.eat(&Tok::LParen) {
                    let mut args = Vec::new();
                    if !self.eat(&Tok::RParen) {
                        loop {
                            args.push(self.expr()?);
                            if self.eat(&Tok::RParen) {
                                break;
                            }
                            if !self.eat(&Tok::Comma) {
                                return None;
                            }
                        }
                    }
                    call(&name, &args)
                } else {
                    match name.as_str() {
                        "math.pi" | "np.pi" | "numpy.pi" => Some(std::f64::consts::PI),
                        "math.e" | "np.e" | "numpy.e" => Some(std::f64::consts::E),
                        _ => None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// Python's `round(x, n)` on a float: correctly rounded decimal, ties to even.
pub fn round_to(x: f64, digits: i32) -> f64 {
    if digits >= 0 {
        format!("{x:.prec$}", prec = digits as usize)
            .parse()
            .unwrap_or(x)
    } else {
        let scale = 10f64.powi(-digits);
        super::extract::python_round(x / scale) * scale
    }
}

fn call(name: &str, args: &[f64]) -> Option<f64> {
    let name = name
        .strip_prefix("numpy.")
        .or_else(|| name.strip_prefix("np."))
        .map_or(name.to_string(), |rest| format!("math.{rest}"));
    let one = || (args.len() == 1).then(|| args[0]);
    match (name.as_str(), args.len()) {
        ("round", 1) => Some(super::extract::python_round(args[0])),
        ("round" | "math.round", 2) => Some(round_to(args[0], args[1] as i32)),
        ("min", n) if n >= 1 => args.iter().copied().reduce(f64::min),
        ("pow" | "math.pow", 2) | ("math.power", 2) => Some(args[0].powf(args[1])),
        ("abs" | "math.fabs" | "math.abs", 1) => one().map(f64::abs),
        ("int", 1) => one().map(f64::trunc),
        ("float", 1) => one(),
        ("math.sqrt", 1) => one().filter(|v| *v >= 0.0).map(f64::sqrt),
        ("math.exp", 1) => one().map(f64::exp),
        ("math.log", 1) => one().filter(|v| *v > 0.0).map(f64::ln),
        ("math.log", 2) => (args[0] > 0.0).then(|| args[0].ln() / args[1].ln()),
        ("math.log10", 1) => one().filter(|v| *v > 0.0).map(f64::log10),
        ("math.floor", 1) => one().map(f64::floor),
        ("math.ceil", 1) => one().map(f64::ceil),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_python_precedence() {
        assert_eq!(evaluate("1 + 2 * 3"), Some(7.0));
        assert_eq!(evaluate("-2 ** 2"), Some(-4.0));
        assert_eq!(evaluate("2 ** 3 ** 2"), Some(512.0));
        assert_eq!(evaluate("7 // 2 + 7 % 3"), Some(4.0));
        assert_eq!(
            evaluate("round(2.675, 2)"),
            Some(2.67),
            "binary 2.675 is below the tie"
        );
        assert_eq!(evaluate("round(2.5)"), Some(2.0));
        assert_eq!(evaluate("math.sqrt(16) + min(3, 1, 2)"), Some(5.0));
        assert_eq!(evaluate("1 / 0"), None);
        assert_eq!(evaluate("__import__('os')"), None);
    }

    #[test]
    fn reference_rewrites_apply() {
        assert_eq!(evaluate_reference_expression("3^2"), Some(9.0));
        assert_eq!(
            evaluate_reference_expression("round((140 - 40) * 70 / 72"),
            Some(97.0)
        );
        assert_eq!(
            evaluate_reference_expression("70 kg * 2 # weight"),
            Some(140.0)
        );
        assert_eq!(evaluate_reference_expression("sqrt(4)"), Some(2.0));
    }
}
