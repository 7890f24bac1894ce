//! The output projection fused with the token negative log-likelihood.

use super::matmul;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, D};

// ---------------------------------------------------------------------------------------------
// Output projection fused with the token negative log-likelihood.
//
// nll_i = logsumexp(h_i·Wᵀ) − (h_i·Wᵀ)[target_i]. The (tokens × vocab) logits never exist whole:
// the forward builds them `chunk` tokens at a time and keeps only each token's logsumexp; the
// backward rebuilds them a block of vocabulary rows at a time, so each block's share of dW is
// computed once and nothing vocabulary-sized is accumulated. That trades one extra
// output-projection matmul for not keeping ~0.4 GB of logits (plus their softmax and gradient)
// per 2k tokens at a 49k vocabulary. Any loss Σ c_i·nll_i with detached c_i reaches the backward
// as grad_res = c.

/// Vocabulary rows per block in the backward pass.
const VOCAB_BLOCK: usize = 4096;

/// Per-token NLL of `targets` (u32, (n,)) given hidden states `h` (n, d) and output weights
/// `w` (vocab, d). Differentiable with respect to `h` and `w`.
pub fn linear_nll(h: &Tensor, w: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    if h.device().is_cpu() {
        let op = LinearNllOp {
            h: h.detach(),
            w: w.detach(),
            targets: targets.detach(),
            chunk: chunk.max(1),
            lse: std::sync::Mutex::new(None),
        };
        h.apply_op3(w, targets, op)
    } else {
        // The chunked kernel reads results back to host memory; other devices take the
        // whole-logits path until a device kernel exists.
        linear_nll_composite(h, w, targets)
    }
}

/// Reference implementation: whole logits, log-softmax, gather.
pub fn linear_nll_composite(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = h.matmul(&w.t()?)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

struct LinearNllOp {
    h: Tensor,
    w: Tensor,
    targets: Tensor,
    chunk: usize,
    /// logsumexp of every token's logits, saved by the forward for the backward.
    lse: std::sync::Mutex<Option<Tensor>>,
}

impl LinearNllOp {
    fn forward_values(&self) -> Result<Tensor> {
        let n = self.h.dim(0)?;
        let wt = self.w.t()?;
        let mut nll = Vec::with_capacity(n.div_ceil(self.chunk));
        let mut lse = Vec::with_capacity(n.div_ceil(self.chunk));
        for start in (0..n).step_by(self.chunk) {
            let len = self.chunk.min(n - start);
            let logits = matmul(&self.h.narrow(0, start, len)?, &wt)?;
            let t = self.targets.narrow(0, start, len)?;
            let picked = logits.gather(&t.unsqueeze(1)?, 1)?.squeeze(1)?;
            let chunk_lse = logsumexp_rows(&logits)?;
            nll.push(chunk_lse.sub(&picked)?);
            lse.push(chunk_lse);
        }
        *self.lse.lock().expect("lse lock") = Some(Tensor::cat(&lse, 0)?);
        Tensor::cat(&nll, 0)
    }
}

fn logsumexp_rows(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let sum = logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?;
    (sum.log()? + max)?.squeeze(D::Minus1)
}

impl CustomOp3 for LinearNllOp {
    fn name(&self) -> &'static str {
        "talr-linear-nll"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let values = self.forward_values()?;
        let shape = values.shape().clone();
        let storage = match values.dtype() {
            DType::F64 => CpuStorage::F64(values.to_vec1::<f64>()?),
            _ => CpuStorage::F32(values.to_dtype(DType::F32)?.to_vec1::<f32>()?),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        _h: &Tensor,
        _w: &Tensor,
        _t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // d nll_i / d logits_i = softmax(logits_i) − onehot(target_i), scaled by c_i = grad_i.
        let (h, w) = (&self.h, &self.w);
        let lse = match self.lse.lock().expect("lse lock").clone() {
            Some(lse) => lse,
            None => bail!("linear_nll: backward before forward"),
        };
        let c = grad.unsqueeze(1)?;
        let vocab = w.dim(0)?;
        let mut dh = h.zeros_like()?;
        let mut dw_blocks = Vec::with_capacity(vocab.div_ceil(VOCAB_BLOCK));
        for v0 in (0..vocab).step_by(VOCAB_BLOCK) {
            let len = VOCAB_BLOCK.min(vocab - v0);
            let wb = w.narrow(0, v0, len)?;
            let probs = matmul(h, &wb.t()?)?
                .broadcast_sub(&lse.unsqueeze(1)?)?
                .exp()?;
            let g = probs.broadcast_mul(&c)?;
            dh = (dh + matmul(&g, &wb)?)?;
            dw_blocks.push(matmul(&g.t()?, h)?);
        }
        // The one-hot part: −c_i at (i, target_i).
        let dh = dh.sub(&w.index_select(&self.targets, 0)?.broadcast_mul(&c)?)?;
        let dw = Tensor::cat(&dw_blocks, 0)?;
        drop(dw_blocks);
        let dw = dw.index_add(&self.targets, &h.broadcast_mul(&c)?.neg()?, 0)?;
        Ok((Some(dh), Some(dw), None))
    }
}
