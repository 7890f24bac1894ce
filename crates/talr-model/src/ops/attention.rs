//! Grouped-query attention as one differentiable op.

use super::attention_softmax::{masked_softmax, masked_softmax_backward};
use super::{matmul, use_cpu_kernel};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

// ---------------------------------------------------------------------------------------------
// Attention core: softmax(q·kᵀ·scale + mask)·v with grouped-query heads.
//
// As one op it keeps only q, k, v and the output for the backward pass, which recomputes the
// probabilities; unfused, autograd would keep four (batch × heads × seq × keys) tensors per layer
// (2.3 GB for SmolLM2 at 8 × 256).

/// q: (b, heads, t, d); k, v: (b, kv_heads, s, d); mask: additive, (b, 1, 1, t, s).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if use_cpu_kernel(&[q, k, v, mask]) {
        let q = q.contiguous()?;
        let op = AttentionOp {
            q: q.detach(),
            k: k.detach(),
            v: v.detach(),
            mask: mask.detach(),
            scale,
        };
        q.apply_op3(k, v, op)
    } else {
        attention_composite(q, k, v, mask, scale)
    }
}

/// Reference implementation from differentiable primitives.
pub fn attention_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (kvh, s) = (k.dim(1)?, k.dim(2)?);
    let n_rep = h / kvh;
    // The n_rep query heads that share a kv head are consecutive, so they fold into the query
    // axis of one batched matmul and keys are never copied.
    let q = q.contiguous()?.reshape((b, kvh, n_rep * t, d))?;
    let scores = (q.matmul(&k.t()?)? * scale)?
        .reshape((b, kvh, n_rep, t, s))?
        .broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?.reshape((b, kvh, n_rep * t, s))?;
    probs.matmul(v)?.reshape((b, h, t, d))
}

pub(super) struct AttentionOp {
    pub(super) q: Tensor,
    pub(super) k: Tensor,
    pub(super) v: Tensor,
    pub(super) mask: Tensor,
    pub(super) scale: f64,
}

/// The most attention probabilities (f32 values) a pass holds at once. Prefilling 16 prompts of
/// 3,000 tokens at once would hold 5.2 GB a layer (scores, then as many probabilities); rows
/// beyond this go in turns.
const PROBS_BUDGET: usize = 32 << 20;

impl AttentionOp {
    /// Probabilities (b, kv_heads, n_rep · t, s) and the grouped query view.
    fn probs(&self) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = self.q.dims4()?;
        let kvh = self.k.dim(1)?;
        let q = self.q.reshape((b, kvh, h / kvh * t, d))?;
        let scores = matmul(&q, &self.k.t()?)?;
        Ok((masked_softmax(&scores, &self.mask, self.scale)?, q))
    }

    /// The op split into turns of `rows_per_turn` batch rows: (first row, rows, the turn's op).
    fn turns(&self, rows_per_turn: usize) -> Result<Vec<(usize, usize, Self)>> {
        let b = self.q.dim(0)?;
        let shared_mask = self.mask.dim(0)? == 1;
        (0..b)
            .step_by(rows_per_turn.max(1))
            .map(|start| {
                let len = rows_per_turn.min(b - start);
                let mask = if shared_mask {
                    self.mask.clone()
                } else {
                    self.mask.narrow(0, start, len)?
                };
                let turn = Self {
                    q: self.q.narrow(0, start, len)?,
                    k: self.k.narrow(0, start, len)?,
                    v: self.v.narrow(0, start, len)?,
                    mask,
                    scale: self.scale,
                };
                Ok((start, len, turn))
            })
            .collect()
    }

    /// The output, `rows_per_turn` batch rows at a time. Each (row, kv head) product is its own
    /// sgemm call and the softmax works row by row, so every turn size gives the same bits.
    pub(super) fn forward(&self, rows_per_turn: usize) -> Result<Vec<f32>> {
        let mut values = Vec::with_capacity(self.q.elem_count());
        for (_, _, turn) in self.turns(rows_per_turn)? {
            let (probs, _) = turn.probs()?;
            values.extend(matmul(&probs, &turn.v)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(values)
    }

    /// Gradients of q, k and v for the output's gradient `grad`, `rows_per_turn` batch rows at a
    /// time: a row's gradients depend on that row alone, so every turn size gives the same bits.
    pub(super) fn backward(
        &self,
        grad: &Tensor,
        rows_per_turn: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let grad = grad.contiguous()?;
        let (mut dqs, mut dks, mut dvs) = (Vec::new(), Vec::new(), Vec::new());
        for (start, len, turn) in self.turns(rows_per_turn)? {
            let (probs, q) = turn.probs()?;
            let g = grad.narrow(0, start, len)?.reshape(q.shape())?;
            dvs.push(matmul(&probs.t()?, &g)?);
            let dp = matmul(&g, &turn.v.t()?)?;
            let ds = masked_softmax_backward(&dp, &probs, self.scale)?;
            dqs.push(matmul(&ds, &turn.k)?.reshape(turn.q.shape())?);
            dks.push(matmul(&ds.t()?, &q)?);
        }
        Ok((
            Tensor::cat(&dqs, 0)?,
            Tensor::cat(&dks, 0)?,
            Tensor::cat(&dvs, 0)?,
        ))
    }

    /// Batch rows per turn that keep the probabilities within [`PROBS_BUDGET`] (the
    /// backward pass holds three such tensors: probabilities and their two gradients).
    pub(super) fn rows_per_turn(&self) -> Result<usize> {
        let (_, h, t, _) = self.q.dims4()?;
        let per_row = h * t * self.k.dim(2)?;
        Ok((PROBS_BUDGET / per_row.max(1)).max(1))
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "talr-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        l1: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let values = self.forward(self.rows_per_turn()?)?;
        Ok((CpuStorage::F32(values), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _q: &Tensor,
        _k: &Tensor,
        _v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = self.backward(grad, self.rows_per_turn()?)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
