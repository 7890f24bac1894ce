//! LoRA: a frozen base weight W (out, in) plus a trainable low-rank update scale·B·A, with
//! A (rank, in) random and B (out, rank) zero at initialisation, so training starts at the base model.

use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor, Var};

pub struct Lora {
    pub a: Var,
    pub b: Var,
    /// alpha / rank.
    pub scale: f64,
}

impl Lora {
    /// A ~ U(−1/√in, 1/√in) from `seed` (Kaiming-uniform as in PEFT), B = 0.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        rank: usize,
        alpha: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        ensure!(rank > 0, "LoRA: rank must be positive");
        let bound = 1.0 / (in_dim as f64).sqrt();
        // SplitMix64: a seeded stream that needs no RNG crate and is identical on every platform.
        let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let a: Vec<f32> = (0..rank * in_dim)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect();
        Ok(Self {
            a: Var::from_tensor(&Tensor::from_vec(a, (rank, in_dim), device)?)?,
            b: Var::zeros((out_dim, rank), DType::F32, device)?,
            scale: alpha / rank as f64,
        })
    }

    /// The update to add to x·Wᵀ for inputs x (rows, in): scale · x·Aᵀ·Bᵀ.
    pub fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.a.as_tensor().t()?)?
            .matmul(&self.b.as_tensor().t()?)?
            * self.scale
    }

    /// W + scale·B·A, detached: a plain weight for inference or export.
    pub fn merge(&self, base: &Tensor) -> Result<Tensor> {
        Ok((base + (self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?)?.detach())
    }

    /// The inverse of [`Lora::merge`].
    pub fn unmerge(&self, merged: &Tensor) -> Result<Tensor> {
        Ok((merged - (self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?)?.detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn starts_at_the_base_model_and_merged_equals_unmerged() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 5), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 5), &dev).unwrap();
        let lora = Lora::new(5, 6, 2, 4.0, 7, &dev).unwrap();
        assert_eq!(lora.scale, 2.0);
        assert_eq!(
            max_diff(
                &lora.delta(&x).unwrap(),
                &Tensor::zeros((3, 6), DType::F32, &dev).unwrap()
            ),
            0.0
        );
        let a = lora
            .a
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(a.iter().any(|&v| v != 0.0) && a.iter().all(|v| v.abs() <= 1.0 / 5f32.sqrt()));
        assert_eq!(
            a,
            Lora::new(5, 6, 2, 4.0, 7, &dev)
                .unwrap()
                .a
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );

        // Pretend training moved B.
        lora.b
            .set(&Tensor::randn(0f32, 1.0, (6, 2), &dev).unwrap())
            .unwrap();
        let unmerged = (x.matmul(&w.t().unwrap()).unwrap() + lora.delta(&x).unwrap()).unwrap();
        let merged_w = lora.merge(&w).unwrap();
        let merged = x.matmul(&merged_w.t().unwrap()).unwrap();
        assert!(max_diff(&unmerged, &merged) < 1e-5);
        assert!(max_diff(&lora.unmerge(&merged_w).unwrap(), &w) < 1e-5);
    }

    #[test]
    fn only_a_and_b_receive_gradients() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (4, 3), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3), &dev).unwrap();
        let lora = Lora::new(3, 4, 2, 2.0, 1, &dev).unwrap();
        lora.b
            .set(&Tensor::ones((4, 2), DType::F32, &dev).unwrap())
            .unwrap();
        let y = (x.matmul(&w.t().unwrap()).unwrap() + lora.delta(&x).unwrap()).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(lora.a.as_tensor()).is_some());
        assert!(grads.get(lora.b.as_tensor()).is_some());
    }
}
