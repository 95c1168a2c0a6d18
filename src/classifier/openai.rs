//! The `openai` backend: any OpenAI-compatible `/chat/completions` endpoint (OpenAI, Azure
//! OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, providers' compatibility endpoints).
//!
//! Plain `reqwest` rather than an SDK crate: the fallbacks below need to see the endpoint's raw
//! answer (a refused `response_format`, a `logprobs` block, a half-written JSON body), which
//! typed SDK responses reject before we can read them.
//!
//! One classification is one chat request at temperature 0. The answer is asked for as
//! structured output (a JSON schema whose `type` is an enum of the rule types and null); an
//! endpoint that refuses that (400/422) is asked again with JSON mode, then with no
//! `response_format` and finally without `logprobs`, and the level that worked is remembered.
//! Whatever comes back is read tolerantly (code fences, prose around the JSON, a bare label).
//! A type that is not a rule becomes "no match", never a stored label.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::recording::{Recorder, Tape};
use super::{Answer, Classification, ClassifierError, ModelUsage, PageText, Rule};
use crate::settings::ModelSettings;

/// Characters per token, for the budget: a deliberate over-estimate for English prose
/// (≈4.2 for GPT tokenizers) so that the budget is rarely exceeded.
const CHARS_PER_TOKEN: usize = 4;
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest computed backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an endpoint's error body goes into a job's `error_message`.
const MAX_ERROR_CHARS: usize = 300;
/// Part of the result cache's key: change it whenever the prompt or the request changes in a
/// way that could change answers, so that answers to the old prompt are not served.
const PROMPT_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct OpenAiClassifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `…/v1`, without a trailing slash.
    base_url: String,
    api_key: Option<String>,
    model: String,
    /// For requests that carry page images.
    vision_model: String,
    timeout: Duration,
    max_retries: u32,
    retry_base: Duration,
    token_budget: usize,
    limit: AdaptiveLimit,
    /// Index into [`LADDER`] of the richest request format the endpoint has accepted so far.
    ladder: AtomicUsize,
    /// Recording or replaying the exchanges (`CLASSIFYD_MODEL_RECORD` / `_REPLAY`).
    tape: Option<Tape>,
}

/// Request formats from richest to plainest; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    JsonSchema,
    JsonObject,
    Plain,
}

const LADDER: [(Format, bool); 4] = [
    (Format::JsonSchema, true),
    (Format::JsonObject, true),
    (Format::Plain, true),
    (Format::Plain, false),
];

/// Why one request did not produce an answer.
enum Failure {
    /// Worth retrying after a wait (429, 5xx, timeout, connection error, unreadable answer).
    Transient {
        message: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
    /// The endpoint refused the request's shape (400/422): try the next format.
    Refused(String),
    /// Retrying cannot help (401, 403, 404, …).
    Final(String),
    /// Replaying, and the recording has no answer to this request: try the next format.
    Unrecorded(String),
}

impl OpenAiClassifier {
    pub fn new(settings: &ModelSettings) -> anyhow::Result<Self> {
        let base_url = settings
            .openai_base_url
            .clone()
            .or_else(|| non_empty_env("OPENAI_BASE_URL"))
            .unwrap_or_else(|| "https://api.openai.com/v1".into());
        let base_url = base_url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base_url.starts_with("http://") || base_url.starts_with("https://"),
            "CLASSIFYD_OPENAI_BASE_URL must be an http(s) URL (got {:?})",
            redact_url(&base_url)
        );
        let api_key = settings
            .openai_api_key
            .clone()
            .or_else(|| non_empty_env("OPENAI_API_KEY"))
            .filter(|key| !key.is_empty());
        anyhow::ensure!(
            !settings.model.trim().is_empty(),
            "CLASSIFYD_MODEL must name a model"
        );
        let timeout = Duration::from_secs(settings.model_timeout_seconds.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                api_key,
                model: settings.model.trim().to_string(),
                vision_model: settings
                    .vision_model
                    .as_deref()
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .unwrap_or(settings.model.trim())
                    .to_string(),
                timeout,
                max_retries: settings.model_max_retries,
                retry_base: Duration::from_millis(settings.model_retry_base_ms),
                token_budget: settings.token_budget.max(1),
                limit: AdaptiveLimit::new(settings.model_concurrency.max(1)),
                ladder: AtomicUsize::new(0),
                tape: Tape::from_settings(
                    settings.model_record.as_deref(),
                    settings.model_replay.as_deref(),
                )?,
            }),
        })
    }

    /// Whether exchanges are being recorded or replayed (`CLASSIFYD_MODEL_RECORD` / `_REPLAY`).
    pub fn is_taped(&self) -> bool {
        self.inner.tape.is_some()
    }

    /// The endpoint, model, prompt version and token budget, as the result cache keys them.
    pub fn cache_identity(&self, multimodal: bool) -> String {
        let inner = &self.inner;
        let model = if multimodal {
            &inner.vision_model
        } else {
            &inner.model
        };
        json!({
            "base_url": redact_url(&inner.base_url),
            "model": model,
            "prompt": PROMPT_VERSION,
            "token_budget": inner.token_budget,
        })
        .to_string()
    }

    pub async fn classify(
        &self,
        rules: &[Rule],
        pages: Vec<PageText>,
    ) -> Result<Answer, ClassifierError> {
        let inner = &self.inner;
        let (pages, trimmed) = fit_to_budget(pages, inner.token_budget);
        let messages = messages(rules, &pages);
        let model = if pages.iter().any(|p| p.image.is_some()) {
            &inner.vision_model
        } else {
            &inner.model
        };
        let mut usage = ModelUsage {
            trimmed,
            ..ModelUsage::default()
        };
        // A replay walks every format from the richest: the recorded run may have reached a
        // request's format in another order.
        let mut level = match inner.tape {
            Some(Tape::Replay(_)) => 0,
            _ => inner.ladder.load(Ordering::Relaxed),
        };
        let mut retries = 0;
        loop {
            let (format, logprobs) = LADDER[level];
            let body = request_body(model, &messages, rules, format, logprobs);
            usage.model_calls += 1;
            let outcome = {
                let _permit = inner.limit.acquire().await;
                let started = std::time::Instant::now();
                let outcome = self.send(&body).await;
                record_call(started.elapsed(), &outcome);
                outcome
            };
            let failure = match outcome {
                Ok(response) => {
                    add_usage(&mut usage, &response);
                    match read_answer(&response, rules) {
                        Some(answer) => {
                            inner.limit.succeeded();
                            if level > inner.ladder.load(Ordering::Relaxed) {
                                inner.ladder.fetch_max(level, Ordering::Relaxed);
                                tracing::info!(?format, logprobs, "the model endpoint accepted a plainer request format; using it from now on");
                            }
                            usage.confidence_source = Some(answer.confidence_source.into());
                            return Ok(Answer {
                                classification: answer.classification,
                                usage,
                            });
                        }
                        None => Failure::Transient {
                            message: format!(
                                "the model's answer could not be read as a classification: {}",
                                excerpt(&answer_text(&response))
                            ),
                            retry_after: None,
                            rate_limited: false,
                        },
                    }
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Refused(message) if level + 1 < LADDER.len() => {
                    tracing::info!(%message, ?format, logprobs, "the model endpoint refused the request format; trying a plainer one");
                    level += 1;
                }
                Failure::Refused(message) | Failure::Final(message) => {
                    return Err(self.error(model, &message, usage.model_calls));
                }
                Failure::Unrecorded(message) => {
                    // Nothing was sent.
                    usage.model_calls -= 1;
                    if level + 1 == LADDER.len() {
                        return Err(ClassifierError::Model(message));
                    }
                    level += 1;
                }
                Failure::Transient {
                    message,
                    retry_after,
                    rate_limited,
                } => {
                    if rate_limited {
                        inner.limit.rate_limited();
                    }
                    if retries >= inner.max_retries {
                        return Err(self.error(model, &message, usage.model_calls));
                    }
                    let wait = backoff(inner.retry_base, retries, retry_after);
                    tracing::info!(%message, wait_ms = wait.as_millis() as u64, "model request failed; retrying");
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn send(&self, body: &Value) -> Result<Value, Failure> {
        let inner = &self.inner;
        if let Some(Tape::Replay(replay)) = &inner.tape {
            let exchange = replay.lookup(body).ok_or_else(|| {
                Failure::Unrecorded(replay.miss_message(body["model"].as_str().unwrap_or("")))
            })?;
            return self.read_response(exchange.status, None, &exchange.body);
        }
        let mut request = inner
            .http
            .post(format!("{}/chat/completions", inner.base_url))
            .json(body);
        if let Some(key) = &inner.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_failure(e))?;
        if let Some(Tape::Record(recorder)) = &inner.tape {
            if Recorder::keeps(status.as_u16()) {
                recorder
                    .record(body, status.as_u16(), &text)
                    .map_err(Failure::Final)?;
            }
        }
        self.read_response(status.as_u16(), retry_after, &text)
    }

    /// An endpoint's answer, live or replayed, as a response or a failure.
    fn read_response(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        text: &str,
    ) -> Result<Value, Failure> {
        if (200..300).contains(&status) {
            return serde_json::from_str(text).map_err(|e| Failure::Transient {
                message: format!(
                    "the endpoint's response is not JSON ({e}): {}",
                    excerpt(text)
                ),
                retry_after: None,
                rate_limited: false,
            });
        }
        let message = format!("HTTP {status}: {}", self.endpoint_message(text));
        Err(match status {
            429 => Failure::Transient {
                message,
                retry_after,
                rate_limited: true,
            },
            408 | 409 | 500..=599 => Failure::Transient {
                message,
                retry_after,
                rate_limited: false,
            },
            400 | 422 => Failure::Refused(message),
            _ => Failure::Final(message),
        })
    }

    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        let message = if error.is_timeout() {
            format!(
                "no answer within {} s (CLASSIFYD_MODEL_TIMEOUT_SECONDS)",
                self.inner.timeout.as_secs()
            )
        } else if error.is_connect() {
            format!("cannot connect ({})", root_cause(&error))
        } else {
            format!("the request failed ({})", root_cause(&error))
        };
        Failure::Transient {
            message,
            retry_after: None,
            rate_limited: false,
        }
    }

    /// The `error.message` of an OpenAI-style error body, else the body's beginning; never the key.
    fn endpoint_message(&self, body: &str) -> String {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .or_else(|| v.get("detail"))
                    .and_then(|m| m.as_str().map(str::to_string))
            })
            .unwrap_or_else(|| body.to_string());
        let message = match &self.inner.api_key {
            Some(key) if key.len() >= 4 => message.replace(key.as_str(), "[redacted]"),
            _ => message,
        };
        excerpt(&message)
    }

    fn error(&self, model: &str, message: &str, calls: u64) -> ClassifierError {
        let attempts = if calls == 1 {
            "1 request".to_string()
        } else {
            format!("{calls} requests")
        };
        ClassifierError::Model(format!(
            "The model endpoint {} (model {}) gave no usable answer after {attempts}; last: {message}",
            redact_url(&self.inner.base_url),
            model
        ))
    }
}

/// One request in the `classifyd_model_*` metrics.
fn record_call(elapsed: Duration, outcome: &Result<Value, Failure>) {
    use crate::monitoring::ModelCall;
    let call = match outcome {
        Ok(response) => {
            let count = |name: &str| {
                response
                    .pointer(&format!("/usage/{name}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            ModelCall::Ok {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
            }
        }
        Err(Failure::Transient {
            rate_limited: true, ..
        }) => ModelCall::Error {
            kind: "rate_limited",
        },
        Err(Failure::Transient { .. }) => ModelCall::Error {
            kind: "server_error",
        },
        Err(Failure::Refused(_)) => ModelCall::Error { kind: "refused" },
        Err(Failure::Final(_)) => ModelCall::Error {
            kind: "client_error",
        },
        Err(Failure::Unrecorded(_)) => ModelCall::Error { kind: "unrecorded" },
    };
    crate::monitoring::record_model_call("openai", elapsed, call);
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A URL without any `user:password@` part.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX_ERROR_CHARS).collect();
    format!("{cut}…")
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Exponential backoff with "equal jitter" (half fixed, half random), never shorter than the
/// endpoint's `Retry-After`.
fn backoff(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(MAX_BACKOFF);
    let jitter = exponential.mul_f64(0.5 * random_fraction());
    let computed = exponential / 2 + jitter;
    match retry_after {
        Some(wait) => wait.max(computed.min(base)),
        None => computed,
    }
}

fn random_fraction() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// Cuts the pages' text to `budget` tokens. Each page keeps its beginning (titles and headers
/// say most about a document's type); the first pages get the larger shares, and what a
/// short page does not use goes to the others.
pub(crate) fn fit_to_budget(pages: Vec<PageText>, budget: usize) -> (Vec<PageText>, bool) {
    let budget_chars = budget.saturating_mul(CHARS_PER_TOKEN);
    let lengths: Vec<usize> = pages.iter().map(|p| p.text.chars().count()).collect();
    if lengths.iter().sum::<usize>() <= budget_chars {
        return (pages, false);
    }
    // Water-filling with weights 1/(rank+1): pages shorter than their share keep everything
    // and free the rest for the pages after them.
    let weight = |i: usize| 1.0 / (i as f64 + 1.0);
    let mut allowance = vec![0usize; pages.len()];
    let mut open: Vec<usize> = (0..pages.len()).collect();
    let mut left = budget_chars;
    loop {
        let total_weight: f64 = open.iter().map(|&i| weight(i)).sum();
        let (fits, rest): (Vec<usize>, Vec<usize>) = open
            .iter()
            .partition(|&&i| lengths[i] as f64 <= left as f64 * weight(i) / total_weight);
        if fits.is_empty() {
            for &i in &rest {
                allowance[i] = (left as f64 * weight(i) / total_weight) as usize;
            }
            break;
        }
        for &i in &fits {
            allowance[i] = lengths[i];
            left -= lengths[i];
        }
        open = rest;
        if open.is_empty() {
            break;
        }
    }
    let pages = pages
        .into_iter()
        .zip(allowance)
        .map(|(page, keep)| PageText {
            text: keep_beginning(&page.text, keep),
            ..page
        })
        .collect();
    (pages, true)
}

/// The first `chars` characters, cut back to a word boundary, marked as cut.
fn keep_beginning(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(chars).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(at) if at > cut.len() / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    format!("{} […]", cut.trim_end())
}

fn messages(rules: &[Rule], pages: &[PageText]) -> Vec<Value> {
    let mut system = String::from(
        "You classify documents. Choose the one document type below whose description fits the document, or null if none fits.\n\nTypes:\n",
    );
    for rule in rules {
        system.push_str(&format!("- {}: {}\n", rule.label, rule.description));
    }
    system.push_str(
        "\nAnswer with JSON only: {\"type\": <one of the types above, or null>, \"confidence\": <0 to 1>, \"reasoning\": <one short sentence citing the evidence>}",
    );
    let user = if pages.iter().any(|p| p.image.is_some()) {
        // Vision: each page's text (if any) followed by its image.
        let mut parts = Vec::new();
        for page in pages {
            let mut text = format!("--- page {} ---", page.number);
            if !page.text.trim().is_empty() {
                text.push('\n');
                text.push_str(page.text.trim());
            }
            parts.push(json!({"type": "text", "text": text}));
            if let Some(image) = &page.image {
                parts.push(json!({"type": "image_url", "image_url": {"url": image.data_url()}}));
            }
        }
        Value::Array(parts)
    } else {
        let mut document = String::new();
        for page in pages {
            document.push_str(&format!(
                "--- page {} ---\n{}\n",
                page.number,
                page.text.trim()
            ));
        }
        Value::String(document)
    };
    vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": user}),
    ]
}

fn request_body(
    model: &str,
    messages: &[Value],
    rules: &[Rule],
    format: Format,
    logprobs: bool,
) -> Value {
    let mut body = json!({
        "model": model,
        "messages": messages,
        "temperature": 0,
    });
    match format {
        Format::JsonSchema => {
            let mut types: Vec<Value> = rules.iter().map(|r| json!(r.label)).collect();
            types.push(Value::Null);
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "classification",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": {
                            "type": {"type": ["string", "null"], "enum": types},
                            "confidence": {"type": "number"},
                            "reasoning": {"type": "string"},
                        },
                        "required": ["type", "confidence", "reasoning"],
                        "additionalProperties": false,
                    },
                },
            });
        }
        Format::JsonObject => body["response_format"] = json!({"type": "json_object"}),
        Format::Plain => {}
    }
    if logprobs {
        body["logprobs"] = json!(true);
    }
    body
}

fn add_usage(usage: &mut ModelUsage, response: &Value) {
    let count = |name: &str| {
        response
            .pointer(&format!("/usage/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    usage.prompt_tokens += count("prompt_tokens");
    usage.completion_tokens += count("completion_tokens");
}

fn answer_text(response: &Value) -> String {
    let message = response.pointer("/choices/0/message");
    message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .or_else(|| {
            message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string()
}

struct ReadAnswer {
    classification: Classification,
    confidence_source: &'static str,
}

/// The classification in a chat completion, or `None` when the answer names no type at all.
fn read_answer(response: &Value, rules: &[Rule]) -> Option<ReadAnswer> {
    let text = answer_text(response);
    let parsed = parse_answer(&text, rules)?;
    let label = match &parsed.label {
        Some(said) => rules
            .iter()
            .find(|r| r.label.eq_ignore_ascii_case(said.trim()))
            .map(|r| r.label.clone())
            .ok_or_else(|| said.trim().to_string()),
        None => Ok(String::new()),
    };
    let label_logprob = parsed
        .span
        .clone()
        .and_then(|span| span_logprob(response, &text, span));
    let (confidence, source) = match (label_logprob, parsed.confidence) {
        (Some(logprob), _) => (logprob.exp(), "logprobs"),
        (None, Some(stated)) => (stated, "stated"),
        (None, None) => (0.5, "stated"),
    };
    let confidence = if confidence.is_finite() {
        confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let reasoning = parsed
        .reasoning
        .filter(|r| !r.trim().is_empty())
        .map(|r| excerpt_long(r.trim()));
    let classification = match label {
        Ok(label) if label.is_empty() => Classification {
            label: None,
            confidence,
            reasoning: reasoning
                .unwrap_or_else(|| "The model found that no rule fits the document.".into()),
        },
        Ok(label) => Classification {
            reasoning: reasoning.unwrap_or_else(|| format!("The model chose '{label}'.")),
            label: Some(label),
            confidence,
        },
        Err(unknown) => Classification {
            label: None,
            confidence: 0.0,
            reasoning: format!(
                "The model answered {unknown:?}, which is not one of the rules' types; treated as no match.{}",
                reasoning.map(|r| format!(" Its reasoning: {r}")).unwrap_or_default()
            ),
        },
    };
    Some(ReadAnswer {
        classification,
        confidence_source: source,
    })
}

fn excerpt_long(text: &str) -> String {
    if text.chars().count() <= 2000 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(2000).collect::<String>())
    }
}

#[derive(Debug, PartialEq)]
struct Parsed {
    /// The type as the model wrote it; `None` = no rule fits.
    label: Option<String>,
    confidence: Option<f64>,
    reasoning: Option<String>,
    /// Byte range in the answer text of the tokens that carry the choice (the label or `null`).
    span: Option<Range<usize>>,
}

/// Reads an answer: JSON (possibly in a code fence or among prose), else a `"type": "…"`
/// fragment of broken JSON, else the first rule type named in the text.
fn parse_answer(text: &str, rules: &[Rule]) -> Option<Parsed> {
    if let Some(parsed) = parse_json(text) {
        return Some(parsed);
    }
    if let Some((label, span)) = type_field(text) {
        return Some(Parsed {
            label,
            confidence: None,
            reasoning: None,
            span: Some(span),
        });
    }
    let lower = text.to_lowercase();
    let named = rules
        .iter()
        .filter_map(|rule| {
            find_word(&lower, &rule.label.to_lowercase()).map(|at| (at, rule.label.len(), rule))
        })
        .min_by_key(|(at, _, _)| *at);
    if let Some((at, len, rule)) = named {
        return Some(Parsed {
            label: Some(rule.label.clone()),
            confidence: None,
            reasoning: Some(text.trim().to_string()),
            span: Some(at..at + len),
        });
    }
    ["null", "none", "no match"]
        .iter()
        .find_map(|word| find_word(&lower, word).map(|at| at..at + word.len()))
        .map(|span| Parsed {
            label: None,
            confidence: None,
            reasoning: Some(text.trim().to_string()),
            span: Some(span),
        })
}

fn parse_json(text: &str) -> Option<Parsed> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let object: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let object = object.as_object()?;
    let field = ["type", "label", "class", "category"]
        .iter()
        .find(|k| object.contains_key(**k))?;
    let label = match &object[*field] {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() || s.eq_ignore_ascii_case("null") => None,
        Value::String(s) => Some(s.clone()),
        _ => return None,
    };
    let confidence = match object.get("confidence") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => {
            s.trim().trim_end_matches('%').parse().ok().map(
                |v: f64| {
                    if v > 1.0 {
                        v / 100.0
                    } else {
                        v
                    }
                },
            )
        }
        _ => None,
    };
    let reasoning = object
        .get("reasoning")
        .and_then(Value::as_str)
        .map(str::to_string);
    let span = type_field(&text[start..])
        .map(|(_, span)| span.start + start..span.end + start)
        .filter(|span| text.get(span.clone()).is_some());
    Some(Parsed {
        label,
        confidence,
        reasoning,
        span,
    })
}

/// Finds `"type": "label"` or `"type": null` and returns the value with its byte range.
fn type_field(text: &str) -> Option<(Option<String>, Range<usize>)> {
    let key = text.find("\"type\"")?;
    let after_key = key + "\"type\"".len();
    let rest = &text[after_key..];
    let colon = rest.find(':')?;
    if !rest[..colon].trim().is_empty() {
        return None;
    }
    let value_start = after_key + colon + 1;
    let value = &text[value_start..];
    let skipped = value.len() - value.trim_start().len();
    let at = value_start + skipped;
    let value = &text[at..];
    if value.starts_with("null") {
        return Some((None, at..at + 4));
    }
    let inner = value.strip_prefix('"')?;
    let end = inner.find('"')?;
    let label = &inner[..end];
    (!label.is_empty()).then(|| (Some(label.to_string()), at + 1..at + 1 + end))
}

/// Byte offset of `word` in `text` where it is not part of a longer word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back().is_none_or(|c| !is_word(c));
        let after = text[at + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word(c));
        before && after
    })
}

/// The summed log-probability of the tokens covering `span` of the answer, when the endpoint
/// returned `logprobs` and its tokens spell out the answer text.
fn span_logprob(response: &Value, text: &str, span: Range<usize>) -> Option<f64> {
    let tokens = response
        .pointer("/choices/0/logprobs/content")?
        .as_array()?;
    let mut offset = 0;
    let mut sum = 0.0;
    let mut covered = false;
    for token in tokens {
        let piece = token.get("token")?.as_str()?;
        let logprob = token.get("logprob")?.as_f64()?;
        let range = offset..offset + piece.len();
        if text.get(range.clone()) != Some(piece) {
            return None;
        }
        if range.start < span.end && span.start < range.end {
            sum += logprob;
            covered = true;
        }
        offset = range.end;
        if offset >= span.end {
            break;
        }
    }
    covered.then_some(sum)
}

/// A concurrency limit toward the model that halves when the endpoint answers 429 and grows
/// back by one after each `limit` successes in a row (additive increase, multiplicative
/// decrease), between 1 and the configured maximum.
#[derive(Debug)]
struct AdaptiveLimit {
    semaphore: Semaphore,
    max: usize,
    state: Mutex<LimitState>,
}

#[derive(Debug)]
struct LimitState {
    limit: usize,
    /// Permits to retire as they come back, after a decrease.
    to_retire: usize,
    successes: usize,
}

struct LimitPermit<'a> {
    permit: Option<SemaphorePermit<'a>>,
    owner: &'a AdaptiveLimit,
}

impl Drop for LimitPermit<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.owner.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.to_retire > 0 {
            state.to_retire -= 1;
            permit.forget();
        }
    }
}

impl AdaptiveLimit {
    fn new(max: usize) -> Self {
        Self {
            semaphore: Semaphore::new(max),
            max,
            state: Mutex::new(LimitState {
                limit: max,
                to_retire: 0,
                successes: 0,
            }),
        }
    }

    async fn acquire(&self) -> LimitPermit<'_> {
        LimitPermit {
            permit: self.semaphore.acquire().await.ok(),
            owner: self,
        }
    }

    fn rate_limited(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let target = (state.limit / 2).max(1);
        if target < state.limit {
            tracing::info!(
                from = state.limit,
                to = target,
                "the model endpoint answered 429; lowering concurrency"
            );
        }
        state.to_retire += state.limit - target;
        state.to_retire -= self.semaphore.forget_permits(state.to_retire);
        state.limit = target;
        state.successes = 0;
    }

    fn succeeded(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.limit >= self.max {
            return;
        }
        state.successes += 1;
        if state.successes >= state.limit {
            state.successes = 0;
            state.limit += 1;
            if state.to_retire > 0 {
                state.to_retire -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }

    #[cfg(test)]
    fn current(&self) -> usize {
        self.state.lock().unwrap().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        ["invoice", "contract"]
            .iter()
            .map(|t| Rule {
                label: t.to_string(),
                description: format!("a {t}"),
            })
            .collect()
    }

    #[test]
    fn answers_are_read_from_json_fences_fragments_and_prose() {
        let rules = rules();
        let json = parse_answer(
            "```json\n{\"type\": \"invoice\", \"confidence\": 0.8, \"reasoning\": \"total due\"}\n```",
            &rules,
        )
        .unwrap();
        assert_eq!(json.label.as_deref(), Some("invoice"));
        assert_eq!(json.confidence, Some(0.8));
        assert_eq!(json.reasoning.as_deref(), Some("total due"));
        let broken = parse_answer("{\"type\": \"contract\", \"confidence\": 0.", &rules).unwrap();
        assert_eq!(broken.label.as_deref(), Some("contract"));
        let prose = parse_answer("This looks like an Invoice to me.", &rules).unwrap();
        assert_eq!(prose.label.as_deref(), Some("invoice"));
        let none = parse_answer("{\"type\": null, \"confidence\": \"90%\"}", &rules).unwrap();
        assert_eq!(none.label, None);
        assert_eq!(none.confidence, Some(0.9));
        assert!(parse_answer("I cannot help with that.", &rules).is_none());
        // "contracts" is not the word "contract".
        assert!(parse_answer("subcontractors", &rules).is_none());
    }

    #[test]
    fn logprobs_of_the_label_tokens_give_the_confidence() {
        let text = "{\"type\": \"invoice\", \"confidence\": 0.99}";
        let pieces = [
            ("{\"", -0.0),
            ("type", -0.0),
            ("\":", -0.0),
            (" \"", -0.0),
            ("inv", -0.2),
            ("oice", -0.1),
            ("\",", -0.0),
            (" \"confidence\": 0.99}", -0.5),
        ];
        let response = json!({
            "choices": [{"message": {"content": text}, "logprobs": {"content":
                pieces.iter().map(|(t, l)| json!({"token": t, "logprob": l})).collect::<Vec<_>>()}}]
        });
        let answer = read_answer(&response, &rules()).unwrap();
        assert_eq!(answer.confidence_source, "logprobs");
        assert!((answer.classification.confidence - (-0.3f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn unknown_types_are_no_match() {
        let response = json!({"choices": [{"message": {"content": "{\"type\": \"receipt\", \"confidence\": 0.9, \"reasoning\": \"a till slip\"}"}}]});
        let answer = read_answer(&response, &rules()).unwrap();
        assert_eq!(answer.classification.label, None);
        assert_eq!(answer.classification.confidence, 0.0);
        assert!(answer.classification.reasoning.contains("\"receipt\""));
    }

    #[test]
    fn the_budget_keeps_each_pages_beginning_and_favours_the_first() {
        let page = |number: usize, words: usize| PageText {
            number,
            text: vec!["word"; words].join(" "),
            image: None,
        };
        let (same, trimmed) = fit_to_budget(vec![page(1, 10)], 100);
        assert!(!trimmed);
        assert_eq!(same[0].text, page(1, 10).text);
        let (cut, trimmed) = fit_to_budget(vec![page(1, 1000), page(2, 20), page(3, 1000)], 500);
        assert!(trimmed);
        assert_eq!(cut[1].text, page(2, 20).text, "a short page stays whole");
        assert!(cut[0].text.starts_with("word word"));
        assert!(cut[0].text.ends_with("[…]"));
        assert!(
            cut[0].text.len() > cut[2].text.len(),
            "the first page weighs most"
        );
        let total: usize = cut.iter().map(|p| p.text.chars().count()).sum();
        assert!(total <= 500 * CHARS_PER_TOKEN + 20, "{total}");
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 0, None);
        assert!(first >= Duration::from_millis(50) && first <= base);
        let third = backoff(base, 2, None);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(backoff(base, 0, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("9999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn urls_and_keys_stay_out_of_messages() {
        assert_eq!(
            redact_url("https://user:secret@example.com/v1"),
            "https://example.com/v1"
        );
        assert_eq!(
            redact_url("http://localhost:11434/v1"),
            "http://localhost:11434/v1"
        );
    }

    #[tokio::test]
    async fn concurrency_halves_on_429_and_recovers() {
        let limit = AdaptiveLimit::new(8);
        limit.rate_limited();
        assert_eq!(limit.current(), 4);
        limit.rate_limited();
        assert_eq!(limit.current(), 2);
        assert_eq!(limit.semaphore.available_permits(), 2);
        // Permits held during a decrease are retired when they come back.
        let held = limit.acquire().await;
        limit.rate_limited();
        assert_eq!(limit.current(), 1);
        assert_eq!(limit.semaphore.available_permits(), 0);
        drop(held);
        assert_eq!(limit.semaphore.available_permits(), 1);
        for _ in 0..20 {
            limit.succeeded();
        }
        assert!(limit.current() > 1);
        for _ in 0..100 {
            limit.succeeded();
        }
        assert_eq!(limit.current(), 8);
        assert_eq!(limit.semaphore.available_permits(), 8);
    }
}
