//! `--precision`: whether the CPU's large matrix products multiply in bf16 (operands rounded to
//! bf16, sums kept in f32, as PyTorch's autocast does) or in f32.
//!
//! Weights, gradients, optimiser moments, norms, softmax, rope and the loss stay f32 either way:
//! only the products in [`crate::ops::matmul`] change, and only those with at least
//! [`BF16_MIN_DIM`] rows and columns (training, prefill, attention). Smaller ones (decoding a
//! few rows) stay f32: each product rounds its whole weight matrix, which at 32 rows made bf16
//! no faster than f32 (`benches/gemm.rs`: 144-146 against 147-151 GFLOP/s on SmolLM2's shapes). bf16 products run on oneDNN ([`crate::ops::onednn`]) where the CPU multiplies bf16
//! in hardware (AMX or AVX512-BF16). On CUDA every product is f32 today.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Products with fewer rows or columns than this stay f32 under bf16 (see the module docs).
pub const BF16_MIN_DIM: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the CPU multiplies bf16 in hardware and oneDNN is installed, else f32.
    Auto,
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            _ => bail!("{s:?} is not a precision; use f32, bf16 or auto"),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

static BF16: AtomicBool = AtomicBool::new(false);

/// Sets this process's CPU products to `wanted` and returns what runs: `Auto` resolves to bf16
/// or f32. Asking for bf16 without oneDNN, or on a CPU without bf16 instructions (where oneDNN
/// would emulate them, slower than f32), is an error that says which.
pub fn set_precision(wanted: Precision) -> Result<Precision> {
    let chosen = match wanted {
        Precision::F32 => Precision::F32,
        Precision::Auto => match crate::ops::onednn::get() {
            Ok(dnnl) if dnnl.native() => Precision::Bf16,
            _ => Precision::F32,
        },
        Precision::Bf16 => match crate::ops::onednn::get() {
            Ok(dnnl) if dnnl.native() => Precision::Bf16,
            Ok(dnnl) => bail!(
                "bf16: this CPU has neither AMX nor AVX512-BF16 ({} emulates bf16, slower than \
                 f32); use f32",
                dnnl.config()
            ),
            Err(why) => bail!("bf16 needs oneDNN: {why}"),
        },
    };
    BF16.store(chosen == Precision::Bf16, Ordering::Relaxed);
    Ok(chosen)
}

/// [`set_precision`] for a model on `device`: products off the CPU are f32 today, so bf16 there
/// is an error and `Auto` is f32.
pub fn set_precision_on(device: &candle_core::Device, wanted: Precision) -> Result<Precision> {
    if device.is_cpu() {
        return set_precision(wanted);
    }
    if wanted == Precision::Bf16 {
        bail!("bf16 runs on the CPU only for now; use f32 on {device:?}");
    }
    set_precision(Precision::F32)
}

/// Whether large CPU products run in bf16 now.
pub fn bf16_active() -> bool {
    BF16.load(Ordering::Relaxed)
}

/// What result files record about bf16: "bf16 products on oneDNN …", or `None` under f32.
pub fn bf16_kernel() -> Option<String> {
    bf16_active()
        .then(|| crate::ops::onednn::get().ok())
        .flatten()
        .map(|d| format!("bf16 products on {}", d.config()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_flags_parse_and_a_typo_names_the_choices() {
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!(" f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!("auto".parse::<Precision>().unwrap(), Precision::Auto);
        let err = "bf61".parse::<Precision>().unwrap_err().to_string();
        assert!(
            err.contains("\"bf61\"") && err.contains("f32, bf16 or auto"),
            "{err}"
        );
        let json: Precision = serde_json::from_str("\"bf16\"").unwrap();
        assert_eq!(json, Precision::Bf16);
    }
}
