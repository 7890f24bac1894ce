//! Differentiable building blocks of the decoder.
//!
//! candle's fused `rms_norm`, `softmax_last_dim` and `rope` kernels have no backward pass and
//! silently drop gradients (DESIGN.md §4). Each op here has a fast CPU kernel with a backward pass
//! and a composite fallback built only from differentiable primitives; the fallback runs on other
//! devices and is the reference the kernels are tested against.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

fn use_cpu_kernel(xs: &[&Tensor]) -> bool {
    xs.iter()
        .all(|x| x.device().is_cpu() && x.dtype() == DType::F32)
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d.as_slice(),
        _ => bail!("{what}: expected f32 storage"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{what}: input must be contiguous"),
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x / sqrt(mean(x²) + eps) · (w + offset). Gemma stores w - 1, so offset = 1 there.

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, offset: f64) -> Result<Tensor> {
    if use_cpu_kernel(&[x, weight]) {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNormOp { eps, offset })
    } else {
        rms_norm_composite(x, weight, eps, offset)
    }
}

pub fn rms_norm_composite(x: &Tensor, weight: &Tensor, eps: f64, offset: f64) -> Result<Tensor> {
    let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv_rms)?
        .broadcast_mul(&(weight + offset)?)
}

struct RmsNormOp {
    eps: f64,
    offset: f64,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "talr-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "rms_norm x")?;
        let w = contiguous_f32(s2, l2, "rms_norm weight")?;
        let dim = w.len();
        if l1.dims().last() != Some(&dim) {
            bail!("rms_norm: last dim {:?} != weight len {dim}", l1.dims());
        }
        let (eps, offset) = (self.eps as f32, self.offset as f32);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(dim)
            .zip(x.par_chunks(dim))
            .for_each(|(o, row)| {
                let ms = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
                let inv = 1.0 / (ms + eps).sqrt();
                for ((o, &v), &w) in o.iter_mut().zip(row).zip(w) {
                    *o = v * inv * (w + offset);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // With r = 1/rms(x), u = g·(w + offset): dx = r·u − x·r³·mean(u·x), dw = Σ_rows g·x·r.
        let dim = x.dim(D::Minus1)?;
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?
            .sqrt()?
            .recip()?;
        let x_hat = x.broadcast_mul(&r)?;
        let u = grad.broadcast_mul(&(w + self.offset)?)?;
        let proj = (u.mul(&x_hat)?.sum_keepdim(D::Minus1)? / dim as f64)?;
        let dx = u.sub(&x_hat.broadcast_mul(&proj)?)?.broadcast_mul(&r)?;
        let dw = grad.mul(&x_hat)?.reshape(((), dim))?.sum(0)?;
        Ok((Some(dx), Some(dw)))
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension.

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if use_cpu_kernel(&[x]) {
        x.contiguous()?.apply_op1(SoftmaxOp)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "talr-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "softmax")?;
        let dim = *l.dims().last().unwrap_or(&1);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(dim)
            .zip(x.par_chunks(dim))
            .for_each(|(o, row)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (o, &v) in o.iter_mut().zip(row) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|o| *o *= inv);
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // dx = y · (g − Σ g·y)
        let dot = grad.mul(y)?.sum_keepdim(D::Minus1)?;
        Ok(Some(grad.broadcast_sub(&dot)?.mul(y)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding, Hugging Face layout (rotate_half: pairs are (i, i + d/2)).
// x: (batch, heads, seq, head_dim); cos, sin: (batch, seq, head_dim / 2), per-row positions so that
// left-padded batches rotate each sequence from its own first token.

pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if use_cpu_kernel(&[x, cos, sin]) {
        x.contiguous()?
            .apply_op3(&cos.contiguous()?, &sin.contiguous()?, RopeOp)
    } else {
        rope_composite(x, cos, sin)
    }
}

pub fn rope_composite(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

struct RopeOp;

fn rope_kernel(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    dims: (usize, usize, usize, usize),
) -> Vec<f32> {
    let (_b, h, t, d) = dims;
    let half = d / 2;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(t * d)
        .zip(x.par_chunks(t * d))
        .enumerate()
        .for_each(|(bh, (o, xs))| {
            let b = bh / h;
            for pos in 0..t {
                let cs = &cos[(b * t + pos) * half..(b * t + pos + 1) * half];
                let sn = &sin[(b * t + pos) * half..(b * t + pos + 1) * half];
                let row = &xs[pos * d..(pos + 1) * d];
                let o = &mut o[pos * d..(pos + 1) * d];
                for i in 0..half {
                    let (x1, x2) = (row[i], row[i + half]);
                    o[i] = x1 * cs[i] - x2 * sn[i];
                    o[i + half] = x2 * cs[i] + x1 * sn[i];
                }
            }
        });
    out
}

impl CustomOp3 for RopeOp {
    fn name(&self) -> &'static str {
        "talr-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "rope x")?;
        let cos = contiguous_f32(s2, l2, "rope cos")?;
        let sin = contiguous_f32(s3, l3, "rope sin")?;
        let dims = l1.shape().dims4()?;
        let (b, _h, t, d) = dims;
        if l2.dims() != [b, t, d / 2] || l3.dims() != [b, t, d / 2] {
            bail!(
                "rope: cos/sin must be (batch, seq, head_dim/2) = ({b}, {t}, {}), got {:?} and {:?}",
                d / 2,
                l2.dims(),
                l3.dims()
            );
        }
        Ok((
            CpuStorage::F32(rope_kernel(x, cos, sin, dims)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The rotation's transpose is the rotation by the opposite angle.
        let dx = grad
            .contiguous()?
            .apply_op3_no_bwd(cos, &sin.neg()?, &RopeOp)?;
        Ok((Some(dx), None, None))
    }
}

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

struct AttentionOp {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    scale: f64,
}

impl AttentionOp {
    /// Probabilities (b, kv_heads, n_rep · t, s) and the grouped query view.
    fn probs(&self) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = self.q.dims4()?;
        let (kvh, s) = (self.k.dim(1)?, self.k.dim(2)?);
        let n_rep = h / kvh;
        let q = self.q.reshape((b, kvh, n_rep * t, d))?;
        let scores = (q.matmul(&self.k.t()?)? * self.scale)?
            .reshape((b, kvh, n_rep, t, s))?
            .broadcast_add(&self.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.reshape((b, kvh, n_rep * t, s))?;
        Ok((probs, q))
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
        let (probs, _) = self.probs()?;
        let out = probs.matmul(&self.v)?;
        let values = out.flatten_all()?.to_vec1::<f32>()?;
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
        let (probs, q) = self.probs()?;
        let g = grad.contiguous()?.reshape(q.shape())?;
        let dv = probs.t()?.matmul(&g)?;
        let dp = g.matmul(&self.v.t()?)?;
        let dot = dp.mul(&probs)?.sum_keepdim(D::Minus1)?;
        let ds = (dp.broadcast_sub(&dot)?.mul(&probs)? * self.scale)?;
        let dq = ds.matmul(&self.k)?.reshape(self.q.shape())?;
        let dk = ds.t()?.matmul(&q)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(gate) · up, fused so that autograd keeps one tensor instead of two.

pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if use_cpu_kernel(&[gate, up]) {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMulOp)
    } else {
        gate.silu()? * up
    }
}

struct SiluMulOp;

impl CustomOp2 for SiluMulOp {
    fn name(&self) -> &'static str {
        "talr-silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s1, l1, "silu_mul gate")?;
        let u = contiguous_f32(s2, l2, "silu_mul up")?;
        if l1.dims() != l2.dims() {
            bail!(
                "silu_mul: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(4096)
            .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
            .for_each(|(o, (g, u))| {
                for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                    *o = g / (1.0 + (-g).exp()) * u;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
        let sig = (gate.neg()?.exp()? + 1.0)?.recip()?;
        let silu = gate.mul(&sig)?;
        let dsilu = sig.mul(&(gate.mul(&sig.affine(-1.0, 1.0)?)? + 1.0)?)?;
        let dgate = grad.mul(up)?.mul(&dsilu)?;
        let dup = grad.mul(&silu)?;
        Ok((Some(dgate), Some(dup)))
    }
}

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
            let logits = self.h.narrow(0, start, len)?.matmul(&wt)?;
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
            let probs = h
                .matmul(&wb.t()?)?
                .broadcast_sub(&lse.unsqueeze(1)?)?
                .exp()?;
            let g = probs.broadcast_mul(&c)?;
            dh = (dh + g.matmul(&wb)?)?;
            dw_blocks.push(g.t()?.matmul(h)?);
        }
        // The one-hot part: −c_i at (i, target_i).
        let dh = dh.sub(&w.index_select(&self.targets, 0)?.broadcast_mul(&c)?)?;
        let dw = Tensor::cat(&dw_blocks, 0)?;
        drop(dw_blocks);
        let dw = dw.index_add(&self.targets, &h.broadcast_mul(&c)?.neg()?, 0)?;
        Ok((Some(dh), Some(dw), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        // Deterministic pseudo-random values without a global RNG.
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Kernel and composite agree on values and on gradients of a random projection of the output.
    fn check(
        inputs: &[Tensor],
        kernel: impl Fn(&[Tensor]) -> Result<Tensor>,
        composite: impl Fn(&[Tensor]) -> Result<Tensor>,
        what: &str,
    ) {
        let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
            let vars: Vec<Var> = inputs
                .iter()
                .map(|t| Var::from_tensor(t).unwrap())
                .collect();
            let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let out = f(&ts).unwrap();
            let probe = randn(out.dims(), 5);
            let grads = (&out * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g: Vec<Option<Tensor>> = vars
                .iter()
                .map(|v| grads.get(v.as_tensor()).cloned())
                .collect();
            (out, g)
        };
        let (yk, gk) = run(&kernel);
        let (yc, gc) = run(&composite);
        assert!(
            max_diff(&yk, &yc) < 1e-5,
            "{what}: outputs differ by {}",
            max_diff(&yk, &yc)
        );
        for (i, (a, b)) in gk.iter().zip(&gc).enumerate() {
            match (a, b) {
                (Some(a), Some(b)) => {
                    let d = max_diff(a, b);
                    assert!(d < 1e-4, "{what}: gradient of input {i} differs by {d}");
                }
                (None, None) => {}
                _ => panic!("{what}: input {i} has a gradient on one path only"),
            }
        }
    }

    #[test]
    fn rms_norm_kernel_matches_composite_with_and_without_offset() {
        for offset in [0.0, 1.0] {
            check(
                &[randn(&[3, 5, 16], 1), randn(&[16], 2)],
                |t| rms_norm(&t[0], &t[1], 1e-6, offset),
                |t| rms_norm_composite(&t[0], &t[1], 1e-6, offset),
                "rms_norm",
            );
        }
    }

    #[test]
    fn softmax_rope_and_silu_mul_kernels_match_composites() {
        check(
            &[randn(&[4, 7, 9], 3)],
            |t| softmax_last_dim(&t[0]),
            |t| candle_nn::ops::softmax(&t[0], D::Minus1),
            "softmax",
        );
        // Angles are not trainable: only x gets a gradient.
        let (cos, sin) = (randn(&[2, 5, 4], 6), randn(&[2, 5, 4], 7));
        check(
            &[randn(&[2, 3, 5, 8], 4)],
            |t| rope(&t[0], &cos, &sin),
            |t| rope_composite(&t[0], &cos, &sin),
            "rope",
        );
        check(
            &[randn(&[6, 10], 8), randn(&[6, 10], 9)],
            |t| silu_mul(&t[0], &t[1]),
            |t| t[0].silu()? * &t[1],
            "silu_mul",
        );
    }

    #[test]
    fn attention_kernel_matches_composite_with_gqa_and_padding() {
        // 4 query heads over 2 kv heads, 3 new queries after 2 cached keys, row 1 left-padded.
        let valid = vec![vec![true; 5], vec![false, true, true, true, true]];
        let mask = crate::decoder::attention_bias(&valid, 2, 3, &Device::Cpu).unwrap();
        let inputs = [
            randn(&[2, 4, 3, 8], 10),
            randn(&[2, 2, 5, 8], 11),
            randn(&[2, 2, 5, 8], 12),
        ];
        check(
            &inputs,
            |t| attention(&t[0], &t[1], &t[2], &mask, 0.35),
            |t| attention_composite(&t[0], &t[1], &t[2], &mask, 0.35),
            "attention",
        );
    }

    #[test]
    fn chunked_linear_nll_matches_whole_logits_for_any_chunk() {
        let h = randn(&[7, 6], 13);
        let w = randn(&[11, 6], 14);
        let targets = Tensor::new(&[0u32, 10, 3, 3, 7, 1, 5], &Device::Cpu).unwrap();
        for chunk in [1, 3, 7, 100] {
            check(
                &[h.clone(), w.clone()],
                |t| linear_nll(&t[0], &t[1], &targets, chunk),
                |t| linear_nll_composite(&t[0], &t[1], &targets),
                "linear_nll",
            );
        }
    }
}
