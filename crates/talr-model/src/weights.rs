//! Weights under Hugging Face names, from GGUF, a safetensors directory, or a hub repo.
//!
//! Every loader produces the same thing: a map from Hugging Face parameter names
//! (`model.layers.0.self_attn.q_proj.weight`, ...) to f32 tensors in Hugging Face layout. GGUF files
//! store q/k rows permuted for llama.cpp's interleaved rope; the loader undoes that, so one rope
//! convention (rotate-half) serves every source and saved checkpoints are Hugging Face compatible.

use crate::config::{Activation, DecoderConfig};
use crate::layout::{gguf_slot, Proj, Slot};
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type WeightMap = BTreeMap<String, Tensor>;

/// A GGUF file read whole: config, weights and the tokenizer metadata.
pub struct GgufModel {
    pub config: DecoderConfig,
    pub weights: WeightMap,
    pub metadata: BTreeMap<String, gguf_file::Value>,
}

fn md<'a>(
    metadata: &'a std::collections::HashMap<String, gguf_file::Value>,
    key: &str,
    path: &Path,
) -> Result<&'a gguf_file::Value> {
    metadata
        .get(key)
        .with_context(|| format!("{}: GGUF metadata has no key `{key}`", path.display()))
}

/// candle attaches a backtrace to its errors whenever `RUST_BACKTRACE` is set; a file that
/// cannot be read is the user's problem, not the program's, so its message goes without one.
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => *inner,
        e => e,
    }
}

/// Every tensor's data lies inside the file: a truncated download fails here, naming the file,
/// instead of deep inside a tensor read.
fn check_gguf_complete(
    content: &gguf_file::Content,
    file: &std::fs::File,
    path: &Path,
) -> Result<()> {
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let end = content
        .tensor_infos
        .iter()
        .map(|(name, info)| {
            let dtype = info.ggml_dtype;
            let bytes = info.shape.elem_count() / dtype.block_size() * dtype.type_size();
            (
                content.tensor_data_offset + info.offset + bytes as u64,
                name,
            )
        })
        .max();
    if let Some((end, name)) = end {
        if end > len {
            bail!(
                "{} is truncated: it has {len} bytes, but tensor {name} ends at byte {end} \
                 (an interrupted download? fetch it again)",
                path.display()
            );
        }
    }
    Ok(())
}

pub fn load_gguf(path: &Path, device: &Device) -> Result<GgufModel> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(without_backtrace)
        .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
    check_gguf_complete(&content, &file, path)?;
    let meta = &content.metadata;
    let arch = md(meta, "general.architecture", path)?.to_string()?.clone();
    if arch != "llama" {
        bail!(
            "{}: GGUF architecture {arch:?} is not supported (supported: \"llama\"); \
             load such models from a safetensors directory or hub repo instead",
            path.display()
        );
    }
    let get_u = |k: &str| -> Result<usize> {
        Ok(md(meta, &format!("llama.{k}"), path)?.to_u32()? as usize)
    };
    let hidden_size = get_u("embedding_length")?;
    let num_heads = get_u("attention.head_count")?;
    let num_kv_heads = get_u("attention.head_count_kv")?;
    let num_layers = get_u("block_count")?;
    let rope_theta = meta
        .get("llama.rope.freq_base")
        .map(|v| v.to_f32())
        .transpose()?
        .unwrap_or(10_000.0) as f64;
    let rms_norm_eps = md(meta, "llama.attention.layer_norm_rms_epsilon", path)?.to_f32()? as f64;
    let embed = content
        .tensor(&mut file, "token_embd.weight", device)?
        .dequantize(device)?;
    let vocab_size = embed.dim(0)?;
    let has_output = content.tensor_infos.contains_key("output.weight");
    let config = DecoderConfig {
        vocab_size,
        hidden_size,
        intermediate_size: get_u("feed_forward_length")?,
        num_layers,
        num_heads,
        num_kv_heads,
        head_dim: hidden_size / num_heads,
        rope_theta,
        rms_norm_eps,
        max_position_embeddings: get_u("context_length")?,
        tie_word_embeddings: !has_output,
        activation: Activation::Silu,
        attention_bias: false,
        qk_norm: false,
        norm_weight_offset: 0.0,
        embedding_scale: None,
        gemma: None,
    };
    config.validate()?;

    let mut weights = WeightMap::new();
    weights.insert(Slot::Embed.name(), embed);
    for name in content.tensor_infos.keys() {
        // Not a parameter (e.g. rope_freqs, derived), or the embeddings, read above.
        let Some(slot) = gguf_slot(name).filter(|s| *s != Slot::Embed) else {
            continue;
        };
        let t = content
            .tensor(&mut file, name, device)?
            .dequantize(device)?;
        let t = match slot {
            Slot::Weight(_, Proj::Q) => unpermute_rope_rows(&t, num_heads)?,
            Slot::Weight(_, Proj::K) => unpermute_rope_rows(&t, num_kv_heads)?,
            _ => t,
        };
        weights.insert(slot.name(), t.to_dtype(DType::F32)?);
    }
    let metadata = content.metadata.into_iter().collect();
    Ok(GgufModel {
        config,
        weights,
        metadata,
    })
}

/// llama.cpp's converter reorders each head's rows from (2, d/2) to (d/2, 2) so that its
/// interleaved rope matches Hugging Face's rotate-half; this is the inverse.
pub fn unpermute_rope_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let head_dim = rows / heads;
    Ok(w.reshape((heads, head_dim / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// The inverse of [`unpermute_rope_rows`]: Hugging Face layout to llama.cpp's.
pub fn permute_rope_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let head_dim = rows / heads;
    Ok(w.reshape((heads, 2, head_dim / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Loads `model.safetensors` or the shards named by `model.safetensors.index.json` in `dir`.
pub fn load_safetensors_dir(dir: &Path, device: &Device) -> Result<WeightMap> {
    let files = safetensors_files(dir)?;
    let mut weights = WeightMap::new();
    for file in files {
        let tensors = candle_core::safetensors::load(&file, device)
            .with_context(|| format!("reading {}", file.display()))?;
        for (name, t) in tensors {
            weights.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    Ok(weights)
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        bail!(
            "{}: neither model.safetensors nor model.safetensors.index.json is there",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&index)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    shards.sort();
    shards.dedup();
    let files: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!(
            "{}: shard {} is missing",
            index.display(),
            missing.display()
        );
    }
    Ok(files)
}

/// Downloads (or finds in the hub cache) the files a model directory needs and returns the
/// snapshot directory that holds them.
pub fn hub_snapshot(repo_id: &str, revision: Option<&str>) -> Result<PathBuf> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("initialising the Hugging Face hub client")?;
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        revision.unwrap_or("main").to_string(),
    ));
    let hub_err = |file: &str| {
        format!(
            "fetching {file} of {repo_id} from the hub (no network? pass a local directory with \
             config.json, tokenizer.json and safetensors instead)"
        )
    };
    let config = repo
        .get("config.json")
        .with_context(|| hub_err("config.json"))?;
    repo.get("tokenizer.json")
        .with_context(|| hub_err("tokenizer.json"))?;
    // Optional: holds the chat template for most models.
    let _ = repo.get("tokenizer_config.json");
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let dir = index.parent().context("hub cache path")?.to_path_buf();
            let text = std::fs::read_to_string(&index)?;
            let json: serde_json::Value = serde_json::from_str(&text)?;
            let mut shards: Vec<String> = json["weight_map"]
                .as_object()
                .context("index has no weight_map")?
                .values()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            shards.sort();
            shards.dedup();
            for shard in shards {
                repo.get(&shard).with_context(|| hub_err(&shard))?;
            }
            Ok(dir)
        }
        Err(_) => {
            repo.get("model.safetensors")
                .with_context(|| hub_err("model.safetensors"))?;
            Ok(config.parent().context("hub cache path")?.to_path_buf())
        }
    }
}

/// Writes weights as one safetensors file, atomically.
pub fn save_safetensors(weights: &WeightMap, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile_path(path);
    let map: std::collections::HashMap<&str, Tensor> = weights
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn tempfile_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_row_permutation_round_trips() {
        let w = Tensor::arange(0f32, 48.0, &Device::Cpu)
            .unwrap()
            .reshape((12, 4))
            .unwrap();
        let p = permute_rope_rows(&w, 2).unwrap();
        assert_ne!(p.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        let back = unpermute_rope_rows(&p, 2).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        // Head 0 (rows 0..6) in HF order is [a0 a1 a2 | b0 b1 b2]; llama.cpp wants a0 b0 a1 b1 a2 b2.
        let rows: Vec<f32> = p.to_vec2::<f32>().unwrap()[..6]
            .iter()
            .map(|r| r[0])
            .collect();
        assert_eq!(rows, vec![0.0, 12.0, 4.0, 16.0, 8.0, 20.0]);
    }

    #[test]
    fn sharded_directory_without_a_shard_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let err = load_safetensors_dir(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model-00001-of-00002.safetensors"), "{err}");
    }

    #[test]
    fn a_truncated_gguf_is_named_as_truncated_in_one_line() {
        use candle_core::quantized::{GgmlDType, QTensor};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        let weight = Tensor::zeros((64, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let tensor = QTensor::quantize(&weight, GgmlDType::F32).unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let mut file = std::fs::File::create(&path).unwrap();
        gguf_file::write(
            &mut file,
            &[("general.architecture", &arch)],
            &[("token_embd.weight", &tensor)],
        )
        .unwrap();
        let full = file.metadata().unwrap().len();
        file.set_len(full - 100).unwrap();
        drop(file);
        let err = format!("{:#}", load_gguf(&path, &Device::Cpu).err().unwrap());
        assert!(err.contains("model.gguf is truncated"), "{err}");
        assert!(err.contains("token_embd.weight"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");

        // A file cut inside its header: candle's message, without its backtrace.
        std::fs::write(&path, b"GGUF\x03\x00").unwrap();
        let err = format!("{:#}", load_gguf(&path, &Device::Cpu).err().unwrap());
        assert!(err.contains("is not a readable GGUF file"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
