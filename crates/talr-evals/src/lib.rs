//! talr-evals: benchmarks, each in one module holding its data source, prompt, answer extraction
//! and scoring, plus the shared response-file format.

pub mod catalog;
pub mod esci;
pub mod gsm8k;
pub mod humaneval;
pub mod ifeval;
pub mod medcalc;
pub mod responses;
pub mod runner;
pub mod sandbox;
pub mod task;
