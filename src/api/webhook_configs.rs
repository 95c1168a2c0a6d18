//! Saved webhook configurations (`/api/v1/beta/webhook-configs`, paginated list at
//! `/api/v2/webhook-configs`) and the checks every webhook target passes, saved or inline on a
//! job. URLs are checked for syntax here; their addresses are resolved and vetted at delivery
//! (a request handler does no DNS lookups), where a private address fails the delivery.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::classify_v2::page_size;
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::store::{micros_to_rfc3339, WebhookConfigRecord, WebhookTarget};

/// Every event name the llama-cloud 2.x SDK lists.
const EVENTS: &[&str] = &[
    "batch.cancelled",
    "batch.error",
    "batch.pending",
    "batch.running",
    "batch.success",
    "classify.cancelled",
    "classify.error",
    "classify.partial_success",
    "classify.pending",
    "classify.running",
    "classify.success",
    "extract.cancelled",
    "extract.error",
    "extract.partial_success",
    "extract.pending",
    "extract.success",
    "parse.cancelled",
    "parse.error",
    "parse.partial_success",
    "parse.pending",
    "parse.running",
    "parse.success",
    "sheets.cancelled",
    "sheets.error",
    "sheets.partial_success",
    "sheets.pending",
    "sheets.success",
    "split.cancelled",
    "split.error",
    "split.pending",
    "split.processing",
    "split.success",
    "unmapped_event",
    "verify.cancelled",
    "verify.error",
    "verify.pending",
    "verify.running",
    "verify.success",
];
/// Headers the delivery sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "lc-signature",
    "lc-event-id",
    "lc-event-type",
];
const MAX_URL_CHARS: usize = 2048;
const MAX_HEADERS: usize = 20;
const MAX_SECRET_CHARS: usize = 512;
/// Webhook targets one job may carry (inline and saved together).
pub const MAX_TARGETS: usize = 10;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/beta/webhook-configs", get(list_all).post(create))
        .route(
            "/api/v1/beta/webhook-configs/{config_id}",
            get(retrieve).put(update).patch(update).delete(delete),
        )
        .route("/api/v2/webhook-configs", get(list_paginated))
}

/// A webhook target as requests carry it (create, update, or inline on a job).
#[derive(Deserialize, Default)]
pub struct WebhookIn {
    pub webhook_url: Option<String>,
    pub webhook_events: Option<Vec<String>>,
    pub webhook_headers: Option<BTreeMap<String, String>>,
    pub webhook_output_format: Option<String>,
    pub webhook_signing_secret: Option<String>,
}

/// Checks a target, collecting every problem under `base` (e.g. `body.webhook_configurations.0`).
pub fn checked_target(input: WebhookIn, base: &[Value]) -> ApiResult<WebhookTarget> {
    let loc = |field: &str| -> Vec<Value> { base.iter().cloned().chain([json!(field)]).collect() };
    let mut errors = Vec::new();
    let url = input.webhook_url.unwrap_or_default().trim().to_string();
    let url_ok = url.chars().count() <= MAX_URL_CHARS
        && reqwest::Url::parse(&url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
    if !url_ok {
        errors.push(FieldError::new(
            loc("webhook_url"),
            format!("webhook_url must be an http(s) URL of at most {MAX_URL_CHARS} characters"),
        ));
    }
    if let Some(events) = &input.webhook_events {
        if events.is_empty() {
            errors.push(FieldError::new(
                loc("webhook_events"),
                "An empty webhook_events list subscribes to nothing; omit it (or send null) for every event",
            ));
        }
        for (i, event) in events.iter().enumerate() {
            if !EVENTS.contains(&event.as_str()) {
                errors.push(FieldError::new(
                    base.iter()
                        .cloned()
                        .chain([json!("webhook_events"), json!(i)])
                        .collect(),
                    format!("Unknown event {event:?}; events are named like classify.success"),
                ));
            }
        }
    }
    if let Some(headers) = &input.webhook_headers {
        if headers.len() > MAX_HEADERS {
            errors.push(FieldError::new(
                loc("webhook_headers"),
                format!("At most {MAX_HEADERS} headers are allowed"),
            ));
        }
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::try_from(name.as_str()).is_err()
                || reqwest::header::HeaderValue::try_from(value.as_str()).is_err()
            {
                errors.push(FieldError::new(
                    loc("webhook_headers"),
                    format!("{name:?} is not a valid HTTP header name and value"),
                ));
            } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                errors.push(FieldError::new(
                    loc("webhook_headers"),
                    format!("The header {name:?} is set by the server and cannot be overridden"),
                ));
            }
        }
    }
    let format = input
        .webhook_output_format
        .filter(|f| !f.is_empty())
        .map(|f| f.to_ascii_lowercase());
    if format
        .as_deref()
        .is_some_and(|f| f != "json" && f != "string")
    {
        errors.push(FieldError::new(
            loc("webhook_output_format"),
            "webhook_output_format must be \"json\" or \"string\"",
        ));
    }
    let secret = input.webhook_signing_secret.filter(|s| !s.is_empty());
    if secret
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SECRET_CHARS)
    {
        errors.push(FieldError::new(
            loc("webhook_signing_secret"),
            format!("webhook_signing_secret must be at most {MAX_SECRET_CHARS} characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(WebhookTarget {
        webhook_url: url,
        webhook_events: input.webhook_events,
        webhook_headers: input.webhook_headers,
        webhook_output_format: format,
        signing_secret: secret,
    })
}

fn config_json(record: &WebhookConfigRecord) -> Value {
    json!({
        "id": record.id,
        "has_secret": record.target.signing_secret.is_some(),
        "tenant_id": record.project_id,
        "tenant_type": "project",
        "webhook_url": record.target.webhook_url,
        "webhook_events": record.target.webhook_events,
        "webhook_headers": record.target.webhook_headers,
        "webhook_output_format": record.target.webhook_output_format,
        "created_at": micros_to_rfc3339(record.created_at),
        "updated_at": micros_to_rfc3339(record.updated_at),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Webhook configuration {id} not found"))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<Json<Value>> {
    let target = checked_target(body, &[json!("body")])?;
    let record = state
        .store
        .create_webhook_config(&caller.project_id, &target)
        .await?;
    Ok(Json(config_json(&record)))
}

/// The saved target `id` of the caller's project.
pub async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<WebhookConfigRecord> {
    state
        .store
        .get_webhook_config(&caller.project_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(config_json(&find(&state, &caller, &id).await?)))
}

/// Only the fields present change; `webhook_signing_secret` rotates the secret.
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<Json<Value>> {
    let current = find(&state, &caller, &id).await?.target;
    let merged = WebhookIn {
        webhook_url: body.webhook_url.or(Some(current.webhook_url)),
        webhook_events: body.webhook_events.or(current.webhook_events),
        webhook_headers: body.webhook_headers.or(current.webhook_headers),
        webhook_output_format: body.webhook_output_format.or(current.webhook_output_format),
        webhook_signing_secret: body.webhook_signing_secret.or(current.signing_secret),
    };
    let target = checked_target(merged, &[json!("body")])?;
    let record = state
        .store
        .update_webhook_config(&caller.project_id, &id, &target)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(config_json(&record)))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_webhook_config(&caller.project_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

/// The deprecated unpaginated list: a bare array, newest first (at most 1000).
async fn list_all(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let page = state
        .store
        .list_webhook_configs(&caller.project_id, None, 1000)
        .await?;
    Ok(Json(Value::Array(
        page.items.iter().map(config_json).collect(),
    )))
}

#[derive(Deserialize)]
struct ListQuery {
    page_size: Option<i64>,
    page_token: Option<String>,
    #[serde(default)]
    include_total: bool,
}

async fn list_paginated(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_size(q.page_size)?;
    let after = state.signer.cursor_after(
        "webhook_configs",
        &caller.project_id,
        q.page_token.as_deref(),
    )?;
    let page = state
        .store
        .list_webhook_configs(&caller.project_id, after.as_ref(), limit)
        .await?;
    let next = page.next.map(|cursor| {
        state
            .signer
            .page_token("webhook_configs", &caller.project_id, &cursor)
    });
    let mut body = json!({
        "items": page.items.iter().map(config_json).collect::<Vec<_>>(),
        "next_page_token": next,
    });
    if q.include_total {
        body["total_size"] = json!(
            state
                .store
                .count_webhook_configs(&caller.project_id)
                .await?
        );
    }
    Ok(Json(body))
}

/// A new job's webhook targets: its inline ones, then the saved ones it names (which must be
/// the caller's), checked and copied.
pub async fn job_targets(
    state: &AppState,
    caller: &Caller,
    inline: Option<Vec<WebhookIn>>,
    saved_ids: Option<Vec<String>>,
) -> ApiResult<Vec<WebhookTarget>> {
    let inline = inline.unwrap_or_default();
    let saved_ids = saved_ids.unwrap_or_default();
    if inline.len() + saved_ids.len() > MAX_TARGETS {
        return Err(ApiError::validation(
            vec![json!("body"), json!("webhook_configurations")],
            format!("A job may have at most {MAX_TARGETS} webhooks"),
        ));
    }
    let mut targets = Vec::with_capacity(inline.len() + saved_ids.len());
    for (i, input) in inline.into_iter().enumerate() {
        targets.push(checked_target(
            input,
            &[json!("body"), json!("webhook_configurations"), json!(i)],
        )?);
    }
    for id in saved_ids {
        targets.push(find(state, caller, &id).await?.target);
    }
    Ok(targets)
}
