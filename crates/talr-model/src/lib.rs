//! talr-model: a trainable decoder-only LLM on candle.
//!
//! - [`decoder`]: the config-driven decoder (Llama family now), differentiable end to end;
//! - [`weights`]: GGUF / safetensors / hub loading under Hugging Face names;
//! - [`tokenizer`]: tokenizer and chat template;
//! - [`generate`]: batched cached generation; [`logprobs`]: response log-probabilities;
//! - [`model`]: resolving a user's `--model` into all of the above.

pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod logprobs;
pub mod model;
pub mod ops;
pub mod tokenizer;
pub mod weights;

pub use config::{Activation, DecoderConfig};
pub use decoder::{Decoder, Linear, LinearAdapter};
pub use model::{LoadedModel, ModelSource, Trainability};
pub use tokenizer::{ChatMessage, TextTokenizer};
