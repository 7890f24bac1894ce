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

/// Reads every non-blank line of a JSONL file (gzip-compressed when the name ends in `.gz`) as a
/// `T`; an error names the file and line.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// A text file's contents, gunzipped when the name ends in `.gz`.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .with_context(|| format!("{}: not a gzip-compressed text file", path.display()))?;
        Ok(out)
    } else {
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))
    }
}

/// Checks response ids against `task`'s items: an error when none matches (a file for another
/// task, or ids in the wrong form), else the ids that match no item, sorted, for a warning.
pub fn unmatched_ids(
    task: &dyn crate::task::Task,
    responses: &HashMap<String, String>,
    source: &Path,
) -> Result<Vec<String>> {
    let items: std::collections::HashSet<String> =
        task.prompts().into_iter().map(|p| p.id).collect();
    let mut unmatched: Vec<String> = responses
        .keys()
        .filter(|id| !items.contains(*id))
        .cloned()
        .collect();
    unmatched.sort();
    if !responses.is_empty() && unmatched.len() == responses.len() {
        let mut expected: Vec<&String> = items.iter().collect();
        expected.sort();
        bail!(
            "{}: none of its {} response ids is an item of {} (first: {:?}; its ids look like {:?})",
            source.display(),
            responses.len(),
            task.name(),
            unmatched[0],
            expected.first().map(|s| s.as_str()).unwrap_or("")
        );
    }
    Ok(unmatched)
}
