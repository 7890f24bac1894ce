//! Row-wise and element-wise kernels: RMSNorm, softmax, rope, SwiGLU.

use super::{contiguous_f32, same_shape_f32, use_cpu_kernel};
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

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
        let (g, u) = same_shape_f32("silu_mul", (s1, l1), (s2, l2))?;
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
