//! talr-train: fine-tunes a talr-model decoder with a method from talr-methods.
//!
//! [`config`] reads the YAML spec, [`data`] the chat-example JSONL, [`optim`] holds AdamW, the
//! schedules and clipping, [`trainer`] the loop, and [`checkpoint`] exact resume.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod optim;
pub mod trainer;

pub use config::TrainConfig;
pub use trainer::{export_merged, prepare, train, trainability, RunOptions, StepMetrics};
