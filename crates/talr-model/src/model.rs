//! Resolving a user's `--model` (a known name, a GGUF file, a model directory or a hub repo id)
//! into a decoder and its tokenizer.

use crate::config::DecoderConfig;
use crate::decoder::{make_trainable, Decoder};
use crate::tokenizer::TextTokenizer;
use crate::weights::{self, WeightMap};
use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A model the project fetches itself (see `talr assets`).
    Asset(&'static talr_assets::WheelAsset),
    Gguf(PathBuf),
    /// A directory with config.json, tokenizer.json and safetensors (Hugging Face layout).
    Dir(PathBuf),
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl ModelSource {
    /// Interprets `spec`: a known model name, an existing `.gguf` file or model directory, or a
    /// hub repo id `org/name[@revision]`.
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(asset) = talr_assets::find_asset(spec) {
            return Ok(Self::Asset(asset));
        }
        let path = Path::new(spec);
        if path.is_file() {
            if path.extension().is_some_and(|e| e == "gguf") {
                return Ok(Self::Gguf(path.to_path_buf()));
            }
            bail!("--model {spec}: a file must be a .gguf model (or pass its directory)");
        }
        if path.is_dir() {
            return Ok(Self::Dir(path.to_path_buf()));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, Some(rev.to_string())),
            None => (spec, None),
        };
        let is_repo_id = repo.split('/').count() == 2
            && repo.split('/').all(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c))
            });
        if is_repo_id && !spec.starts_with('.') {
            return Ok(Self::Hub {
                repo: repo.to_string(),
                revision,
            });
        }
        let known: Vec<&str> = talr_assets::KNOWN_ASSETS.iter().map(|a| a.name).collect();
        bail!(
            "--model {spec}: not a known model ({}), not an existing .gguf file or model \
             directory, and not a hub repo id (org/name)",
            known.join(", ")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainability {
    /// Weights are plain tensors: no gradient is ever computed for them.
    Frozen,
    /// Every weight is a `Var`.
    Trainable,
}

pub struct LoadedModel {
    pub decoder: Decoder,
    pub tokenizer: TextTokenizer,
    /// The trainable parameters (empty when frozen), in name order.
    pub vars: Vec<(String, Var)>,
    /// Where the weights came from, for result files.
    pub origin: String,
}

impl LoadedModel {
    pub fn load(source: &ModelSource, device: &Device, mode: Trainability) -> Result<Self> {
        let (config, weights, tokenizer, origin) = match source {
            ModelSource::Asset(asset) => {
                let path = talr_assets::fetch(asset)?;
                let (c, w, t) = load_gguf_parts(&path, device)?;
                (c, w, t, format!("{} ({})", asset.name, path.display()))
            }
            ModelSource::Gguf(path) => {
                let (c, w, t) = load_gguf_parts(path, device)?;
                (c, w, t, path.display().to_string())
            }
            ModelSource::Dir(dir) => {
                let (c, w, t) = load_dir_parts(dir, device)?;
                (c, w, t, dir.display().to_string())
            }
            ModelSource::Hub { repo, revision } => {
                let dir = weights::hub_snapshot(repo, revision.as_deref())?;
                let (c, w, t) = load_dir_parts(&dir, device)?;
                let rev = revision.as_deref().unwrap_or("main");
                (c, w, t, format!("hf://{repo}@{rev}"))
            }
        };
        Self::from_parts(config, weights, tokenizer, origin, mode)
    }

    /// Per-token NLL of each response after its prompt (see [`crate::logprobs::response_nll`]),
    /// with this model's pad token and the default logit chunk.
    pub fn response_nll(
        &self,
        pairs: &[(Vec<u32>, Vec<u32>)],
    ) -> Result<crate::logprobs::ResponseNll> {
        crate::logprobs::response_nll(
            &self.decoder,
            pairs,
            self.tokenizer.pad_id,
            crate::logprobs::DEFAULT_LOGIT_CHUNK,
        )
    }

    /// Gradients of `loss` with respect to the trainable parameters, detached.
    ///
    /// candle's parameter gradients keep a backprop link to the activations they were computed
    /// from, so the whole forward graph would stay alive through the optimiser step; detached,
    /// it is freed as soon as the caller drops `loss` (measured on SmolLM2 at 8 × 256: peak
    /// memory of a training step drops by about 2 GB).
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        self.decoder.grad_sink.take();
        let mut grads = loss.backward()?;
        for (id, g) in self.decoder.grad_sink.take() {
            let sum = match grads.get_id(id) {
                Some(existing) => (existing + g)?,
                None => g,
            };
            grads.insert_id(id, sum);
        }
        for (_, var) in &self.vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), g.detach());
            }
        }
        Ok(grads)
    }

    pub fn from_parts(
        config: DecoderConfig,
        weights: WeightMap,
        tokenizer: TextTokenizer,
        origin: String,
        mode: Trainability,
    ) -> Result<Self> {
        let (weights, vars) = match mode {
            Trainability::Frozen => (weights, Vec::new()),
            Trainability::Trainable => make_trainable(&weights)?,
        };
        let decoder = Decoder::new(config, &weights)
            .with_context(|| format!("building the decoder from {origin}"))?;
        Ok(Self {
            decoder,
            tokenizer,
            vars,
            origin,
        })
    }
}

fn load_gguf_parts(
    path: &Path,
    device: &Device,
) -> Result<(DecoderConfig, WeightMap, TextTokenizer)> {
    let gguf = weights::load_gguf(path, device)?;
    let tokenizer = TextTokenizer::from_gguf_metadata(&gguf.metadata)
        .with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    Ok((gguf.config, gguf.weights, tokenizer))
}

fn load_dir_parts(
    dir: &Path,
    device: &Device,
) -> Result<(DecoderConfig, WeightMap, TextTokenizer)> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config = DecoderConfig::from_hf_json(&text)
        .with_context(|| format!("in {}", config_path.display()))?;
    let mut weights = weights::load_safetensors_dir(dir, device)?;
    if config.tie_word_embeddings {
        weights.remove("lm_head.weight");
    }
    let tokenizer = TextTokenizer::from_tokenizer_json(dir)?;
    Ok((config, weights, tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_specs_and_explains_bad_ones() {
        assert!(matches!(
            ModelSource::parse("smollm2-135m-instruct").unwrap(),
            ModelSource::Asset(_)
        ));
        match ModelSource::parse("Qwen/Qwen2.5-3B-Instruct@abc").unwrap() {
            ModelSource::Hub { repo, revision } => {
                assert_eq!(repo, "Qwen/Qwen2.5-3B-Instruct");
                assert_eq!(revision.as_deref(), Some("abc"));
            }
            other => panic!("{other:?}"),
        }
        let err = ModelSource::parse("no such thing").unwrap_err().to_string();
        assert!(err.contains("--model no such thing"), "{err}");
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
    }
}
