//! talr-model: a trainable decoder-only LLM on candle.
//!
//! - [`decoder`]: the config-driven decoder, differentiable end to end: Llama/SmolLM2, Qwen2
//!   (q/k/v biases), Qwen3 (per-head q/k norms) and Gemma3 (sandwich norms, (1 + w) norm weights,
//!   scaled embeddings, GELU-tanh, interleaved sliding-window layers with their own rope base,
//!   `query_pre_attn_scalar`), each checked against candle-transformers in `tests/`;
//! - [`weights`]: GGUF / safetensors / hub loading under Hugging Face names;
//! - [`tokenizer`]: tokenizer and chat template;
//! - [`generate`]: batched cached generation; [`logprobs`]: response log-probabilities;
//! - [`model`]: resolving a user's `--model` into all of the above; [`device`]: its `--device`.
//!
//! # Memory plan for the paper preset (3–4B models on one GPU)
//!
//! Parameters: Qwen2.5-3B-Instruct 3.1 B, Qwen3-4B 4.0 B, Gemma3-4B 3.9 B (its 262k-token
//! embedding alone is 0.67 B). Full fine-tuning keeps, per parameter, an f32 weight (4 B), an f32
//! gradient (4 B) and AdamW's two f32 moments (8 B, as `talr-train` stores them): 16 bytes, i.e.
//! about 50 GB for Qwen2.5-3B and 64 GB for the 4B models. Keeping the weights in bf16 with an f32
//! master copy costs the same 16 bytes (2 + 4 + 8 + 2) and only pays off with bf16 kernels, so the
//! plan is f32 weights and f32 optimiser state, with every weight trainable for the full-FT
//! methods (SFT, L2, FLOW, DFT, TALR, WiSE-FT's fine-tuned end point). L2-to-init adds a frozen copy
//! of θ0 (4 B/param: +12–16 GB), which still fits a 139 GB H200 but not an 80 GB card for the 4B
//! models; there, keep θ0 in bf16. LoRA (rank 64 on all linear layers) freezes the base: 4 B/param
//! for an f32 base (12–16 GB) plus ~1–2% of the parameters in adapters with their gradients and
//! moments.
//!
//! Activations, with every block checkpointed (`Decoder::set_checkpointing`): each block keeps
//! only its input, tokens × hidden × 4 B (8 × 2048 tokens × 2560 × 4 B = 168 MB per layer; 36
//! layers: 6 GB for Qwen2.5-3B), plus one block's recomputation at a time (~2–4 GB at that batch).
//! The output projection + NLL is fused and chunked on the CPU; on other devices the composite path
//! materialises tokens × vocab f32 logits (16k tokens × 262k vocab = 17 GB for Gemma3), so keep
//! micro-batches to about 8k tokens there. Total for full fine-tuning of a 4B model at micro-batch
//! 8 × 1024: about 64 + 6 + 8 ≈ 80 GB.
//!
//! That plan assumes checkpointing, which today is a CPU custom op: on CUDA
//! ([`device::DeviceSpec`]) every block keeps its activations, roughly 10 MB per token for
//! Qwen2.5-3B (36 layers × ~280 kB of f32 intermediates per token at 1k context; an estimate, not
//! measured), so there a micro-batch of ~4k tokens (`micro_batch_size` × row length) is what fits
//! next to the 50–64 GB of weights and optimiser state on a 139 GB card.

pub mod chat;
pub mod config;
pub mod decoder;
pub mod device;
pub mod family;
pub mod generate;
pub mod layout;
pub mod logprobs;
pub mod mask;
pub mod model;
pub mod ops;
pub mod precision;
pub mod recompute;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatExample, ChatMessage};
pub use config::{Activation, DecoderConfig};
pub use decoder::{Decoder, Linear, LinearAdapter};
pub use device::{device_name, DeviceSpec};
pub use model::{LoadedModel, ModelSource, Trainability};
pub use precision::{set_precision, set_precision_on, Precision};
pub use tokenizer::TextTokenizer;
