//! Log-probabilities of given response tokens after a prompt, for a batch of (prompt, response)
//! pairs: the building block of every training loss and of the code-length metric.
//!
//! Only response positions reach the output projection, and the projection is fused with the
//! negative log-likelihood ([`crate::ops::linear_nll`]), so the (tokens × vocab) logits never
//! exist whole.

use crate::decoder::Decoder;
use anyhow::{ensure, Result};
use candle_core::Tensor;

/// Default number of tokens whose logits are materialised at once (~100 MB at a 49k vocabulary).
pub const DEFAULT_LOGIT_CHUNK: usize = 512;

/// Per-token negative log-likelihoods of the response tokens of a batch, flattened in row order.
pub struct ResponseNll {
    /// (n,) with n the total number of response tokens; differentiable w.r.t. the decoder weights.
    pub nll: Tensor,
    /// `offsets[i]..offsets[i + 1]` are row i's tokens in `nll`.
    pub offsets: Vec<usize>,
}

impl ResponseNll {
    pub fn num_rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row index of every token (u32, (n,)), for per-sample reductions.
    pub fn row_ids(&self, device: &candle_core::Device) -> Result<Tensor> {
        let ids: Vec<u32> = (0..self.num_rows())
            .flat_map(|r| std::iter::repeat_n(r as u32, self.offsets[r + 1] - self.offsets[r]))
            .collect();
        Ok(Tensor::new(ids, device)?)
    }

    /// Mean NLL of each row (nats per token), detached, as plain numbers.
    pub fn row_means(&self) -> Result<Vec<f64>> {
        let v = self.nll.detach().to_vec1::<f32>()?;
        Ok((0..self.num_rows())
            .map(|r| {
                let s = &v[self.offsets[r]..self.offsets[r + 1]];
                s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64
            })
            .collect())
    }
}

/// Computes −log p(response | prompt) per response token for every (prompt, response) pair in one
/// right-padded forward pass.
pub fn response_nll(
    decoder: &Decoder,
    pairs: &[(Vec<u32>, Vec<u32>)],
    pad_id: u32,
    logit_chunk: usize,
) -> Result<ResponseNll> {
    ensure!(!pairs.is_empty(), "response_nll: empty batch");
    for (i, (p, r)) in pairs.iter().enumerate() {
        ensure!(!p.is_empty(), "response_nll: pair {i} has an empty prompt");
        ensure!(
            !r.is_empty(),
            "response_nll: pair {i} has an empty response"
        );
    }
    let device = decoder.device();
    // The last response token is only a target, never an input.
    let width = pairs
        .iter()
        .map(|(p, r)| p.len() + r.len() - 1)
        .max()
        .unwrap();
    let b = pairs.len();
    let mut ids = Vec::with_capacity(b * width);
    let mut gather = Vec::new();
    let mut targets = Vec::new();
    let mut offsets = vec![0usize];
    for (row, (p, r)) in pairs.iter().enumerate() {
        let seq: Vec<u32> = p.iter().chain(&r[..r.len() - 1]).copied().collect();
        let len = seq.len();
        ids.extend(seq);
        ids.extend(std::iter::repeat_n(pad_id, width - len));
        // Hidden state at position j predicts token j + 1.
        for (k, &tok) in r.iter().enumerate() {
            gather.push((row * width + p.len() - 1 + k) as u32);
            targets.push(tok);
        }
        offsets.push(targets.len());
    }
    let ids = Tensor::from_vec(ids, (b, width), device)?;
    // Right padding sits after every real token, so a causal mask alone keeps it invisible.
    let hidden = decoder.forward_causal(&ids)?;
    let d = decoder.config.hidden_size;
    let picked = hidden
        .reshape((b * width, d))?
        .index_select(&Tensor::new(gather, device)?, 0)?;
    let targets = Tensor::new(targets, device)?;
    let nll = crate::ops::linear_nll(&picked, decoder.output_weight(), &targets, logit_chunk)?;
    Ok(ResponseNll { nll, offsets })
}
