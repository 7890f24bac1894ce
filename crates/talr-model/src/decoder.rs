//! The decoder: one config-driven implementation, built only from differentiable ops, that serves
//! training (weights as `Var`s), frozen evaluation, and cached generation.

use crate::config::{Activation, DecoderConfig};
use crate::layout::{slots, Proj, Slot};
use crate::mask::sliding_mask;
pub use crate::mask::{attention_bias, MASKED};
use crate::ops;
use crate::weights::WeightMap;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::kv_cache::KvCache;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;

/// Up to this many input rows, linear layers multiply in the weight-major orientation.
const SMALL_BATCH_ROWS: usize = 64;

/// Something added to a linear layer's output, e.g. a LoRA update `x·Aᵀ·Bᵀ·scale`.
pub trait LinearAdapter: Send + Sync {
    fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor>;
    /// The adapter as a dense update of the (out, in) weight, for merging into a checkpoint.
    fn merged_weight(&self, base: &Tensor) -> candle_core::Result<Tensor>;
}

/// y = x·Wᵀ (+ b) (+ adapter(x)). W is (out, in) as in Hugging Face checkpoints.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub adapter: Option<Arc<dyn LinearAdapter>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            adapter: None,
        }
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().expect("linear input has a last dim");
        let flat = x.reshape(((), in_dim))?;
        let mut y = if flat.dim(0)? <= SMALL_BATCH_ROWS {
            // Few rows (decoding): W·xᵀ lets gemm stream the weight without repacking it, 1.3–5×
            // faster than x·Wᵀ at 32 rows on SmolLM2's shapes.
            ops::matmul(&self.weight, &flat.t()?)?.t()?
        } else {
            ops::matmul(&flat, &self.weight.t()?)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(adapter) = &self.adapter {
            y = (y + adapter.delta(&flat)?)?;
        }
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

pub(crate) struct Block {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    /// The norm before the MLP (Llama's `post_attention_layernorm`, Gemma3's
    /// `pre_feedforward_layernorm`).
    post_attention_norm: Tensor,
    /// Gemma3: norms of the attention output and of the MLP output, before the residual adds.
    attn_out_norm: Option<Tensor>,
    mlp_out_norm: Option<Tensor>,
    /// Gemma3: a sliding-window layer (its own rope base and a banded mask).
    sliding: bool,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Block {
    fn linear(&self, p: Proj) -> &Linear {
        match p {
            Proj::Q => &self.q,
            Proj::K => &self.k,
            Proj::V => &self.v,
            Proj::O => &self.o,
            Proj::Gate => &self.gate,
            Proj::Up => &self.up,
            Proj::Down => &self.down,
        }
    }

    fn linears_mut(&mut self) -> [(Proj, &mut Linear); 7] {
        let Block {
            q,
            k,
            v,
            o,
            gate,
            up,
            down,
            ..
        } = self;
        [
            (Proj::Q, q),
            (Proj::K, k),
            (Proj::V, v),
            (Proj::O, o),
            (Proj::Gate, gate),
            (Proj::Up, up),
            (Proj::Down, down),
        ]
    }
}

pub struct Decoder {
    pub config: DecoderConfig,
    embed: Tensor,
    blocks: Vec<Arc<Block>>,
    /// Blocks [0, n) are recomputed in the backward pass instead of keeping their activations.
    checkpointed_blocks: usize,
    /// Parameter gradients produced inside checkpointed blocks (see [`crate::recompute`]).
    pub(crate) grad_sink: crate::recompute::GradSink,
    norm: Tensor,
    lm_head: Option<Tensor>,
    inv_freq: Tensor,
    /// Rope frequencies of Gemma3's sliding layers.
    local_inv_freq: Option<Tensor>,
    device: Device,
}

/// Names of every parameter a config needs, in Hugging Face naming.
pub fn parameter_names(cfg: &DecoderConfig) -> Vec<String> {
    slots(cfg).into_iter().map(Slot::name).collect()
}

/// Seeded random weights (normal with standard deviation `std`; norms near 1) for tests and the
/// smoke preset.
pub fn random_weights(
    cfg: &DecoderConfig,
    seed: u64,
    std: f32,
    dtype: DType,
    device: &Device,
) -> Result<WeightMap> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weights = WeightMap::new();
    for slot in slots(cfg) {
        let shape = slot.shape(cfg);
        let n: usize = shape.iter().product();
        let is_norm = slot.is_norm();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                if is_norm {
                    1.0 - cfg.norm_weight_offset as f32 + 0.1 * (rng.random::<f32>() - 0.5)
                } else {
                    // Box–Muller
                    let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
                    std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                }
            })
            .collect();
        weights.insert(
            slot.name(),
            Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?,
        );
    }
    Ok(weights)
}

/// Replaces every tensor by a `Var` over the same values; returns the vars in name order.
pub fn make_trainable(weights: &WeightMap) -> Result<(WeightMap, Vec<(String, Var)>)> {
    let mut tensors = WeightMap::new();
    let mut vars = Vec::with_capacity(weights.len());
    for (name, t) in weights {
        let var = Var::from_tensor(t)?;
        tensors.insert(name.clone(), var.as_tensor().clone());
        vars.push((name.clone(), var));
    }
    Ok((tensors, vars))
}

impl Decoder {
    pub fn new(config: DecoderConfig, weights: &WeightMap) -> Result<Self> {
        config.validate()?;
        let get = |slot: Slot| -> Result<Tensor> {
            let name = slot.name();
            // Multimodal Gemma3 checkpoints keep the language model under `language_model.`.
            let t = weights
                .get(&name)
                .or_else(|| weights.get(&format!("language_model.{name}")))
                .with_context(|| format!("weights have no tensor `{name}`"))?;
            let want = slot.shape(&config);
            anyhow::ensure!(
                t.dims() == want.as_slice(),
                "tensor `{name}` has shape {:?}, the config needs {want:?}",
                t.dims()
            );
            Ok(t.clone())
        };
        let linear = |i: usize, p: Proj| -> Result<Linear> {
            let bias = p
                .has_bias(&config)
                .then(|| get(Slot::Bias(i, p)))
                .transpose()?;
            Ok(Linear::new(get(Slot::Weight(i, p))?, bias))
        };
        let gemma = config.gemma.is_some();
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            blocks.push(Arc::new(Block {
                input_norm: get(Slot::InputNorm(i))?,
                q: linear(i, Proj::Q)?,
                k: linear(i, Proj::K)?,
                v: linear(i, Proj::V)?,
                o: linear(i, Proj::O)?,
                q_norm: config.qk_norm.then(|| get(Slot::QNorm(i))).transpose()?,
                k_norm: config.qk_norm.then(|| get(Slot::KNorm(i))).transpose()?,
                post_attention_norm: if gemma {
                    get(Slot::PreFeedforwardNorm(i))?
                } else {
                    get(Slot::PostAttentionNorm(i))?
                },
                attn_out_norm: gemma.then(|| get(Slot::PostAttentionNorm(i))).transpose()?,
                mlp_out_norm: gemma
                    .then(|| get(Slot::PostFeedforwardNorm(i)))
                    .transpose()?,
                sliding: config.gemma.as_ref().is_some_and(|g| g.is_sliding(i)),
                gate: linear(i, Proj::Gate)?,
                up: linear(i, Proj::Up)?,
                down: linear(i, Proj::Down)?,
            }));
        }
        let embed = get(Slot::Embed)?;
        let device = embed.device().clone();
        let half = config.head_dim / 2;
        let frequencies = |theta: f64, scale: f64| -> Vec<f32> {
            (0..half)
                .map(|i| {
                    (1.0 / (theta.powf(2.0 * i as f64 / config.head_dim as f64) * scale)) as f32
                })
                .collect()
        };
        let global_scale = config
            .gemma
            .as_ref()
            .and_then(|g| g.rope_linear_factor)
            .unwrap_or(1.0);
        let inv_freq = frequencies(config.rope_theta, global_scale);
        let local_inv_freq = config
            .gemma
            .as_ref()
            .map(|g| Tensor::from_vec(frequencies(g.rope_local_theta, 1.0), half, &device))
            .transpose()?;
        Ok(Self {
            lm_head: if config.tie_word_embeddings {
                None
            } else {
                Some(get(Slot::LmHead)?)
            },
            norm: get(Slot::FinalNorm)?,
            inv_freq: Tensor::from_vec(inv_freq, half, &device)?,
            local_inv_freq,
            embed,
            blocks,
            checkpointed_blocks: 0,
            grad_sink: Default::default(),
            config,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The (vocab, hidden) matrix that maps hidden states to logits (the embeddings when tied).
    pub fn output_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Every weight under its Hugging Face name, with adapters merged into their linear layers
    /// (`merge(weight, adapter)` returns the effective weight). Detached copies: a checkpoint.
    pub fn named_weights(
        &self,
        merge: impl Fn(&Tensor, &dyn LinearAdapter) -> Result<Tensor>,
    ) -> Result<WeightMap> {
        let mut out = WeightMap::new();
        for slot in slots(&self.config) {
            let tensor = match slot {
                Slot::Weight(i, p) => {
                    let lin = self.blocks[i].linear(p);
                    match &lin.adapter {
                        Some(a) => merge(&lin.weight, a.as_ref())?,
                        None => lin.weight.clone(),
                    }
                }
                slot => self.tensor(slot)?.clone(),
            };
            out.insert(slot.name(), tensor.detach().copy()?);
        }
        Ok(out)
    }

    /// The tensor in `slot` (a linear layer's weight without its adapter).
    fn tensor(&self, slot: Slot) -> Result<&Tensor> {
        let missing = || anyhow::anyhow!("this decoder has no tensor `{}`", slot.name());
        let block = |i: usize| self.blocks.get(i).ok_or_else(missing);
        Ok(match slot {
            Slot::Embed => &self.embed,
            Slot::FinalNorm => &self.norm,
            Slot::LmHead => self.lm_head.as_ref().ok_or_else(missing)?,
            Slot::InputNorm(i) => &block(i)?.input_norm,
            Slot::Weight(i, p) => &block(i)?.linear(p).weight,
            Slot::Bias(i, p) => block(i)?.linear(p).bias.as_ref().ok_or_else(missing)?,
            Slot::QNorm(i) => block(i)?.q_norm.as_ref().ok_or_else(missing)?,
            Slot::KNorm(i) => block(i)?.k_norm.as_ref().ok_or_else(missing)?,
            // Gemma3 normalises the attention output under this name; Llama the MLP input.
            Slot::PostAttentionNorm(i) => {
                let b = block(i)?;
                b.attn_out_norm.as_ref().unwrap_or(&b.post_attention_norm)
            }
            Slot::PreFeedforwardNorm(i) => &block(i)?.post_attention_norm,
            Slot::PostFeedforwardNorm(i) => block(i)?.mlp_out_norm.as_ref().ok_or_else(missing)?,
        })
    }

    /// Every linear layer by its Hugging Face name prefix, for placing adapters.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let b =
                Arc::get_mut(b).expect("no forward pass holds the blocks while adapters change");
            out.extend(
                b.linears_mut()
                    .into_iter()
                    .map(|(p, lin)| (p.prefix(i), lin)),
            );
        }
        out
    }

    pub fn new_cache(&self, max_len: usize) -> Vec<KvCache> {
        (0..self.config.num_layers)
            .map(|_| KvCache::new(2, max_len))
            .collect()
    }

    /// cos/sin tables of shape (batch, seq, head_dim/2) for per-row positions (u32, (batch, seq)).
    fn rope_tables(
        &self,
        positions: &Tensor,
        inv_freq: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&inv_freq.reshape((1, 1, ()))?)?;
        let dtype = self.embed.dtype();
        Ok((
            angles.cos()?.to_dtype(dtype)?,
            angles.sin()?.to_dtype(dtype)?,
        ))
    }

    /// Hidden states after the final norm, (batch, seq, hidden).
    ///
    /// `positions` (u32, (batch, seq)) are each token's position in its own sequence;
    /// `mask` is an additive attention bias of shape (batch, 1, 1, seq, keys) where keys counts the
    /// cached tokens plus `seq` (see [`attention_bias`]). With `cache`, keys and values are appended
    /// to it and attention covers everything cached so far.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut [KvCache]>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.config;
        let mut x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, cfg.hidden_size))?;
        if let Some(scale) = cfg.embedding_scale {
            x = (x * scale)?;
        }
        let (cos, sin) = self.rope_tables(positions, &self.inv_freq)?;
        let mask = mask.to_dtype(x.dtype())?;
        let local = match (&self.local_inv_freq, &cfg.gemma) {
            (Some(freq), Some(g)) => {
                let (cos, sin) = self.rope_tables(positions, freq)?;
                let mask = sliding_mask(&mask, g.sliding_window)?;
                Some(RopeAndMask { cos, sin, mask })
            }
            _ => None,
        };
        let inputs = BlockInputs {
            global: RopeAndMask { cos, sin, mask },
            local,
        };
        for (i, block) in self.blocks.iter().enumerate() {
            x = match cache.as_deref_mut() {
                Some(c) => block_forward(cfg, block, &x, &inputs, Some(&mut c[i]))?,
                None if i < self.checkpointed_blocks => {
                    crate::recompute::checkpointed_block(cfg, block, &x, &inputs, &self.grad_sink)?
                }
                None => block_forward(cfg, block, &x, &inputs, None)?,
            };
        }
        norm(cfg, &x, &self.norm)
    }

    /// Trade compute for memory in training: keep only each block's input and recompute the
    /// block during the backward pass (about one extra forward per step). Parameter gradients of
    /// checkpointed blocks reach the caller through [`crate::LoadedModel::backward`].
    pub fn set_checkpointing(&mut self, on: bool) {
        self.set_checkpointed_blocks(if on { self.config.num_layers } else { 0 });
    }

    /// Checkpoints only the first `n` blocks: each block left out keeps its activations
    /// (~100 MB for SmolLM2 at 8 × 256) and skips its recomputation.
    pub fn set_checkpointed_blocks(&mut self, n: usize) {
        self.checkpointed_blocks = n.min(self.config.num_layers);
    }
}

/// Rope tables and the additive attention mask one kind of layer uses.
#[derive(Clone)]
pub(crate) struct RopeAndMask {
    pub cos: Tensor,
    pub sin: Tensor,
    pub mask: Tensor,
}

/// What every block of one forward pass shares: the global layers' rope and mask, and Gemma3's
/// sliding layers' own.
#[derive(Clone)]
pub(crate) struct BlockInputs {
    pub global: RopeAndMask,
    pub local: Option<RopeAndMask>,
}

impl BlockInputs {
    pub fn detach(&self) -> Self {
        let d = |r: &RopeAndMask| RopeAndMask {
            cos: r.cos.detach(),
            sin: r.sin.detach(),
            mask: r.mask.detach(),
        };
        Self {
            global: d(&self.global),
            local: self.local.as_ref().map(d),
        }
    }
}

fn norm(cfg: &DecoderConfig, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    ops::rms_norm(x, w, cfg.rms_norm_eps, cfg.norm_weight_offset)
}

pub(crate) fn block_forward(
    cfg: &DecoderConfig,
    blk: &Block,
    x: &Tensor,
    inputs: &BlockInputs,
    cache: Option<&mut KvCache>,
) -> candle_core::Result<Tensor> {
    let layer = match (&inputs.local, blk.sliding) {
        (Some(local), true) => local,
        _ => &inputs.global,
    };
    let RopeAndMask { cos, sin, mask } = layer;
    {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);

        let hn = norm(cfg, x, &blk.input_norm)?;
        let q = blk.q.forward(&hn)?.reshape((b, t, h, hd))?;
        let k = blk.k.forward(&hn)?.reshape((b, t, kvh, hd))?;
        let v = blk.v.forward(&hn)?.reshape((b, t, kvh, hd))?;
        let (q, k) = match (&blk.q_norm, &blk.k_norm) {
            (Some(qn), Some(kn)) => (norm(cfg, &q, qn)?, norm(cfg, &k, kn)?),
            _ => (q, k),
        };
        let q = ops::rope(&q.transpose(1, 2)?.contiguous()?, cos, sin)?;
        let k = ops::rope(&k.transpose(1, 2)?.contiguous()?, cos, sin)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (k, v) = match cache {
            // A view of the preallocated cache: rows of each head are contiguous, which is all
            // the attention matmuls need, so the cache is never copied.
            Some(c) => c.append(&k, &v)?,
            None => (k, v),
        };
        let scale = match &cfg.gemma {
            Some(g) => 1.0 / g.query_pre_attn_scalar.sqrt(),
            None => 1.0 / (hd as f64).sqrt(),
        };
        let attn = ops::attention(&q, &k, &v, mask, scale)?
            .transpose(1, 2)?
            .reshape((b, t, h * hd))?;
        let mut attn_out = blk.o.forward(&attn)?;
        if let Some(w) = &blk.attn_out_norm {
            attn_out = norm(cfg, &attn_out, w)?;
        }
        let x = (x + attn_out)?;

        let hn = norm(cfg, &x, &blk.post_attention_norm)?;
        let gate = blk.gate.forward(&hn)?;
        let up = blk.up.forward(&hn)?;
        let hidden = match cfg.activation {
            Activation::Silu => ops::silu_mul(&gate, &up)?,
            Activation::GeluTanh => (gate.gelu()? * up)?,
        };
        let mut mlp = blk.down.forward(&hidden)?;
        if let Some(w) = &blk.mlp_out_norm {
            mlp = norm(cfg, &mlp, w)?;
        }
        x + mlp
    }
}

impl Decoder {
    /// Logits for every position of `hidden` (…, hidden) → (…, vocab).
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let dims = hidden.dims().to_vec();
        let d = *dims.last().unwrap();
        let flat = hidden.reshape(((), d))?;
        let out = if flat.dim(0)? <= SMALL_BATCH_ROWS {
            ops::matmul(self.output_weight(), &flat.t()?)?
                .t()?
                .contiguous()?
        } else {
            ops::matmul(&flat, &self.output_weight().t()?)?
        };
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = self.config.vocab_size;
        out.reshape(out_dims)
    }

    /// Full forward over right-padded or unpadded rows: positions 0..t, causal mask.
    pub fn forward_causal(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, &self.device)?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let valid = vec![vec![true; t]; b];
        let mask = attention_bias(&valid, 0, t, &self.device)?;
        self.forward_hidden(ids, &positions, &mask, None)
    }
}
