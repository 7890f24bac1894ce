//! Additive attention masks: causal with padding (every layer), and the banded sliding-window
//! restriction of Gemma3's local layers.

use candle_core::{Device, Tensor};

/// Large-negative bias that stays finite so a row with no visible key (a left-pad query) yields a
/// harmless uniform distribution instead of NaN.
pub const MASKED: f32 = -1e9;

/// Additive attention bias (batch, 1, 1, seq, keys) for `seq` new queries after `past` cached keys.
/// `key_valid[b][j]` says whether key j (over all past + seq keys) is a real token of row b. A
/// query at absolute index past + i sees valid keys j <= past + i.
pub fn attention_bias(
    key_valid: &[Vec<bool>],
    past: usize,
    seq: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let b = key_valid.len();
    let keys = past + seq;
    let mut data = vec![MASKED; b * seq * keys];
    for (row, valid) in key_valid.iter().enumerate() {
        for i in 0..seq {
            for j in 0..=(past + i) {
                if valid[j] {
                    data[(row * seq + i) * keys + j] = 0.0;
                }
            }
        }
    }
    Tensor::from_vec(data, (b, 1, 1, seq, keys), device)
}

/// `mask` (batch, 1, 1, seq, keys) further restricted to a band: the query at key index
/// past + i sees keys j with past + i − j < `window`.
pub(crate) fn sliding_mask(mask: &Tensor, window: usize) -> candle_core::Result<Tensor> {
    let (seq, keys) = (mask.dim(3)?, mask.dim(4)?);
    let past = keys - seq;
    let band: Vec<f32> = (0..seq)
        .flat_map(|i| (0..keys).map(move |j| if past + i >= j + window { MASKED } else { 0.0 }))
        .collect();
    let band =
        Tensor::from_vec(band, (1, 1, 1, seq, keys), mask.device())?.to_dtype(mask.dtype())?;
    mask.broadcast_minimum(&band)
}
