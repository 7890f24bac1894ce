//! Batched generation with a KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; each row gets its own positions
//! (counted from its first real token) and an attention bias that hides the padding, so a row
//! decodes exactly as it would alone. Rows stop independently on an eos id, on a stop string, or
//! at `max_new_tokens`, and a finished row leaves the batch (its slot of the KV cache is dropped),
//! so the batch costs what its running rows cost.

use crate::decoder::{attention_bias, Decoder};
use crate::tokenizer::TextTokenizer;
use anyhow::{ensure, Result};
use candle_core::{Tensor, D};
use candle_nn::kv_cache::KvCache;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Temperature then nucleus (top-p) sampling; row i of a call draws from seed + i.
    TopP {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub stop_strings: Vec<String>,
    pub sampling: Sampling,
    /// Keep going past eos (benchmarks that need a fixed number of tokens).
    pub ignore_eos: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            sampling: Sampling::Greedy,
            ignore_eos: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Eos,
    StopString,
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated tokens, without the eos token.
    pub tokens: Vec<u32>,
    /// Decoded text, cut before the first stop string.
    pub text: String,
    pub finish: FinishReason,
}

struct RowState {
    tokens: Vec<u32>,
    finish: Option<FinishReason>,
    text: String,
    rng: Option<StdRng>,
}

/// Generates a continuation for every prompt (token ids, e.g. a rendered chat template) in one
/// batch. `on_step` is called after each decoding step with the number of rows still running.
pub fn generate(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    mut on_step: impl FnMut(usize),
) -> Result<Vec<Generation>> {
    ensure!(!prompts.is_empty(), "generate: no prompts");
    ensure!(
        prompts.iter().all(|p| !p.is_empty()),
        "generate: every prompt needs at least one token"
    );
    let device = decoder.device();
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut key_valid: Vec<Vec<bool>> = Vec::with_capacity(b);
    let mut ids = Vec::with_capacity(b * longest);
    let mut positions = Vec::with_capacity(b * longest);
    for p in prompts {
        let pad = longest - p.len();
        key_valid.push((0..longest).map(|j| j >= pad).collect());
        ids.extend(std::iter::repeat_n(tokenizer.pad_id, pad).chain(p.iter().copied()));
        positions.extend((0..longest).map(|j| j.saturating_sub(pad) as u32));
    }
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();

    let mut cache = decoder.new_cache(longest + cfg.max_new_tokens);
    let ids_t = Tensor::from_vec(ids, (b, longest), device)?;
    let pos_t = Tensor::from_vec(positions, (b, longest), device)?;
    let mask = attention_bias(&key_valid, 0, longest, device)?;
    let hidden = decoder.forward_hidden(&ids_t, &pos_t, &mask, Some(&mut cache))?;
    let mut logits = decoder.logits(&hidden.narrow(1, longest - 1, 1)?.squeeze(1)?)?;

    let mut rows: Vec<RowState> = (0..b)
        .map(|i| RowState {
            tokens: Vec::new(),
            finish: None,
            text: String::new(),
            rng: match cfg.sampling {
                Sampling::Greedy => None,
                Sampling::TopP { seed, .. } => Some(StdRng::seed_from_u64(seed + i as u64)),
            },
        })
        .collect();

    // Batch slot -> row. Rows leave the batch as they finish: on a CPU a decoding step costs about
    // the same per row whether the row is running or padding, and replies end at very different
    // lengths.
    let mut active: Vec<usize> = (0..b).collect();
    let cache_len = longest + cfg.max_new_tokens;
    for step in 0..cfg.max_new_tokens {
        let next = pick_tokens(&logits, &cfg.sampling, &mut rows, &active)?;
        for (&i, &tok) in active.iter().zip(&next) {
            let row = &mut rows[i];
            if !cfg.ignore_eos && tokenizer.eos_ids.contains(&tok) {
                row.finish = Some(FinishReason::Eos);
                continue;
            }
            row.tokens.push(tok);
            row.text = tokenizer.decode(&row.tokens)?;
            if let Some(cut) = first_stop(&row.text, &cfg.stop_strings) {
                row.text.truncate(cut);
                row.finish = Some(FinishReason::StopString);
            }
        }
        let running: Vec<usize> = (0..active.len())
            .filter(|&slot| rows[active[slot]].finish.is_none())
            .collect();
        on_step(running.len());
        if running.is_empty() || step + 1 == cfg.max_new_tokens {
            break;
        }
        if running.len() < active.len() {
            keep_slots(&mut cache, &running, cache_len)?;
            key_valid = running
                .iter()
                .map(|&slot| std::mem::take(&mut key_valid[slot]))
                .collect();
            next_pos = running.iter().map(|&slot| next_pos[slot]).collect();
            active = running.iter().map(|&slot| active[slot]).collect();
        }
        let step_ids: Vec<u32> = running.iter().map(|&slot| next[slot]).collect();
        for valid in key_valid.iter_mut() {
            valid.push(true);
        }
        let n = active.len();
        let past = key_valid[0].len() - 1;
        let mask = attention_bias(&key_valid, past, 1, device)?;
        let ids_t = Tensor::from_vec(step_ids, (n, 1), device)?;
        let pos_t = Tensor::from_vec(next_pos.clone(), (n, 1), device)?;
        for pos in next_pos.iter_mut() {
            *pos += 1;
        }
        let hidden = decoder.forward_hidden(&ids_t, &pos_t, &mask, Some(&mut cache))?;
        logits = decoder.logits(&hidden.squeeze(1)?)?;
    }

    Ok(rows
        .into_iter()
        .map(|r| Generation {
            finish: r.finish.unwrap_or(FinishReason::Length),
            tokens: r.tokens,
            text: r.text,
        })
        .collect())
}

/// Keeps only the given batch slots of every layer's cache (a fresh, smaller cache per layer).
fn keep_slots(cache: &mut [KvCache], slots: &[usize], max_len: usize) -> Result<()> {
    let Some(first) = cache.first() else {
        return Ok(());
    };
    let Some(k0) = first.k()? else {
        return Ok(());
    };
    let index: Vec<u32> = slots.iter().map(|&s| s as u32).collect();
    let index = Tensor::from_vec(index, slots.len(), k0.device())?;
    for layer in cache.iter_mut() {
        let (Some(k), Some(v)) = (layer.k()?, layer.v()?) else {
            continue;
        };
        let k = k.contiguous()?.index_select(&index, 0)?;
        let v = v.contiguous()?.index_select(&index, 0)?;
        let mut kept = KvCache::new(2, max_len);
        kept.append(&k, &v)?;
        *layer = kept;
    }
    Ok(())
}

fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// One token per batch slot; `active` maps slots to rows (whose rngs sampling advances).
fn pick_tokens(
    logits: &Tensor,
    sampling: &Sampling,
    rows: &mut [RowState],
    active: &[usize],
) -> Result<Vec<u32>> {
    match sampling {
        Sampling::Greedy => Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?),
        Sampling::TopP {
            temperature, top_p, ..
        } => {
            let all = logits.to_vec2::<f32>()?;
            Ok(all
                .iter()
                .zip(active)
                .map(|(row_logits, &i)| {
                    let rng = rows[i].rng.as_mut().expect("sampling rows carry an rng");
                    sample_top_p(row_logits, *temperature, *top_p, rng)
                })
                .collect())
        }
    }
}

/// Samples from softmax(logits / temperature) restricted to the smallest set of tokens whose
/// probability reaches `top_p`. A temperature of 0 is greedy.
pub fn sample_top_p(logits: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> u32 {
    if temperature <= 0.0 {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, (((l - max) as f64) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= top_p {
            cut = i + 1;
            break;
        }
    }
    let probs = &probs[..cut];
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for &(id, p) in probs {
        if u < p {
            return id;
        }
        u -= p;
    }
    probs.last().map(|p| p.0).unwrap_or(0)
}

fn argmax(xs: &[f32]) -> u32 {
    xs.iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_p_keeps_only_the_nucleus_and_is_seeded() {
        let logits = [10.0f32, 9.0, 0.0, -5.0];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let t = sample_top_p(&logits, 1.0, 0.9, &mut rng);
            assert!(t == 0 || t == 1, "token {t} is outside the 0.9 nucleus");
        }
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|_| sample_top_p(&logits, 2.0, 1.0, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_eq!(sample_top_p(&logits, 0.0, 0.5, &mut rng), 0);
    }

    #[test]
    fn stop_strings_cut_at_the_earliest_match() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(first_stop("abc END x\n\n", &stops), Some(4));
        assert_eq!(first_stop("abc", &stops), None);
    }
}
