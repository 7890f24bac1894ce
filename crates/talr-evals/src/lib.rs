//! talr-evals: benchmarks, each in one module holding its data source, prompt, answer extraction
//! and scoring, plus the shared response-file format.

pub mod catalog;
pub mod esci;
pub mod esci_fixture;
pub mod gsm8k;
pub mod humaneval;
pub mod ifeval;
pub mod medcalc;
mod parquet;
pub mod registry;
pub mod responses;
pub mod runner;
pub mod sandbox;
pub mod suite;
pub mod task;

pub use registry::{build_task, Domain};
pub use task::Style;
