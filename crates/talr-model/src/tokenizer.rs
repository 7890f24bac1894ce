//! Tokenizer and chat template.
//!
//! Sources: a Hugging Face `tokenizer.json` (+ `tokenizer_config.json` for the chat template and
//! special tokens), or a GGUF file's `tokenizer.ggml.*` metadata, from which an equivalent
//! `tokenizer.json` is assembled (gpt2-style byte-level BPE: tokens, merges, special tokens).

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pub eos_ids: Vec<u32>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_id: u32,
    pub chat_template: Option<ChatTemplate>,
}

pub use crate::chat::ChatMessage;

impl TextTokenizer {
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        // Special-token text in `text` (e.g. from a rendered chat template) maps to its id.
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("decoding: {e}"))
    }

    /// Writes `tokenizer.json` (e.g. next to a saved checkpoint).
    pub fn save_tokenizer_json(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))
    }

    /// Writes `tokenizer_config.json` with the special tokens and chat template, as Hugging Face
    /// model directories carry it.
    pub fn save_tokenizer_config(&self, path: &Path) -> Result<()> {
        let pad = self.inner.id_to_token(self.pad_id);
        let json = serde_json::json!({
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": pad,
            "chat_template": self.chat_template.as_ref().map(|t| t.source.as_str()),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Renders `messages` with the model's own chat template; `add_generation_prompt` opens the
    /// assistant turn.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_ref()
            .context("this tokenizer has no chat template; use raw prompts (--raw)")?;
        template.render(
            messages,
            add_generation_prompt,
            self.bos_token.as_deref().unwrap_or(""),
            self.eos_token.as_deref().unwrap_or(""),
        )
    }

    pub fn from_tokenizer_json(dir_or_file: &Path) -> Result<Self> {
        let (file, dir) = if dir_or_file.is_dir() {
            (
                dir_or_file.join("tokenizer.json"),
                dir_or_file.to_path_buf(),
            )
        } else {
            let dir = dir_or_file.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir_or_file.to_path_buf(), dir)
        };
        let inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_path.is_file() {
            serde_json::from_str(&std::fs::read_to_string(&config_path)?)
                .with_context(|| format!("parsing {}", config_path.display()))?
        } else {
            serde_json::Value::Null
        };
        let token_str = |key: &str| -> Option<String> {
            match &config[key] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
                _ => None,
            }
        };
        let eos_token = token_str("eos_token");
        let mut eos_ids: Vec<u32> = eos_token
            .iter()
            .filter_map(|t| inner.token_to_id(t))
            .collect();
        // generation_config.json may declare several eos ids.
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            let gen: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&gen_path)?)
                .with_context(|| format!("parsing {}", gen_path.display()))?;
            match &gen["eos_token_id"] {
                serde_json::Value::Number(n) => eos_ids.extend(n.as_u64().map(|v| v as u32)),
                serde_json::Value::Array(a) => {
                    eos_ids.extend(a.iter().filter_map(|v| v.as_u64().map(|v| v as u32)))
                }
                _ => {}
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        if eos_ids.is_empty() {
            bail!(
                "{}: no eos_token (and no generation_config.json eos_token_id): generation \
                 could never stop",
                config_path.display()
            );
        }
        let pad_id = token_str("pad_token")
            .and_then(|t| inner.token_to_id(&t))
            .unwrap_or(eos_ids[0]);
        let chat_template = config["chat_template"]
            .as_str()
            .map(|s| ChatTemplate::new(s.to_string()))
            .transpose()?;
        Ok(Self {
            inner,
            eos_ids,
            bos_token: token_str("bos_token"),
            eos_token,
            pad_id,
            chat_template,
        })
    }

    pub fn from_gguf_metadata(metadata: &BTreeMap<String, Value>) -> Result<Self> {
        let get = |k: &str| {
            metadata
                .get(k)
                .with_context(|| format!("GGUF metadata has no `{k}`"))
        };
        let model = get("tokenizer.ggml.model")?.to_string()?;
        if model != "gpt2" {
            bail!(
                "GGUF tokenizer.ggml.model {model:?} is not supported (supported: \"gpt2\" \
                 byte-level BPE); pass a tokenizer.json instead"
            );
        }
        let pre = metadata
            .get("tokenizer.ggml.pre")
            .map(|v| v.to_string().cloned())
            .transpose()?
            .unwrap_or_else(|| "default".into());
        let tokens: Vec<String> = get("tokenizer.ggml.tokens")?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()?;
        let merges: Vec<String> = get("tokenizer.ggml.merges")?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()?;
        let types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(|v| v.to_i32())
                .collect::<candle_core::Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let id = |k: &str| -> Result<Option<u32>> {
            metadata
                .get(k)
                .map(|v| v.to_u32())
                .transpose()
                .map_err(Into::into)
        };
        let eos_id = id("tokenizer.ggml.eos_token_id")?
            .context("GGUF metadata has no tokenizer.ggml.eos_token_id")?;
        let bos_id = id("tokenizer.ggml.bos_token_id")?;
        let pad_id = id("tokenizer.ggml.padding_token_id")?.unwrap_or(eos_id);

        let json = gpt2_tokenizer_json(&tokens, &merges, &types, &pre)?;
        let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
            .map_err(|e| anyhow!("building the tokenizer from GGUF metadata: {e}"))?;
        let name = |i: Option<u32>| i.and_then(|i| tokens.get(i as usize).cloned());
        let chat_template = metadata
            .get("tokenizer.chat_template")
            .map(|v| v.to_string().cloned())
            .transpose()?
            .map(ChatTemplate::new)
            .transpose()?;
        Ok(Self {
            inner,
            eos_ids: vec![eos_id],
            bos_token: name(bos_id),
            eos_token: name(Some(eos_id)),
            pad_id,
            chat_template,
        })
    }
}

/// ChatML, as SmolLM2 and Qwen use it (without a default system message).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

impl TextTokenizer {
    /// A merge-free byte-level tokenizer (256 byte tokens, then `<|endoftext|>`, `<|im_start|>`,
    /// `<|im_end|>`) with a ChatML template: the tokenizer of tiny random-initialised models.
    pub fn byte_level() -> Result<Self> {
        let mut tokens: Vec<String> = gpt2_byte_alphabet().into_iter().map(String::from).collect();
        tokens.extend(["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from));
        let mut types = vec![1; 256];
        types.extend([3, 3, 3]);
        let json = gpt2_tokenizer_json(&tokens, &[], &types, "gpt2")?;
        let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
            .map_err(|e| anyhow!("building the byte-level tokenizer: {e}"))?;
        Ok(Self {
            inner,
            eos_ids: vec![258],
            bos_token: None,
            eos_token: Some("<|im_end|>".into()),
            pad_id: 256,
            chat_template: Some(ChatTemplate::new(CHATML_TEMPLATE.to_string())?),
        })
    }
}

/// GPT-2's reversible byte → printable-character map, indexed by byte.
fn gpt2_byte_alphabet() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap()
            }
        })
        .collect()
}

/// Token types in GGUF: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

fn gpt2_tokenizer_json(
    tokens: &[String],
    merges: &[String],
    types: &[i32],
    pre: &str,
) -> Result<serde_json::Value> {
    use serde_json::json;
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                            "use_regex": true});
    // llama.cpp's pre-tokenizer names; SmolLM's splits every digit before the gpt2 regex.
    let pre_tokenizer = match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]}),
        "gpt2" | "gpt-2" | "default" => byte_level,
        other => bail!(
            "GGUF tokenizer.ggml.pre {other:?} is not supported (supported: \"smollm\", \"gpt2\", \
             \"default\"); load this model's tokenizer.json instead"
        ),
    };
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (_, &ty))| ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED)
        .map(|(i, (t, &ty))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": ty == TOKEN_TYPE_CONTROL})
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    }))
}

/// A Hugging Face chat template (Jinja), rendered with minijinja plus Python string methods.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    source: String,
}

impl ChatTemplate {
    pub fn new(source: String) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.clone())
            .map_err(|e| anyhow!("chat template does not parse: {e}"))?;
        Ok(Self { env, source })
    }

    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        use minijinja::Value;
        let tmpl = self.env.get_template("chat")?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| anyhow!("rendering the chat template: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chat_template_renders_with_python_string_methods() {
        let t = ChatTemplate::new(CHATML.into()).unwrap();
        let out = t
            .render(&[ChatMessage::new("user", "  Hi  ")], true, "", "")
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn byte_level_tokenizer_round_trips_any_text() {
        let tok = TextTokenizer::byte_level().unwrap();
        let text = "héllo\n\tworld 42 ✓";
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(tok.decode(&ids).unwrap(), text);
        let chat = tok
            .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
            .unwrap();
        let ids = tok.encode(&chat).unwrap();
        assert_eq!(ids[0], 257, "<|im_start|> is one special token");
        assert!(ids.contains(&258));
    }

    #[test]
    fn gguf_style_bpe_encodes_with_merges_and_special_tokens() {
        // Byte-level alphabet: 'Ġ' stands for a space.
        let tokens: Vec<String> = ["<|im_end|>", "a", "b", "Ġ", "ab", "Ġab", "1", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let merges = vec!["a b".to_string(), "Ġ ab".to_string()];
        let types = vec![3, 1, 1, 1, 1, 1, 1, 1];
        let mut md = BTreeMap::new();
        let strs =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
        md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.insert("tokenizer.ggml.pre".into(), Value::String("smollm".into()));
        md.insert("tokenizer.ggml.tokens".into(), strs(&tokens));
        md.insert("tokenizer.ggml.merges".into(), strs(&merges));
        md.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        );
        md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(0));
        let tok = TextTokenizer::from_gguf_metadata(&md).unwrap();
        assert_eq!(tok.encode("ab ab<|im_end|>").unwrap(), vec![4, 5, 0]);
        // Digits are split one by one.
        assert_eq!(tok.encode("12").unwrap(), vec![6, 7]);
        assert_eq!(tok.decode(&[4, 5, 0]).unwrap(), "ab ab");
        assert_eq!(tok.eos_ids, vec![0]);

        md.insert("tokenizer.ggml.pre".into(), Value::String("qwen2".into()));
        let err = TextTokenizer::from_gguf_metadata(&md)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("tokenizer.ggml.pre") && err.contains("qwen2"),
            "{err}"
        );
    }
}
