//! The decoder's shape and family switches.
//!
//! One config covers the Llama family and leaves room for the families the paper uses: Qwen2 adds
//! biases on q/k/v (`attention_bias`), Qwen3 adds per-head RMS norms on q and k (`qk_norm`), Gemma3
//! scales embeddings, stores norm weights as w − 1 (`norm_weight_offset` = 1) and uses GELU-tanh.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub activation: Activation,
    /// Bias on the q, k and v projections (Qwen2).
    pub attention_bias: bool,
    /// Per-head RMS norm on queries and keys before rope (Qwen3, Gemma3).
    pub qk_norm: bool,
    /// Added to every RMSNorm weight at use (Gemma stores w − 1).
    pub norm_weight_offset: f64,
    /// Multiplies the token embeddings (Gemma: sqrt(hidden_size)).
    pub embedding_scale: Option<f64>,
    /// Gemma3's layer structure, when this is a Gemma3 config.
    #[serde(default)]
    pub gemma: Option<GemmaLayers>,
}

/// What Gemma3 adds to the Llama block: norms after attention and after the MLP (besides the
/// norms before them), queries scaled by `query_pre_attn_scalar`^-1/2, and interleaved
/// sliding-window layers with their own rope base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmaLayers {
    pub query_pre_attn_scalar: f64,
    /// A sliding layer's query sees itself and the `sliding_window - 1` keys before it (as in
    /// Hugging Face's Gemma3).
    pub sliding_window: usize,
    /// Layer i is global when (i + 1) is a multiple of this; the others slide.
    pub sliding_window_pattern: usize,
    /// Rope base of the sliding layers (`rope_theta` is the global layers').
    pub rope_local_theta: f64,
    /// Linear rope scaling of the global layers (`rope_scaling: {rope_type: linear}`).
    pub rope_linear_factor: Option<f64>,
}

impl GemmaLayers {
    pub fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window_pattern > 0 && !(layer + 1).is_multiple_of(self.sliding_window_pattern)
    }
}

impl DecoderConfig {
    pub fn validate(&self) -> Result<()> {
        if self.num_heads == 0 || self.num_kv_heads == 0 {
            bail!("config: num_heads and num_kv_heads must be positive");
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!(
                "config: num_heads ({}) must be a multiple of num_kv_heads ({})",
                self.num_heads,
                self.num_kv_heads
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!("config: head_dim ({}) must be even for rope", self.head_dim);
        }
        Ok(())
    }

    /// A tiny random-initialisable Llama config for tests and the smoke preset.
    pub fn tiny_llama(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 512,
            tie_word_embeddings: false,
            activation: Activation::Silu,
            attention_bias: false,
            qk_norm: false,
            norm_weight_offset: 0.0,
            embedding_scale: None,
            gemma: None,
        }
    }

    /// A tiny Gemma3-style config: sandwich norms, (1 + w) norm weights, scaled embeddings,
    /// GELU-tanh, q/k norms, and layers alternating sliding (window 4) and global.
    pub fn tiny_gemma3(vocab_size: usize) -> Self {
        Self {
            num_layers: 4,
            // One KV head, as Gemma3-1B has (and as candle's reference needs to cache
            // non-flash attention).
            num_kv_heads: 1,
            head_dim: 16,
            activation: Activation::GeluTanh,
            qk_norm: true,
            norm_weight_offset: 1.0,
            embedding_scale: Some((32f64).sqrt()),
            tie_word_embeddings: true,
            rope_theta: 1_000_000.0,
            rms_norm_eps: 1e-6,
            gemma: Some(GemmaLayers {
                query_pre_attn_scalar: 16.0,
                sliding_window: 4,
                sliding_window_pattern: 2,
                rope_local_theta: 10_000.0,
                rope_linear_factor: None,
            }),
            ..Self::tiny_llama(vocab_size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smollm2_style_config_and_names_unsupported_fields() {
        let json = r#"{"model_type":"llama","vocab_size":49152,"hidden_size":576,
            "intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
            "num_key_value_heads":3,"rope_theta":100000.0,"rms_norm_eps":1e-5,
            "max_position_embeddings":8192,"tie_word_embeddings":true,"hidden_act":"silu"}"#;
        let cfg = DecoderConfig::from_hf_json(json).unwrap();
        assert_eq!(cfg.head_dim, 64);
        assert_eq!(cfg.num_kv_heads, 3);
        assert!(cfg.tie_word_embeddings);

        let bad = json.replace("\"silu\"", "\"relu\"");
        let err = DecoderConfig::from_hf_json(&bad).unwrap_err().to_string();
        assert!(err.contains("hidden_act") && err.contains("relu"), "{err}");

        for family in ["qwen2", "qwen3"] {
            let q = json.replace("\"llama\"", &format!("\"{family}\""));
            let cfg = DecoderConfig::from_hf_json(&q).unwrap();
            assert_eq!(cfg.model_type().unwrap(), family);
            let back = DecoderConfig::from_hf_json(&cfg.to_hf_json().unwrap()).unwrap();
            assert_eq!(
                (back.attention_bias, back.qk_norm),
                (cfg.attention_bias, cfg.qk_norm)
            );
        }
        let sliding = json.replace("\"llama\"", "\"qwen2\",\"use_sliding_window\":true");
        let err = DecoderConfig::from_hf_json(&sliding)
            .unwrap_err()
            .to_string();
        assert!(err.contains("use_sliding_window"), "{err}");

        let bad = json.replace("\"llama\"", "\"falcon\"");
        let err = DecoderConfig::from_hf_json(&bad).unwrap_err().to_string();
        assert!(
            err.contains("model_type") && err.contains("falcon"),
            "{err}"
        );
    }
}
