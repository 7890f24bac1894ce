//! The model families as Hugging Face writes them: `config.json` ↔ [`DecoderConfig`] for
//! Llama/SmolLM2, Qwen2, Qwen3 and Gemma3.

use crate::config::{Activation, DecoderConfig, GemmaLayers};
use anyhow::{bail, Context, Result};
use serde::Deserialize;

impl DecoderConfig {
    /// The Hugging Face family this config is: `llama`, `qwen2` (q/k/v biases) or `qwen3`
    /// (q/k norms).
    pub fn model_type(&self) -> Result<&'static str> {
        if self.gemma.is_some() {
            return Ok("gemma3_text");
        }
        if self.norm_weight_offset != 0.0 || self.embedding_scale.is_some() {
            bail!("a config with Gemma-style norms but no Gemma3 layers has no config.json form");
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
        // The shape every family shares; each family adds its own keys below.
        let mut json = serde_json::json!({
            "model_type": model_type,
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
            "torch_dtype": "float32",
        });
        let family = match &self.gemma {
            Some(g) => serde_json::json!({
                "architectures": ["Gemma3ForCausalLM"],
                "rope_local_base_freq": g.rope_local_theta,
                "rope_scaling": g.rope_linear_factor.map(|f| serde_json::json!({"rope_type": "linear", "factor": f})),
                "query_pre_attn_scalar": g.query_pre_attn_scalar,
                "sliding_window": g.sliding_window,
                "sliding_window_pattern": g.sliding_window_pattern,
                "hidden_activation": "gelu_pytorch_tanh",
                "final_logit_softcapping": null,
                "attn_logit_softcapping": null,
                "attention_bias": false,
            }),
            None => serde_json::json!({
                "architectures": [match model_type {
                    "qwen3" => "Qwen3ForCausalLM",
                    "qwen2" => "Qwen2ForCausalLM",
                    _ => "LlamaForCausalLM",
                }],
                "attention_bias": self.attention_bias,
                "use_sliding_window": false,
                "hidden_act": "silu",
            }),
        };
        if let (Some(all), serde_json::Value::Object(extra)) = (json.as_object_mut(), family) {
            all.extend(extra);
        }
        Ok(serde_json::to_string_pretty(&json)?)
    }

    /// Parses a Hugging Face `config.json` of the Llama family.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).context("parsing config.json")?;
        match value["model_type"].as_str() {
            Some("gemma3_text") => return gemma3_from_json(&value),
            // The multimodal Gemma3 checkpoints nest the language model's config.
            Some("gemma3") => return gemma3_from_json(&value["text_config"]),
            _ => {}
        }
        let raw: HfLlamaConfig = serde_json::from_value(value).context("parsing config.json")?;
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
            gemma: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Gemma3's text config, with the defaults Hugging Face's `Gemma3TextConfig` uses for keys a
/// checkpoint leaves out.
fn gemma3_from_json(v: &serde_json::Value) -> Result<DecoderConfig> {
    if !v.is_object() {
        bail!("config.json: a gemma3 config needs a `text_config` object");
    }
    let num = |key: &str, default: Option<f64>| -> Result<f64> {
        match (v.get(key).and_then(|x| x.as_f64()), default) {
            (Some(x), _) => Ok(x),
            (None, Some(d)) => Ok(d),
            (None, None) => bail!("config.json: missing `{key}`"),
        }
    };
    let int =
        |key: &str, default: Option<f64>| -> Result<usize> { Ok(num(key, default)? as usize) };
    let act = v
        .get("hidden_activation")
        .and_then(|a| a.as_str())
        .unwrap_or("gelu_pytorch_tanh");
    if act != "gelu_pytorch_tanh" && act != "gelu_tanh" {
        bail!("config.json: hidden_activation {act:?} is not supported for gemma3 (expected \"gelu_pytorch_tanh\")");
    }
    for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if v.get(key).is_some_and(|x| !x.is_null()) {
            bail!("config.json: {key} is not supported (Gemma3 checkpoints set it to null)");
        }
    }
    let rope_linear_factor = match v.get("rope_scaling") {
        None | Some(serde_json::Value::Null) => None,
        Some(r) if r["rope_type"].as_str().or(r["type"].as_str()) == Some("linear") => Some(
            r["factor"]
                .as_f64()
                .context("config.json: rope_scaling.factor must be a number")?,
        ),
        Some(r) => {
            bail!("config.json: rope_scaling {r} is not supported (only rope_type \"linear\")")
        }
    };
    let hidden_size = int("hidden_size", None)?;
    let num_heads = int("num_attention_heads", Some(8.0))?;
    let head_dim = int("head_dim", Some(256.0))?;
    let cfg = DecoderConfig {
        vocab_size: int("vocab_size", Some(262_208.0))?,
        hidden_size,
        intermediate_size: int("intermediate_size", None)?,
        num_layers: int("num_hidden_layers", None)?,
        num_heads,
        num_kv_heads: int("num_key_value_heads", Some(num_heads as f64))?,
        head_dim,
        rope_theta: num("rope_theta", Some(1_000_000.0))?,
        rms_norm_eps: num("rms_norm_eps", Some(1e-6))?,
        max_position_embeddings: int("max_position_embeddings", Some(131_072.0))?,
        tie_word_embeddings: v
            .get("tie_word_embeddings")
            .and_then(|t| t.as_bool())
            .unwrap_or(true),
        activation: Activation::GeluTanh,
        attention_bias: v
            .get("attention_bias")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
        qk_norm: true,
        norm_weight_offset: 1.0,
        embedding_scale: Some((hidden_size as f64).sqrt()),
        gemma: Some(GemmaLayers {
            query_pre_attn_scalar: num("query_pre_attn_scalar", Some(256.0))?,
            sliding_window: int("sliding_window", Some(4096.0))?,
            sliding_window_pattern: int("sliding_window_pattern", Some(6.0))?,
            rope_local_theta: num("rope_local_base_freq", Some(10_000.0))?,
            rope_linear_factor,
        }),
    };
    cfg.validate()?;
    Ok(cfg)
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
