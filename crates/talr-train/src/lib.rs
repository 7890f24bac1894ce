//! talr-train: fine-tunes a talr-model decoder with a method from talr-methods.
//!
//! [`config`] reads the YAML spec, [`data`] the chat-example JSONL, [`optim`] holds AdamW, the
//! schedules and clipping, [`trainer`] the loop, [`resume`] checkpoints for exact resume, and
//! [`pipeline`] the whole flow the front ends share.

pub mod config;
pub mod data;
pub mod optim;
pub mod pipeline;
pub mod resume;
pub mod trainer;

pub use config::TrainConfig;
pub use pipeline::{run, Exports, FineTuned};
pub use trainer::{
    batch_gradients, export_finetuned, export_merged, prepare, read_metrics, train, trainability,
    BatchGradients, RunOptions, StepInputs, StepMetrics, TrainOutcome,
};
