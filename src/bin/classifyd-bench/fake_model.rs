//! The instant model of `load --classifier openai-fake`: an OpenAI-compatible
//! `/v1/chat/completions` endpoint inside the harness that answers at once with the first rule
//! of the request, so a load run measures everything around the model call (the `openai`
//! backend's request, parsing, concurrency limit) and nothing of a real model's time.

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// A running fake model; it stops when dropped.
pub struct FakeModel {
    /// `http://127.0.0.1:<port>/v1`, as `CLASSIFYD_OPENAI_BASE_URL` wants it.
    pub base_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl FakeModel {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let app = Router::new().route("/v1/chat/completions", post(complete));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, server })
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Answers with the first type the request's JSON schema allows (the rules, in order), or
/// null when the request carries no schema (the plainer formats of the backend's ladder).
async fn complete(Json(request): Json<Value>) -> Json<Value> {
    let label = request
        .pointer("/response_format/json_schema/schema/properties/type/enum/0")
        .cloned()
        .unwrap_or(Value::Null);
    let content = json!({
        "type": label,
        "confidence": 0.9,
        "reasoning": "the benchmark's instant model",
    })
    .to_string();
    Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }))
}
