//! Differentiable building blocks of the decoder.
//!
//! candle's fused `rms_norm`, `softmax_last_dim` and `rope` kernels have no backward pass and
//! silently drop gradients (DESIGN.md §4). Each op here has a fast CPU kernel with a backward pass
//! and a composite fallback built only from differentiable primitives; the fallback runs on other
//! devices and is the reference the kernels are tested against.

use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};

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

/// Two contiguous f32 inputs of one shape, as an elementwise op over both needs them.
fn same_shape_f32<'a>(
    what: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    if l1.dims() != l2.dims() {
        bail!("{what}: shapes {:?} and {:?} differ", l1.dims(), l2.dims());
    }
    Ok((contiguous_f32(s1, l1, what)?, contiguous_f32(s2, l2, what)?))
}

mod attention;
mod attention_softmax;
pub mod blas;
mod elementwise;
mod linear_nll;
pub mod onednn;
#[cfg(test)]
mod tests;

pub use attention::{attention, attention_composite};
pub use blas::matmul;
pub use elementwise::{
    rms_norm, rms_norm_composite, rope, rope_composite, silu_mul, softmax_last_dim,
};
pub use linear_nll::{linear_nll, linear_nll_composite};

/// Largest absolute elementwise difference of two same-shaped tensors, in f32: how every
/// kernel-versus-reference and run-versus-run comparison in talr is measured.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()
}
