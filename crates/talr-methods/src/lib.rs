//! talr-methods: how a fine-tuning method turns per-token losses into a training loss.
//!
//! Every weighting here sees the per-token negative log-likelihoods ℓ_i of one batch's response
//! tokens (prompt and padding already excluded, e.g. by `talr_model::logprobs::response_nll`) and
//! returns detached weights w_i; the loss is Σ w_i·ℓ_i. Because the weights are computed from
//! detached values, no gradient flows through them, by construction.
//!
//! Also here: FLOW's per-sample weights, the L2-to-init regulariser, WiSE-FT merging and the LoRA layer.

pub mod lora;
pub mod parameters;
pub mod sample_weighting;
pub mod token_weighting;

pub use lora::Lora;
pub use parameters::{l2_to_init, wise_ft, wise_ft_sweep};
pub use sample_weighting::flow_weights;
pub use token_weighting::{TokenWeighting, WeightDiagnostics, WeightedLoss};
