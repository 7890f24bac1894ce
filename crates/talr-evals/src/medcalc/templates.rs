//! A seeded generator of MedCalc-Bench's 11 template calculators (short notes): QTc by Bazett,
//! Fridericia, Framingham, Hodges and Rautaharju; estimated due date; estimated date of
//! conception; estimated gestational age; steroid conversion; target weight; morphine milligram
//! equivalents. Answers follow MedCalc-Bench's own calculator code (its intermediate rounding to
//! three decimals, and its due-date rule, which adds the cycle-length gap for short cycles as well
//! as long ones). Limits are set as the dataset sets them: ±5% for decimals, the answer itself
//! otherwise. Rows are synthetic (`Note Type` = `Synthetic Template`); train and test sets come
//! from disjoint seeds.

use super::Row;
use chrono::{Duration, NaiveDate};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub const NOTE_TYPE: &str = "Synthetic Template";

/// MedCalc-Bench's rounding: three decimals, or three significant digits at or below 0.001.
pub fn round_number(x: f64) -> f64 {
    if x > 0.001 {
        super::expr::round_to(x, 3)
    } else if x == 0.0 {
        0.0
    } else {
        let digits = -(x.abs().log10().floor() as i32) + 2;
        super::expr::round_to(x, digits)
    }
}

/// Python's `str(float)`.
pub fn py_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

fn mdy(d: NaiveDate) -> String {
    d.format("%m/%d/%Y").to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QtFormula {
    Bazett,
    Fridericia,
    Framingham,
    Hodges,
    Rautaharju,
}

/// Conversion multipliers (mg equivalent to 1 mg of dexamethasone) MedCalc-Bench uses.
pub const STEROIDS: [(&str, f64); 11] = [
    ("Betamethasone IV", 1.0),
    ("Cortisone PO", 33.33),
    ("Dexamethasone IV", 1.0),
    ("Dexamethasone PO", 1.0),
    ("Hydrocortisone IV", 26.67),
    ("Hydrocortisone PO", 26.67),
    ("MethylPrednisoLONE IV", 5.33),
    ("MethylPrednisoLONE PO", 5.33),
    ("PrednisoLONE PO", 6.67),
    ("PredniSONE PO", 6.67),
    ("Triamcinolone IV", 5.33),
];

/// MME conversion factors MedCalc-Bench uses, with each drug's dose unit.
pub const OPIOIDS: [(&str, f64, &str); 12] = [
    ("Codeine", 0.15, "mg"),
    ("FentaNYL buccal", 0.13, "µg"),
    ("FentANYL patch", 2.4, "mg"),
    ("HYDROcodone", 1.0, "mg"),
    ("HYDROmorphone", 5.0, "mg"),
    ("Methadone", 4.7, "mg"),
    ("Morphine", 1.0, "mg"),
    ("OxyCODONE", 1.5, "mg"),
    ("OxyMORphone", 3.0, "mg"),
    ("Tapentadol", 0.4, "mg"),
    ("TraMADol", 0.2, "mg"),
    ("Buprenorphine", 10.0, "mg"),
];

/// One calculator's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "calculator", rename_all = "snake_case")]
pub enum Inputs {
    Qtc {
        formula: QtFormula,
        heart_rate: u32,
        qt_interval: u32,
    },
    DueDate {
        menstrual_date: NaiveDate,
        cycle_length: u32,
    },
    Conception {
        menstrual_date: NaiveDate,
        cycle_length: u32,
    },
    GestationalAge {
        menstrual_date: NaiveDate,
        current_date: NaiveDate,
    },
    Steroid {
        from: usize,
        dose: f64,
        to: usize,
    },
    TargetWeight {
        bmi: f64,
        height: f64,
        height_unit: String,
    },
    Mme {
        drugs: Vec<(usize, u32, u32)>,
    },
}

/// An answer as the calculator gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Date(String),
    WeeksDays(u64, u64),
}

pub struct Computed {
    pub answer: Value,
    pub explanation: String,
}

impl Inputs {
    pub fn calculator(&self) -> (u32, &'static str, &'static str, &'static str) {
        match self {
            Inputs::Qtc { formula, .. } => match formula {
                QtFormula::Bazett => (11, "QTc Bazett Calculator", "physical", "decimal"),
                QtFormula::Fridericia => (56, "QTc Fridericia Calculator", "physical", "decimal"),
                QtFormula::Framingham => (57, "QTc Framingham Calculator", "physical", "decimal"),
                QtFormula::Hodges => (58, "QTc Hodges Calculator", "physical", "decimal"),
                QtFormula::Rautaharju => (59, "QTc Rautaharju Calculator", "physical", "decimal"),
            },
            Inputs::DueDate { .. } => (13, "Estimated Due Date", "date", "date"),
            Inputs::Conception { .. } => (68, "Estimated of Conception", "date", "date"),
            Inputs::GestationalAge { .. } => (69, "Estimated Gestational Age", "date", "integer"),
            Inputs::Steroid { .. } => (24, "Steroid Conversion Calculator", "dosage", "decimal"),
            Inputs::TargetWeight { .. } => (61, "Target weight", "physical", "decimal"),
            Inputs::Mme { .. } => (
                49,
                "Morphine Milligram Equivalents (MME) Calculator",
                "dosage",
                "decimal",
            ),
        }
    }

    pub fn note_and_question(&self) -> (String, String) {
        match self {
            Inputs::Qtc { formula, heart_rate, qt_interval } => (
                format!("Patient has a heart rate of {heart_rate} bpm and a QT interval of {qt_interval} msec."),
                format!(
                    "Using the {formula:?} Formula for corrected QT interval, what is the patient's \
                     corrected QT interval in terms of msec?"
                ),
            ),
            Inputs::DueDate { menstrual_date, cycle_length } => (
                format!(
                    "The patient's last menstrual period was on {}. Her cycle length is {cycle_length} days.",
                    mdy(*menstrual_date)
                ),
                "Using Naegele's Rule for estimated due date based on the last menstrual period \
                 and cycle length, what is the patient's estimated due date? Your response should \
                 be in the format of M/D/Y (e.g. 08/31/2023)."
                    .into(),
            ),
            Inputs::Conception { menstrual_date, cycle_length } => (
                format!(
                    "The patient's last menstrual period was on {}. Her cycle length is {cycle_length} days.",
                    mdy(*menstrual_date)
                ),
                "Based on the patient's last menstrual period, what is the patient's estimated \
                 date of conception? Your response should be in the format of M/D/Y (e.g. \
                 08/31/2023)."
                    .into(),
            ),
            Inputs::GestationalAge { menstrual_date, current_date } => (
                format!(
                    "The current date is {}. The patient's last menstrual period was on {}.",
                    mdy(*current_date),
                    mdy(*menstrual_date)
                ),
                "Based on the patient's last menstrual period, what is the patient's estimated \
                 gestational age? Your response should be a tuple of weeks and days, such as \
                 ('4 weeks', '2 days')."
                    .into(),
            ),
            Inputs::Steroid { from, dose, to } => (
                format!("Patient has taken {} mg of {}.", py_float(*dose), STEROIDS[*from].0),
                format!(
                    "Based on the patient's dose of {}, what is the equivalent dosage in mg of {}?",
                    STEROIDS[*from].0, STEROIDS[*to].0
                ),
            ),
            Inputs::TargetWeight { bmi, height, height_unit } => (
                format!(
                    "Patient's target BMI is {} kg/m^2 and the patient's height is {} {height_unit}.",
                    py_float(*bmi),
                    py_float(*height)
                ),
                "Based on the patient's height and target BMI, what is the patient's target \
                 weight in kg?"
                    .into(),
            ),
            Inputs::Mme { drugs } => {
                let parts: Vec<String> = drugs
                    .iter()
                    .map(|(d, dose, per_day)| {
                        let (name, _, unit) = OPIOIDS[*d];
                        let times = if *per_day == 1 { "time" } else { "times" };
                        format!("{dose} {unit} of {name} {per_day} {times} a day")
                    })
                    .collect();
                (
                    format!("The patient takes {}.", join_list(&parts)),
                    "Based on the patient's dosing, what is the patient's daily Morphine \
                     Milligram Equivalents (MME)?"
                        .into(),
                )
            }
        }
    }

    /// The answer and a step-by-step explanation.
    pub fn compute(&self) -> Computed {
        match self {
            Inputs::Qtc {
                formula,
                heart_rate,
                qt_interval,
            } => {
                let (hr, qt) = (*heart_rate as f64, *qt_interval as f64);
                let rr = round_number(60.0 / hr);
                let rr_s = py_float(rr);
                let (formula_text, value, step) = match formula {
                    QtFormula::Bazett => (
                        "QTc = QT / √(RR)",
                        qt / rr.powf(0.5),
                        format!("{qt_interval} / √({rr_s})"),
                    ),
                    QtFormula::Fridericia => (
                        "QTc = QT / RR^(1/3)",
                        qt / rr.powf(1.0 / 3.0),
                        format!("{qt_interval} / {rr_s}^(1/3)"),
                    ),
                    QtFormula::Framingham => (
                        "QTc = QT + 154 × (1 − RR)",
                        qt + 154.0 * (1.0 - rr),
                        format!("{qt_interval} + 154 × (1 − {rr_s})"),
                    ),
                    QtFormula::Hodges => (
                        "QTc = QT + 1.75 × (60/RR − 60)",
                        qt + 1.75 * ((60.0 / rr) - 60.0),
                        format!("{qt_interval} + 1.75 × (60/{rr_s} − 60)"),
                    ),
                    QtFormula::Rautaharju => (
                        "QTc = QT × (120 + HR) / 180",
                        qt * (120.0 + hr) / 180.0,
                        format!("{qt_interval} × (120 + {heart_rate}) / 180"),
                    ),
                };
                let qtc = round_number(value);
                let qtc_s = py_float(qtc);
                let rr_line = if *formula == QtFormula::Rautaharju {
                    String::new()
                } else {
                    format!("The RR interval is 60 / heart rate = 60/{heart_rate} = {rr_s} sec. ")
                };
                Computed {
                    answer: Value::Number(qtc),
                    explanation: format!(
                        "The {formula:?} formula for the corrected QT interval is {formula_text}, with QT in msec and RR = 60/(heart rate) in seconds. \
                         The heart rate is {heart_rate} beats per minute and the QT interval is {qt_interval} msec. {rr_line}\
                         Substituting, QTc = {step} = {qtc_s} msec. The corrected QT interval is {qtc_s} msec."
                    ),
                }
            }
            Inputs::DueDate {
                menstrual_date,
                cycle_length,
            } => {
                let base = *menstrual_date + Duration::weeks(40);
                let gap = (*cycle_length as i64 - 28).abs();
                let due = base + Duration::days(gap);
                Computed {
                    answer: Value::Date(mdy(due)),
                    explanation: format!(
                        "By Naegele's rule, the due date is the last menstrual period ({}) plus 40 weeks, which is {}, adjusted by the cycle length's difference from 28 days. \
                         The cycle length is {cycle_length} days, a difference of {gap} days, so the estimated due date is {}.",
                        mdy(*menstrual_date), mdy(base), mdy(due)
                    ),
                }
            }
            Inputs::Conception { menstrual_date, .. } => {
                let date = *menstrual_date + Duration::weeks(2);
                Computed {
                    answer: Value::Date(mdy(date)),
                    explanation: format!(
                        "The estimated date of conception is two weeks after the last menstrual period. The last menstrual period was {}, so the estimated date of conception is {}.",
                        mdy(*menstrual_date), mdy(date)
                    ),
                }
            }
            Inputs::GestationalAge {
                menstrual_date,
                current_date,
            } => {
                let days = (*current_date - *menstrual_date).num_days().unsigned_abs();
                let (w, d) = (days / 7, days % 7);
                Computed {
                    answer: Value::WeeksDays(w, d),
                    explanation: format!(
                        "Gestational age is the time since the last menstrual period. From {} to {} is {days} days, which is {w} weeks and {d} days. The estimated gestational age is {w} weeks and {d} days.",
                        mdy(*menstrual_date), mdy(*current_date)
                    ),
                }
            }
            Inputs::Steroid { from, dose, to } => {
                let (from_name, from_mult) = STEROIDS[*from];
                let (to_name, to_mult) = STEROIDS[*to];
                let factor = round_number(to_mult / from_mult);
                let converted = round_number(dose * factor);
                let (factor_s, converted_s) = (py_float(factor), py_float(converted));
                Computed {
                    answer: Value::Number(converted),
                    explanation: format!(
                        "Equivalent doses: {} mg of {from_name} corresponds to {} mg of {to_name} relative to dexamethasone, so the conversion factor is {to_mult}/{from_mult} = {factor_s} mg {to_name} per mg {from_name}. \
                         The patient took {} mg of {from_name}, so the equivalent dose is {} × {factor_s} = {converted_s} mg of {to_name}.",
                        py_float(from_mult), py_float(to_mult), py_float(round_number(*dose)), py_float(round_number(*dose))
                    ),
                }
            }
            Inputs::TargetWeight {
                bmi,
                height,
                height_unit,
            } => {
                let meters = match height_unit.as_str() {
                    "cm" => round_number(height / 100.0),
                    "in" => round_number(height * 0.0254),
                    _ => *height,
                };
                let weight = round_number(bmi * (meters * meters));
                let (meters_s, weight_s) = (py_float(meters), py_float(weight));
                Computed {
                    answer: Value::Number(weight),
                    explanation: format!(
                        "Target weight = target BMI × height². The height is {} {height_unit} = {meters_s} m and the target BMI is {} kg/m^2, so the target weight is {} × {meters_s} × {meters_s} = {weight_s} kg.",
                        py_float(*height), py_float(*bmi), py_float(*bmi)
                    ),
                }
            }
            Inputs::Mme { drugs } => {
                let mut total = 0.0;
                let mut lines = Vec::new();
                for (d, dose, per_day) in drugs {
                    let (name, factor, unit) = OPIOIDS[*d];
                    let daily = round_number(*dose as f64 * *per_day as f64);
                    let mme = round_number(factor * daily);
                    let (daily_s, mme_s) = (py_float(daily), py_float(mme));
                    lines.push(format!(
                        "{name}: {dose} {unit} × {per_day} doses/day = {daily_s} {unit}/day, × {factor} MME per {unit} = {mme_s} MME/day."
                    ));
                    total = round_number(total + *per_day as f64 * factor * *dose as f64);
                }
                let total_s = py_float(total);
                Computed {
                    answer: Value::Number(total),
                    explanation: format!(
                        "The daily MME is the sum over drugs of dose × doses per day × the drug's MME conversion factor. {} The total is {total_s} MME/day.",
                        lines.join(" ")
                    ),
                }
            }
        }
    }

    /// A random realistic input for calculator `which` (0..11, in the order listed above).
    pub fn sample(which: usize, rng: &mut StdRng) -> Self {
        let date = |rng: &mut StdRng| {
            NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
                + Duration::days(rng.random_range(0..9000))
        };
        match which {
            0..=4 => Inputs::Qtc {
                formula: [
                    QtFormula::Bazett,
                    QtFormula::Fridericia,
                    QtFormula::Framingham,
                    QtFormula::Hodges,
                    QtFormula::Rautaharju,
                ][which],
                heart_rate: rng.random_range(40..=180),
                qt_interval: rng.random_range(250..=600),
            },
            5 => Inputs::DueDate {
                menstrual_date: date(rng),
                cycle_length: rng.random_range(20..=40),
            },
            6 => Inputs::Conception {
                menstrual_date: date(rng),
                cycle_length: rng.random_range(20..=40),
            },
            7 => {
                let lmp = date(rng);
                Inputs::GestationalAge {
                    menstrual_date: lmp,
                    current_date: lmp + Duration::days(rng.random_range(7..=290)),
                }
            }
            8 => {
                let from = rng.random_range(0..STEROIDS.len());
                let mut to = rng.random_range(0..STEROIDS.len() - 1);
                if to >= from {
                    to += 1;
                }
                let dose = (rng.random_range(1.0..250.0f64) * 1000.0).round() / 1000.0;
                Inputs::Steroid { from, dose, to }
            }
            9 => {
                let (height, unit) = if rng.random_bool(0.5) {
                    (rng.random_range(140..=200) as f64, "cm")
                } else {
                    (rng.random_range(55..=80) as f64, "in")
                };
                Inputs::TargetWeight {
                    bmi: rng.random_range(185..=300) as f64 / 10.0,
                    height,
                    height_unit: unit.into(),
                }
            }
            _ => {
                let n = rng.random_range(1..=3);
                let mut drugs: Vec<(usize, u32, u32)> = Vec::new();
                while drugs.len() < n {
                    let d = rng.random_range(0..OPIOIDS.len());
                    if drugs.iter().all(|(x, _, _)| *x != d) {
                        drugs.push((d, rng.random_range(1..=20) * 5, rng.random_range(1..=4)));
                    }
                }
                Inputs::Mme { drugs }
            }
        }
    }

    /// A dataset row for these inputs.
    pub fn to_row(&self, row_number: u64, note_id: String) -> Row {
        let (id, name, category, output_type) = self.calculator();
        let (note, question) = self.note_and_question();
        let computed = self.compute();
        let (answer, lower, upper) = match &computed.answer {
            Value::Number(v) => (
                py_float(*v),
                py_float(round_number(v * 0.95)),
                py_float(round_number(v * 1.05)),
            ),
            Value::Date(d) => (d.clone(), d.clone(), d.clone()),
            Value::WeeksDays(w, d) => {
                let s = format!("('{w} weeks', '{d} days')");
                (s.clone(), s.clone(), s)
            }
        };
        Row {
            row_number,
            calculator_id: id,
            calculator_name: name.into(),
            category: category.into(),
            output_type: output_type.into(),
            note_id,
            note_type: NOTE_TYPE.into(),
            patient_note: note,
            question,
            relevant_entities: serde_json::to_string(self).unwrap_or_default(),
            ground_truth_answer: answer,
            lower_limit: lower,
            upper_limit: upper,
            ground_truth_explanation: computed.explanation,
        }
    }
}

fn join_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

pub const CALCULATORS: usize = 11;

/// `per_calculator` rows of each of the 11 calculators from `seed`, interleaved, numbered from 1.
/// Use different seeds for training and test sets.
pub fn generate(per_calculator: usize, seed: u64) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows = Vec::with_capacity(per_calculator * CALCULATORS);
    for i in 0..per_calculator {
        for which in 0..CALCULATORS {
            let inputs = Inputs::sample(which, &mut rng);
            let n = rows.len() as u64 + 1;
            rows.push(inputs.to_row(n, format!("synthetic-{seed}-{i}-{which}")));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_medcalc() {
        assert_eq!(round_number(0.3409090909), 0.341);
        assert_eq!(round_number(0.000123456), 0.000123);
        assert_eq!(py_float(565.0), "565.0");
        assert_eq!(py_float(565.115), "565.115");
    }

    #[test]
    fn known_values() {
        // Worked examples from the calculators' own documentation.
        let bazett = Inputs::Qtc {
            formula: QtFormula::Bazett,
            heart_rate: 176,
            qt_interval: 330,
        };
        assert_eq!(bazett.compute().answer, Value::Number(565.115));
        let due = Inputs::DueDate {
            menstrual_date: NaiveDate::from_ymd_opt(2023, 12, 3).unwrap(),
            cycle_length: 28,
        };
        assert_eq!(due.compute().answer, Value::Date("09/08/2024".into()));
        let ga = Inputs::GestationalAge {
            menstrual_date: NaiveDate::from_ymd_opt(2022, 1, 6).unwrap(),
            current_date: NaiveDate::from_ymd_opt(2022, 4, 29).unwrap(),
        };
        assert_eq!(ga.compute().answer, Value::WeeksDays(16, 1));
    }

    #[test]
    fn generated_rows_score_correct_against_themselves() {
        let rows = generate(20, 3);
        assert_eq!(rows.len(), 220);
        for row in &rows {
            let truth = super::super::truth(row).unwrap();
            let response = super::super::target(row, super::super::Style::LabelOnly);
            let a = super::super::extract::extract(&response, truth.kind).unwrap();
            assert!(truth.accepts(&a), "{row:?}");
        }
        assert_ne!(
            serde_json::to_string(&generate(2, 1)).unwrap(),
            serde_json::to_string(&generate(2, 2)).unwrap()
        );
    }
}
