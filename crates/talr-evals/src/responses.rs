//! Model responses as JSONL: `{"id": ..., "response": "..."}` per line.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// Reads a response file into id → response, where the id is rendered as a string (a number id
/// `3` and a string id `"3"` are the same item). A repeated id is an error naming both lines.
pub fn load_responses(path: &Path) -> Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    let mut line_of: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let id = match &v["id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => bail!(
                "{}:{}: `id` must be a string or a number",
                path.display(),
                i + 1
            ),
        };
        let response = v["response"].as_str().with_context(|| {
            format!("{}:{}: `response` must be a string", path.display(), i + 1)
        })?;
        if let Some(prev) = line_of.insert(id.clone(), i + 1) {
            bail!(
                "{}:{}: id {id} already appeared on line {prev}",
                path.display(),
                i + 1
            );
        }
        out.insert(id, response.to_string());
    }
    Ok(out)
}
