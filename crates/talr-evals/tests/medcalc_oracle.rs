//! The template generator against MedCalc-Bench's own calculators (the pip-served `medcalc-bench`
//! package, run from the asset cache with the system python): 200 random inputs per calculator
//! must give the same answers. (The package's `target_weight` module imports a helper that its
//! own utils no longer define; the oracle supplies the package's height conversion under that
//! name.)

use rand::{rngs::StdRng, SeedableRng};
use std::io::Write;
use std::process::{Command, Stdio};
use talr_evals::medcalc::templates::{Inputs, Value, CALCULATORS, OPIOIDS, STEROIDS};

const ORACLE: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from medcalc.qt_calculator_bazett import bazett_calculator_explanation as bazett
from medcalc.qt_calculator_fredericia import fredericia_calculator_explanation as fridericia
from medcalc.qt_calculator_framingham import framingham_calculator_explanation as framingham
from medcalc.qt_calculator_hodges import hodges_calculator_explanation as hodges
from medcalc.qt_calculator_rautaharju import rautaharju_calculator_explanation as rautaharju
from medcalc.estimated_due_date import add_40_weeks_explanation as due
from medcalc.conception_date import add_2_weeks_explanation as conception
from medcalc.gestational_age import compute_gestational_age_explanation as ga
from medcalc.steroid_conversion import compute_steroid_conversion_explanation as steroid
# medcalc-bench 1.7.0's target_weight imports a helper its utils no longer define; the
# package's own height conversion to metres is that helper.
import medcalc.utils.height_conversion as hc
hc.convert_height_to_target_unit_explanation = hc.height_conversion_explanation
from medcalc.target_weight import targetweight_explanation as target
from medcalc.mme import mme_explanation as mme
qt = {"Bazett": bazett, "Fridericia": fridericia, "Framingham": framingham, "Hodges": hodges, "Rautaharju": rautaharju}
def mdy(d):
    y, m, dd = d.split("-")
    return f"{m}/{dd}/{y}"
out = []
for case in json.load(sys.stdin):
    c = case["calculator"]
    if c == "qtc":
        r = qt[case["formula"]]({"heart_rate": (case["heart_rate"], "beats per minute"), "qt_interval": (case["qt_interval"], "msec")})
    elif c == "due_date":
        r = due({"menstrual_date": mdy(case["menstrual_date"]), "cycle_length": case["cycle_length"]})
    elif c == "conception":
        r = conception({"menstrual_date": mdy(case["menstrual_date"]), "cycle_length": case["cycle_length"]})
    elif c == "gestational_age":
        r = ga({"menstrual_date": mdy(case["menstrual_date"]), "current_date": mdy(case["current_date"])})
    elif c == "steroid":
        r = steroid({"input steroid": [case["from_name"], case["dose"], "mg"], "target steroid": case["to_name"]})
    elif c == "target_weight":
        r = target({"body_mass_index": (case["bmi"], "kg/m^2"), "height": (case["height"], case["height_unit"])})
    elif c == "mme":
        args = {}
        for name, dose, unit, per_day in case["named"]:
            args[name + " Dose"] = (dose, unit)
            args[name + " Dose Per Day"] = (per_day, "per day")
        r = mme(args)
    a = r["Answer"]
    if isinstance(a, tuple):
        a = [int(a[0].split()[0]), int(a[1].split()[0])]
    out.append(a)
json.dump(out, sys.stdout)
"#;

fn oracle_case(inputs: &Inputs) -> serde_json::Value {
    let mut v = serde_json::to_value(inputs).unwrap();
    match inputs {
        Inputs::Steroid { from, to, .. } => {
            v["from_name"] = STEROIDS[*from].0.into();
            v["to_name"] = STEROIDS[*to].0.into();
        }
        Inputs::Mme { drugs } => {
            v["named"] = drugs
                .iter()
                .map(|(d, dose, per_day)| {
                    let (name, _, unit) = OPIOIDS[*d];
                    serde_json::json!([name, dose, unit, per_day])
                })
                .collect();
        }
        _ => {}
    }
    v
}

#[test]
fn template_calculators_agree_with_medcalc_bench() {
    let Some(pkg) = talr_assets::cached_for_test(&talr_assets::MEDCALC_BENCH) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(2025);
    let inputs: Vec<Inputs> = (0..200)
        .flat_map(|_| (0..CALCULATORS).collect::<Vec<_>>())
        .map(|which| Inputs::sample(which, &mut rng))
        .collect();
    let cases: Vec<serde_json::Value> = inputs.iter().map(oracle_case).collect();
    let python = std::env::var("TALR_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .args(["-c", ORACLE])
        .arg(pkg.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the MedCalc-Bench oracle");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed");
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), inputs.len());
    let mut mismatches = Vec::new();
    for (inp, want) in inputs.iter().zip(&theirs) {
        let ours = inp.compute().answer;
        let same = match (&ours, want) {
            (Value::Number(a), w) => w
                .as_f64()
                .is_some_and(|b| (a - b).abs() <= 1e-9 * b.abs().max(1.0)),
            (Value::Date(a), w) => w.as_str() == Some(a.as_str()),
            (Value::WeeksDays(w0, d0), w) => *w == serde_json::json!([w0, d0]),
        };
        if !same {
            mismatches.push(format!("{inp:?}: ours {ours:?}, medcalc-bench {want}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} disagree:\n{}",
        mismatches.len(),
        inputs.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
}
