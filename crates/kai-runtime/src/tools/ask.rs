//! `ask_user`: a step asks the owner a question and waits. The tool itself only describes the
//! call; the step runner ([`crate::tasks`]) stores the question, pauses the step until it is
//! answered and then hands the answer to the model — a re-run asks the same question once.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolSpec};

pub const ASK_USER: &str = "ask_user";

pub struct AskUser;

#[async_trait]
impl Tool for AskUser {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: ASK_USER.into(),
            description: "Ask the owner a question and wait for the answer. Use only when the step cannot be done without it.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"question": {"type": "string", "maxLength": 2000}},
                "required": ["question"],
                "additionalProperties": false,
            }).into(),
            risky: false,
        }
    }

    async fn call(&self, _ctx: &ToolContext, _args: Value) -> Result<Value, ToolError> {
        Err(ToolError::Unavailable("ask_user works only inside a task step".into()))
    }
}

/// The question of an `ask_user` call.
pub fn question_of(args: &Value) -> Result<String, ToolError> {
    let q = args["question"].as_str().map(str::trim).unwrap_or_default();
    if q.is_empty() || q.len() > 2000 {
        return Err(ToolError::InvalidArgs("question: 1 to 2000 bytes of text".into()));
    }
    Ok(q.to_owned())
}
