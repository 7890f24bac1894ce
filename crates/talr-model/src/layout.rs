//! The decoder's parameters, walked in one place: every tensor a config needs as a [`Slot`],
//! with its Hugging Face name and shape. Random initialisation, loading, export, adapters and
//! GGUF import all name tensors through here.

use crate::DecoderConfig;

/// A linear projection of a decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proj {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Proj {
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// The short name LoRA targets use (`q_proj`).
    pub fn short_name(self) -> &'static str {
        match self {
            Proj::Q => "q_proj",
            Proj::K => "k_proj",
            Proj::V => "v_proj",
            Proj::O => "o_proj",
            Proj::Gate => "gate_proj",
            Proj::Up => "up_proj",
            Proj::Down => "down_proj",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Proj::Q | Proj::K | Proj::V | Proj::O => "self_attn",
            Proj::Gate | Proj::Up | Proj::Down => "mlp",
        }
    }

    /// `model.layers.{layer}.self_attn.q_proj`: the prefix of the projection's weight and bias.
    pub fn prefix(self, layer: usize) -> String {
        format!(
            "model.layers.{layer}.{}.{}",
            self.module(),
            self.short_name()
        )
    }

    /// Qwen2's attention biases: q, k and v only.
    pub fn has_bias(self, cfg: &DecoderConfig) -> bool {
        cfg.attention_bias && matches!(self, Proj::Q | Proj::K | Proj::V)
    }

    /// (out, in) of the weight.
    fn dims(self, cfg: &DecoderConfig) -> (usize, usize) {
        let (d, q) = (cfg.hidden_size, cfg.num_heads * cfg.head_dim);
        let kv = cfg.num_kv_heads * cfg.head_dim;
        match self {
            Proj::Q => (q, d),
            Proj::K | Proj::V => (kv, d),
            Proj::O => (d, q),
            Proj::Gate | Proj::Up => (cfg.intermediate_size, d),
            Proj::Down => (d, cfg.intermediate_size),
        }
    }
}

/// Where a tensor sits in the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Embed,
    /// `input_layernorm`, before attention.
    InputNorm(usize),
    Weight(usize, Proj),
    Bias(usize, Proj),
    /// Qwen3 and Gemma3: per-head norms of queries and keys.
    QNorm(usize),
    KNorm(usize),
    /// `post_attention_layernorm`: Llama's norm before the MLP, Gemma3's norm of the attention
    /// output.
    PostAttentionNorm(usize),
    /// Gemma3: the norm before the MLP.
    PreFeedforwardNorm(usize),
    /// Gemma3: the norm of the MLP output.
    PostFeedforwardNorm(usize),
    FinalNorm,
    /// Absent when the output projection is tied to the embeddings.
    LmHead,
}

impl Slot {
    /// The Hugging Face name.
    pub fn name(self) -> String {
        let layer = |i: usize, tail: &str| format!("model.layers.{i}.{tail}");
        match self {
            Slot::Embed => "model.embed_tokens.weight".into(),
            Slot::InputNorm(i) => layer(i, "input_layernorm.weight"),
            Slot::Weight(i, p) => format!("{}.weight", p.prefix(i)),
            Slot::Bias(i, p) => format!("{}.bias", p.prefix(i)),
            Slot::QNorm(i) => layer(i, "self_attn.q_norm.weight"),
            Slot::KNorm(i) => layer(i, "self_attn.k_norm.weight"),
            Slot::PostAttentionNorm(i) => layer(i, "post_attention_layernorm.weight"),
            Slot::PreFeedforwardNorm(i) => layer(i, "pre_feedforward_layernorm.weight"),
            Slot::PostFeedforwardNorm(i) => layer(i, "post_feedforward_layernorm.weight"),
            Slot::FinalNorm => "model.norm.weight".into(),
            Slot::LmHead => "lm_head.weight".into(),
        }
    }

    pub fn shape(self, cfg: &DecoderConfig) -> Vec<usize> {
        match self {
            Slot::Embed | Slot::LmHead => vec![cfg.vocab_size, cfg.hidden_size],
            Slot::Weight(_, p) => {
                let (out, inp) = p.dims(cfg);
                vec![out, inp]
            }
            Slot::Bias(_, p) => vec![p.dims(cfg).0],
            Slot::QNorm(_) | Slot::KNorm(_) => vec![cfg.head_dim],
            Slot::InputNorm(_)
            | Slot::PostAttentionNorm(_)
            | Slot::PreFeedforwardNorm(_)
            | Slot::PostFeedforwardNorm(_)
            | Slot::FinalNorm => vec![cfg.hidden_size],
        }
    }

    pub fn is_norm(self) -> bool {
        !matches!(
            self,
            Slot::Embed | Slot::LmHead | Slot::Weight(..) | Slot::Bias(..)
        )
    }
}

/// Every parameter `cfg` needs, in Hugging Face checkpoint order.
pub fn slots(cfg: &DecoderConfig) -> Vec<Slot> {
    let mut out = vec![Slot::Embed];
    for i in 0..cfg.num_layers {
        out.push(Slot::InputNorm(i));
        for p in [Proj::Q, Proj::K, Proj::V, Proj::O] {
            out.push(Slot::Weight(i, p));
        }
        for p in [Proj::Q, Proj::K, Proj::V] {
            if p.has_bias(cfg) {
                out.push(Slot::Bias(i, p));
            }
        }
        if cfg.qk_norm {
            out.extend([Slot::QNorm(i), Slot::KNorm(i)]);
        }
        out.push(Slot::PostAttentionNorm(i));
        if cfg.gemma.is_some() {
            out.extend([Slot::PreFeedforwardNorm(i), Slot::PostFeedforwardNorm(i)]);
        }
        for p in [Proj::Gate, Proj::Up, Proj::Down] {
            out.push(Slot::Weight(i, p));
        }
    }
    out.push(Slot::FinalNorm);
    if !cfg.tie_word_embeddings {
        out.push(Slot::LmHead);
    }
    out
}

/// The slot of a llama.cpp GGUF tensor name (Llama family), if it is a parameter.
pub fn gguf_slot(name: &str) -> Option<Slot> {
    match name {
        "token_embd.weight" => return Some(Slot::Embed),
        "output_norm.weight" => return Some(Slot::FinalNorm),
        "output.weight" => return Some(Slot::LmHead),
        _ => {}
    }
    let (layer, tail) = name.strip_prefix("blk.")?.split_once('.')?;
    let i: usize = layer.parse().ok()?;
    Some(match tail {
        "attn_norm.weight" => Slot::InputNorm(i),
        "ffn_norm.weight" => Slot::PostAttentionNorm(i),
        "attn_q.weight" => Slot::Weight(i, Proj::Q),
        "attn_k.weight" => Slot::Weight(i, Proj::K),
        "attn_v.weight" => Slot::Weight(i, Proj::V),
        "attn_output.weight" => Slot::Weight(i, Proj::O),
        "ffn_gate.weight" => Slot::Weight(i, Proj::Gate),
        "ffn_up.weight" => Slot::Weight(i, Proj::Up),
        "ffn_down.weight" => Slot::Weight(i, Proj::Down),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_gguf_names_map_onto_them() {
        let mut cfg = DecoderConfig::tiny_llama(300);
        cfg.tie_word_embeddings = false;
        let names: Vec<String> = slots(&cfg).iter().map(|s| s.name()).collect();
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(
            gguf_slot("blk.3.attn_q.weight").map(Slot::name).as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(gguf_slot("output.weight"), Some(Slot::LmHead));
        assert_eq!(gguf_slot("rope_freqs.weight"), None);
        assert_eq!(
            Slot::Weight(0, Proj::O).shape(&cfg),
            vec![cfg.hidden_size, cfg.num_heads * cfg.head_dim]
        );
    }
}
