//! The attention probabilities and their backward pass, one pass per row.
//!
//! Unfused, each is three or four elementwise tensor ops over (batch × heads × queries × keys)
//! values, each allocating its own output, and the backward's row sums run on one thread. Fused,
//! each value is read and written once per pass. Both kernels do the same floating-point
//! operations in the same order as the composite they replace (the tests check bit equality), so
//! fusing them changes no result.

use super::{contiguous_f32, same_shape_f32};
use candle_core::cpu::kernels::VecOps;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Below this, e^x rounds to 0 in f32 (e^-104 < 2^-150, half the smallest subnormal). Masked
/// scores (−1e9) land here, and glibc's expf takes a slow path setting errno for each of them:
/// with half of every causal row masked, that was 4% of a training step.
const EXP_UNDERFLOW: f32 = -104.0;

/// e^x, as candle's exp computes it, behind a call the optimiser may not speculate. `f32::exp`
/// is an intrinsic LLVM treats as free of side effects, so it vectorised the row loop by
/// calling expf on every lane and masking the result afterwards: the masked scores reached
/// expf's slow path anyway (3.5% of a running cell's samples, found with gdb on the cell).
#[inline(never)]
fn exp_unspeculated(x: f32) -> f32 {
    x.exp()
}

/// softmax(scores · scale + mask) over the last axis. scores: (b, kv_heads, rows, keys),
/// contiguous; mask: additive, (b or 1, 1, 1, queries, keys), where rows = n_rep · queries
/// (the query heads that share a kv head, each over every query).
pub(super) fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    scores.apply_op2_no_bwd(&mask.contiguous()?, &MaskedSoftmax { scale })
}

/// The composite `masked_softmax` replaces.
#[cfg(test)]
pub(super) fn masked_softmax_composite(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, kvh, rows, keys) = scores.dims4()?;
    let queries = mask.dim(3)?;
    let scores = (scores * scale)?
        .reshape((b, kvh, rows / queries, queries, keys))?
        .broadcast_add(mask)?;
    candle_nn::ops::softmax_last_dim(&scores)?.reshape((b, kvh, rows, keys))
}

struct MaskedSoftmax {
    scale: f64,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "talr-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let scores = contiguous_f32(s1, l1, "masked_softmax scores")?;
        let mask = contiguous_f32(s2, l2, "masked_softmax mask")?;
        let (sd, md) = (l1.dims(), l2.dims());
        if sd.len() != 4 || md.len() != 5 || md[1] != 1 || md[2] != 1 || md[4] != sd[3] {
            bail!("masked_softmax: scores {sd:?} and mask {md:?} do not fit");
        }
        let (rows_per_batch, keys, queries) = (sd[1] * sd[2], sd[3], md[3]);
        if queries == 0 || sd[2] % queries != 0 || (md[0] != sd[0] && md[0] != 1) {
            bail!("masked_softmax: scores {sd:?} and mask {md:?} do not fit");
        }
        let mask_row = |row: usize| {
            let query = row % queries;
            if md[0] == 1 {
                query
            } else {
                row / rows_per_batch * queries + query
            }
        };
        // As the composite: scores · scale is candle's affine (x · mul + 0).
        let (mul, add) = (self.scale as f32, 0f32);
        let mut out = vec![0f32; scores.len()];
        if keys == 0 {
            return Ok((CpuStorage::F32(out), l1.shape().clone()));
        }
        out.par_chunks_mut(keys)
            .zip(scores.par_chunks(keys))
            .enumerate()
            .for_each(|(row, (o, s))| {
                let m = &mask[mask_row(row) * keys..][..keys];
                for ((o, &s), &m) in o.iter_mut().zip(s).zip(m) {
                    *o = (s * mul + add) + m;
                }
                let mut max = f32::NEG_INFINITY;
                let mut sum = 0f32;
                // SAFETY: `o` holds `keys` values, and `keys` > 0 here.
                unsafe { f32::vec_reduce_max(o.as_ptr(), &mut max, keys) };
                for o in o.iter_mut() {
                    let x = *o - max;
                    *o = if x < EXP_UNDERFLOW {
                        0.0
                    } else {
                        exp_unspeculated(x)
                    };
                }
                // SAFETY: as above.
                unsafe { f32::vec_reduce_sum(o.as_ptr(), &mut sum, keys) };
                o.iter_mut().for_each(|o| *o /= sum);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The scores' gradient from the probabilities' gradient dp: (dp − Σ dp·p) · p · scale, summed
/// over each row of keys. dp and probs: the same contiguous shape.
pub(super) fn masked_softmax_backward(dp: &Tensor, probs: &Tensor, scale: f64) -> Result<Tensor> {
    dp.contiguous()?
        .apply_op2_no_bwd(&probs.contiguous()?, &MaskedSoftmaxBackward { scale })
}

/// The composite `masked_softmax_backward` replaces.
#[cfg(test)]
pub(super) fn masked_softmax_backward_composite(
    dp: &Tensor,
    probs: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let dot = dp.mul(probs)?.sum_keepdim(candle_core::D::Minus1)?;
    dp.broadcast_sub(&dot)?.mul(probs)? * scale
}

struct MaskedSoftmaxBackward {
    scale: f64,
}

impl CustomOp2 for MaskedSoftmaxBackward {
    fn name(&self) -> &'static str {
        "talr-masked-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dp, probs) = same_shape_f32("masked_softmax_backward", (s1, l1), (s2, l2))?;
        let keys = *l1.dims().last().unwrap_or(&1);
        let (mul, add) = (self.scale as f32, 0f32);
        let mut out = vec![0f32; dp.len()];
        if keys == 0 {
            return Ok((CpuStorage::F32(out), l1.shape().clone()));
        }
        out.par_chunks_mut(keys)
            .zip(dp.par_chunks(keys).zip(probs.par_chunks(keys)))
            .for_each(|(o, (dp, p))| {
                // The row's products first, summed as candle's sum_keepdim sums them.
                for ((o, &g), &p) in o.iter_mut().zip(dp).zip(p) {
                    *o = g * p;
                }
                let mut dot = 0f32;
                // SAFETY: `o` holds `keys` > 0 values.
                unsafe { f32::vec_reduce_sum(o.as_ptr(), &mut dot, keys) };
                for ((o, &g), &p) in o.iter_mut().zip(dp).zip(p) {
                    *o = ((g - dot) * p) * mul + add;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
