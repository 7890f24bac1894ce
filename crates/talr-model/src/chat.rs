//! Chat data as it crosses crate boundaries: a message, and a training example (the messages a
//! prompt is rendered from plus the target reply the loss sees). Domain benchmarks produce
//! examples, `talr data` writes them as JSONL, and the trainer reads and tokenises them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// One training example, and one line of a training JSONL file:
/// `{"id": ..., "messages": [{"role": "user", "content": "..."}], "target": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatExample {
    /// Optional identifier carried into logs (a benchmark row number, an example id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    pub messages: Vec<ChatMessage>,
    pub target: String,
}

impl ChatExample {
    /// A system message (where the benchmark prescribes one) and a user message.
    pub fn new(
        id: impl Into<serde_json::Value>,
        system: Option<String>,
        user: String,
        target: String,
    ) -> Self {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: system,
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: user,
        });
        Self {
            id: Some(id.into()),
            messages,
            target,
        }
    }
}
