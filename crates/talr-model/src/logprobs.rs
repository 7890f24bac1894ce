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

/// Longest share of a forward pass's positions that may be padding: MedCalc's notes vary from a
/// few hundred tokens to the 1,024-token cap, so one right-padded batch of 8 spent about a third
/// of its positions (and of a training step) on padding.
const MAX_PADDING_SHARE: f64 = 0.1;

/// Groups row indices, shortest first, into forward passes that each pad at most
/// [`MAX_PADDING_SHARE`] of their positions; rows of one length always share a pass.
fn length_groups(widths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..widths.len()).collect();
    order.sort_by_key(|&i| widths[i]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut real = 0usize;
    for i in order {
        if let Some(group) = groups.last_mut() {
            let positions = (group.len() + 1) * widths[i];
            let padding = positions - (real + widths[i]);
            if padding as f64 <= MAX_PADDING_SHARE * positions as f64 {
                group.push(i);
                real += widths[i];
                continue;
            }
        }
        groups.push(vec![i]);
        real = widths[i];
    }
    groups
}

/// Computes −log p(response | prompt) per response token for every (prompt, response) pair.
/// Rows of similar length share a right-padded forward pass ([`length_groups`]); a row's result
/// does not depend on which rows share its pass.
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
    let widths: Vec<usize> = pairs.iter().map(|(p, r)| p.len() + r.len() - 1).collect();
    let mut offsets = vec![0usize];
    for (_, r) in pairs {
        offsets.push(offsets.last().unwrap() + r.len());
    }
    let d = decoder.config.hidden_size;
    let mut picked = Vec::new();
    // Where each picked row lands in row order: hidden states come out group by group.
    let mut placement = vec![0u32; *offsets.last().unwrap()];
    let mut next = 0u32;
    for group in length_groups(&widths) {
        let width = group.iter().map(|&i| widths[i]).max().unwrap();
        let mut ids = Vec::with_capacity(group.len() * width);
        let mut gather = Vec::new();
        for (slot, &row) in group.iter().enumerate() {
            let (p, r) = &pairs[row];
            ids.extend(p.iter().chain(&r[..r.len() - 1]).copied());
            ids.extend(std::iter::repeat_n(pad_id, width - widths[row]));
            // Hidden state at position j predicts token j + 1.
            for k in 0..r.len() {
                gather.push((slot * width + p.len() - 1 + k) as u32);
                placement[offsets[row] + k] = next;
                next += 1;
            }
        }
        let ids = Tensor::from_vec(ids, (group.len(), width), device)?;
        // Right padding sits after every real token, so a causal mask alone keeps it invisible.
        let hidden = decoder.forward_causal(&ids)?;
        picked.push(
            hidden
                .reshape((group.len() * width, d))?
                .index_select(&Tensor::new(gather, device)?, 0)?,
        );
    }
    let picked = Tensor::cat(&picked, 0)?;
    let picked = if placement.windows(2).all(|w| w[0] < w[1]) {
        picked
    } else {
        picked.index_select(&Tensor::new(placement, device)?, 0)?
    };
    let targets: Vec<u32> = pairs.iter().flat_map(|(_, r)| r.iter().copied()).collect();
    let targets = Tensor::new(targets, device)?;
    let nll = crate::ops::linear_nll(&picked, decoder.output_weight(), &targets, logit_chunk)?;
    Ok(ResponseNll { nll, offsets })
}

#[cfg(test)]
mod tests {
    use super::length_groups;

    #[test]
    fn groups_cover_every_row_once_and_pad_at_most_a_tenth() {
        let widths = [900, 120, 1024, 130, 1000, 125, 300, 980, 128];
        let groups = length_groups(&widths);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..widths.len()).collect::<Vec<_>>());
        for g in &groups {
            let max = g.iter().map(|&i| widths[i]).max().unwrap();
            let padding: usize = g.iter().map(|&i| max - widths[i]).sum();
            assert!(
                padding * 10 <= max * g.len(),
                "{g:?} pads {padding} of {}",
                max * g.len()
            );
        }
        // The short rows share one pass, the long ones another, and 300 goes alone.
        assert_eq!(groups, vec![vec![1, 5, 8, 3], vec![6], vec![0, 7, 4, 2]]);
    }

    #[test]
    fn rows_of_one_length_share_one_pass_in_their_order() {
        assert_eq!(length_groups(&[256; 8]), vec![(0..8).collect::<Vec<_>>()]);
    }
}
