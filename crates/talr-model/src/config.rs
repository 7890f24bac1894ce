//! The decoder's shape and family switches.
//!
//! One config covers the Llama family and leaves room for the families the paper uses: Qwen2 adds
//! biases on q/k/v (`attention_bias`), Qwen3 adds per-head RMS norms on q and k (`qk_norm`), Gemma3
//! scales embeddings, stores norm weights as w − 1 (`norm_weight_offset` = 1) and uses GELU-tanh.

use anyhow::{bail, Context, Result};
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
        }
    }

    /// The Hugging Face family this config is: `llama`, `qwen2` (q/k/v biases) or `qwen3`
    /// (q/k norms).
    pub fn model_type(&self) -> Result<&'static str> {
        if self.norm_weight_offset != 0.0 || self.embedding_scale.is_some() {
            bail!("Gemma-style configs cannot be written as config.json yet");
        }
        Ok(match (self.qk_norm, self.attention_bias) {
            (true, _) => "qwen3",
            (false, true) => "qwen2",
            (false, false) => "llama",
        })
    }

    /// A Hugging Face `config.json` for this config, so that exported checkpoints load anywhere.
    pub fn to_hf_json(&self) -> Result<String> {
        let model_type = self.model_type()?;
        let architecture = match model_type {
            "qwen3" => "Qwen3ForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            _ => "LlamaForCausalLM",
        };
        Ok(serde_json::to_string_pretty(&serde_json::json!({
            "architectures": [architecture],
            "model_type": model_type,
            "attention_bias": self.attention_bias,
            "use_sliding_window": false,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        }))?)
    }

    /// Parses a Hugging Face `config.json` of the Llama family.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let raw: HfLlamaConfig = serde_json::from_str(text).context("parsing config.json")?;
        // Qwen2 always has q/k/v biases (its config has no switch for them); Qwen3 normalises
        // q and k per head and has biases only if `attention_bias` says so.
        let (attention_bias, qk_norm) = match raw.model_type.as_deref() {
            Some("llama") | Some("mistral") | None => (raw.attention_bias.unwrap_or(false), false),
            Some("qwen2") => (true, false),
            Some("qwen3") => (raw.attention_bias.unwrap_or(false), true),
            Some(other) => bail!(
                "config.json: model_type {other:?} is not supported yet (supported: \"llama\", \
                 \"qwen2\", \"qwen3\")"
            ),
        };
        if raw.use_sliding_window == Some(true) {
            bail!("config.json: use_sliding_window = true is not supported (set it to false)");
        }
        if let Some(act) = raw.hidden_act.as_deref() {
            if act != "silu" {
                bail!("config.json: hidden_act {act:?} is not supported for llama (expected \"silu\")");
            }
        }
        if raw.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            bail!("config.json: rope_scaling is not supported yet (remove it or use a model without it)");
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let cfg = Self {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads),
            rope_theta: raw.rope_theta.unwrap_or(10_000.0),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            activation: Activation::Silu,
            attention_bias,
            qk_norm,
            norm_weight_offset: 0.0,
            embedding_scale: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Deserialize)]
struct HfLlamaConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    hidden_act: Option<String>,
    attention_bias: Option<bool>,
    rope_scaling: Option<serde_json::Value>,
    use_sliding_window: Option<bool>,
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
