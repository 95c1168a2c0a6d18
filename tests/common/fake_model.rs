//! The one fake in the suite: a small OpenAI-compatible chat endpoint on a random port. It
//! records every request it receives and answers each from the test's script, so a test can
//! make the model agree, refuse a request format, rate-limit, fail, stall or babble.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub body: Value,
    pub authorization: Option<String>,
}

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A chat completion whose message content is `content`; with `logprobs`, the content is
    /// split into tokens and `label` (if found in it) gets the given probability, the other
    /// tokens probability 1.
    Content {
        content: String,
        logprobs: Option<(String, f64)>,
    },
    /// An error status with a JSON body and an optional `Retry-After` (seconds).
    Status {
        status: u16,
        body: Value,
        retry_after: Option<u64>,
    },
    /// A 200 whose body is not JSON at all.
    RawBody(String),
    /// Waits, then answers.
    Slow(Duration, Box<Reply>),
}

impl Reply {
    /// The model chooses `label` (or null) with a stated confidence, as structured JSON.
    pub fn answer(label: Option<&str>, confidence: f64) -> Self {
        Self::Content {
            content: json!({"type": label, "confidence": confidence,
                            "reasoning": "the fake model read the document"})
            .to_string(),
            logprobs: None,
        }
    }

    /// Like [`Reply::answer`], with token log-probabilities giving the label probability `p`.
    pub fn answer_with_logprobs(label: &str, stated: f64, p: f64) -> Self {
        match Self::answer(Some(label), stated) {
            Self::Content { content, .. } => Self::Content {
                content,
                logprobs: Some((label.to_string(), p)),
            },
            other => other,
        }
    }

    pub fn text(content: &str) -> Self {
        Self::Content {
            content: content.to_string(),
            logprobs: None,
        }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Self::Status {
            status,
            body: json!({"error": {"message": message, "type": "fake_error"}}),
            retry_after: None,
        }
    }
}

type Script = dyn Fn(usize, &Value) -> Reply + Send + Sync;

#[derive(Clone)]
struct FakeState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Script>,
}

pub struct FakeModel {
    /// Base URL including `/v1`, as `CLASSIFYD_OPENAI_BASE_URL` takes it.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeModel {
    /// Starts the fake; `script(n, body)` answers the `n`-th request (0-based).
    pub async fn start(script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            requests: requests.clone(),
            script: Arc::new(script),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/v1"),
            requests,
            _stop: stop,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn complete(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let n = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Recorded {
            at: Instant::now(),
            body: body.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        requests.len() - 1
    };
    let mut reply = (state.script)(n, &body);
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Content { content, logprobs } => {
            let mut choice = json!({
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            });
            if let Some((label, p)) = logprobs {
                choice["logprobs"] = json!({"content": tokens(&content, &label, p)});
            }
            Json(json!({
                "id": format!("chatcmpl-fake-{n}"),
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            }))
            .into_response()
        }
        Reply::Status {
            status,
            body,
            retry_after,
        } => {
            let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            response
        }
        Reply::RawBody(text) => (StatusCode::OK, text).into_response(),
        Reply::Slow(..) => unreachable!("unwrapped above"),
    }
}

/// Splits `content` into tokens of up to 4 characters, the label as two tokens whose
/// log-probabilities add up to ln(p).
fn tokens(content: &str, label: &str, p: f64) -> Vec<Value> {
    let mut out = Vec::new();
    let quoted = format!("\"{label}\"");
    let (before, after) = match content.find(&quoted) {
        Some(at) => (&content[..at + 1], &content[at + 1 + label.len()..]),
        None => (content, ""),
    };
    let push_chunks = |text: &str, out: &mut Vec<Value>| {
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(4) {
            out.push(json!({"token": chunk.iter().collect::<String>(), "logprob": 0.0, "top_logprobs": []}));
        }
    };
    push_chunks(before, &mut out);
    if content.contains(&quoted) {
        let split = label.len() / 2;
        let half = p.ln() / 2.0;
        for piece in [&label[..split], &label[split..]] {
            out.push(json!({"token": piece, "logprob": half, "top_logprobs": []}));
        }
    }
    push_chunks(after, &mut out);
    out
}
