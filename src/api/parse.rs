//! Parse v2 (`/api/v2/parse`), the part classify needs: a parse job extracts a file's text once
//! (the same sandboxed extraction classify uses; `tier` and the other options are recorded
//! and otherwise ignored) so that `POST /api/v2/classify` with `file_input: "pjb-…"` classifies
//! that text without reading the file again. Parse jobs are jobs with `api = 'parse'`, run by
//! the same worker queue, and report `parse.*` webhook events.

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::classify_v2::{list_filter, page_size, ListFilterQuery};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::files::{extension, malformed, sanitize_name, store_part};
use super::webhook_configs::{job_targets, WebhookIn};
use super::AppState;
use crate::document::PageSelection;
use crate::store::{
    micros_to_rfc3339, FileRecord, JobRecord, JobTransition, NewFile, NewJob, PageRanges,
    ParseOptions, ParsedText, WebhookTarget,
};

pub const API: &str = "parse";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/parse", post(create).get(list))
        .route(
            "/api/v2/parse/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v2/parse/versions", get(versions))
        .route("/api/v2/parse/{job_id}", get(retrieve).delete(delete))
        .route("/api/v2/parse/{job_id}/cancel", post(cancel))
}

#[derive(Deserialize)]
struct CreateBody {
    tier: Option<String>,
    version: Option<String>,
    file_id: Option<String>,
    source_url: Option<String>,
    configuration_id: Option<String>,
    page_ranges: Option<PageRanges>,
    user_metadata: Option<BTreeMap<String, String>>,
    webhook_configurations: Option<Vec<WebhookIn>>,
    webhook_configuration_ids: Option<Vec<String>>,
}

/// Checks the options common to both ways of creating a parse job.
fn checked_options(body: &CreateBody) -> ApiResult<ParseOptions> {
    for (field, value) in [("tier", &body.tier), ("version", &body.version)] {
        if value.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::validation(
                vec![json!("body"), json!(field)],
                "Field required",
            ));
        }
    }
    if body.source_url.as_deref().is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::validation(
            vec![json!("body"), json!("source_url")],
            "source_url is not supported by this server: upload the file and pass file_id",
        ));
    }
    if let Some(id) = body.configuration_id.as_deref().filter(|c| !c.is_empty()) {
        return Err(ApiError::validation(
            vec![json!("body"), json!("configuration_id")],
            format!("Saved parse configurations ({id}) are not supported by this server; pass the options inline"),
        ));
    }
    let options = ParseOptions {
        tier: body.tier.clone(),
        version: body.version.clone(),
        name: None,
        page_ranges: body.page_ranges.clone(),
        user_metadata: body.user_metadata.clone(),
    };
    if let Err(message) = page_selection(&options) {
        let field = if message.starts_with("max_pages") {
            "max_pages"
        } else {
            "target_pages"
        };
        return Err(ApiError::validation(
            vec![json!("body"), json!("page_ranges"), json!(field)],
            message,
        ));
    }
    Ok(options)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let options = checked_options(&body)?;
    let Some(file_id) = body.file_id.as_deref().filter(|f| !f.is_empty()) else {
        return Err(ApiError::validation(
            vec![json!("body"), json!("file_id")],
            "A document is required: pass file_id (a file uploaded to /api/v1/beta/files)",
        ));
    };
    let webhooks = job_targets(
        &state,
        &caller,
        body.webhook_configurations,
        body.webhook_configuration_ids,
    )
    .await?;
    let file = super::files::find(&state, &caller, file_id).await?;
    Ok(Json(start(&state, caller, options, webhooks, file).await?))
}

/// Longest accepted `configuration` part of an upload.
const MAX_CONFIGURATION_BYTES: usize = 64 * 1024;

/// `parsing.create(upload_file=…)`: the file and a JSON `configuration` part in one request.
/// The file is stored like an upload to the files API (purpose `parse`).
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::validation(
            vec![json!("body")],
            format!("expected a multipart/form-data upload: {e}"),
        )
    })?;
    let id = format!("dfl-{}", uuid::Uuid::new_v4());
    let started = receive_upload(&state, &caller, &mut multipart, &id).await;
    if started.is_err() {
        state.blobs.delete(&id).await?;
    }
    Ok(Json(started?))
}

async fn receive_upload(
    state: &AppState,
    caller: &Caller,
    multipart: &mut Multipart,
    id: &str,
) -> ApiResult<Value> {
    let mut configuration = None;
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name().unwrap_or_default() {
            "file" if file.is_none() => {
                let name = sanitize_name(field.file_name().unwrap_or("upload"));
                file = Some((name, store_part(state, &mut field, id).await?));
            }
            "configuration" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_CONFIGURATION_BYTES {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "configuration is longer than {MAX_CONFIGURATION_BYTES} bytes"
                        )));
                    }
                }
                let body: CreateBody = serde_json::from_slice(&text).map_err(|e| {
                    ApiError::validation(
                        vec![json!("body"), json!("configuration")],
                        format!("configuration must be a JSON object of parse options: {e}"),
                    )
                })?;
                configuration = Some(body);
            }
            _ => {}
        }
    }
    let missing =
        |field: &str| ApiError::validation(vec![json!("body"), json!(field)], "Field required");
    let body = configuration.ok_or_else(|| missing("configuration"))?;
    let (name, blob) = file.ok_or_else(|| missing("file"))?;
    let options = checked_options(&body)?;
    let webhooks = job_targets(state, caller, body.webhook_configurations, None).await?;
    let file = state
        .store
        .insert_file(NewFile {
            id: id.to_string(),
            project_id: caller.project_id.clone(),
            file_type: extension(&name),
            name,
            purpose: Some("parse".into()),
            external_file_id: None,
            size_bytes: blob.size as i64,
            sha256: blob.sha256,
            blob_key: id.to_string(),
        })
        .await?;
    start(state, caller.clone(), options, webhooks, file).await
}

async fn start(
    state: &AppState,
    caller: Caller,
    options: ParseOptions,
    webhooks: Vec<WebhookTarget>,
    file: FileRecord,
) -> ApiResult<Value> {
    let options = ParseOptions {
        name: Some(file.name.clone()),
        ..options
    };
    let (job, _) = state
        .store
        .create_job(NewJob {
            id: format!("pjb-{}", uuid::Uuid::new_v4()),
            project_id: caller.project_id,
            user_id: caller.user_id,
            api: API,
            configuration: serde_json::to_string(&options).map_err(anyhow::Error::from)?,
            configuration_id: None,
            document_input_type: "file_id".into(),
            file_input: file.id.clone(),
            parse_job_id: None,
            transaction_id: None,
            file_ids: vec![file.id],
            webhooks,
        })
        .await?;
    Ok(parse_job_json(&job))
}

/// Every tier and version runs the same extraction here, so each tier lists one version: the
/// newest name llama-cloud 2.19 knows for it (its models accept only names it knows).
async fn versions() -> Json<Value> {
    let latest = json!({
        "fast": "2026-06-15",
        "cost_effective": "2026-09-28",
        "agentic": "2026-10-16",
        "agentic_plus": "2026-09-28",
    });
    Json(json!({
        "fast": [latest["fast"]],
        "cost_effective": [latest["cost_effective"]],
        "agentic": [latest["agentic"]],
        "agentic_plus": [latest["agentic_plus"]],
        "latest": latest,
    }))
}

/// Parse jobs cost one credit per page parsed.
pub fn parse_job_json(job: &JobRecord) -> Value {
    let options: ParseOptions = serde_json::from_str(&job.configuration).unwrap_or_default();
    json!({
        "id": job.id,
        "project_id": job.project_id,
        "status": job.status,
        "created_at": micros_to_rfc3339(job.created_at),
        "updated_at": micros_to_rfc3339(job.updated_at),
        "error_message": job.error_message,
        "name": options.name,
        "tier": options.tier,
        "usage": {"credits": job.pages_processed.map(|pages| pages as f64)},
        "user_metadata": options.user_metadata,
    })
}

fn not_found(job_id: &str) -> ApiError {
    ApiError::NotFound(format!("Parse job {job_id} not found"))
}

#[derive(Deserialize)]
struct GetQuery {
    #[serde(default)]
    expand: Vec<String>,
}

async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<Json<Value>> {
    let job = state
        .store
        .get_job(&caller.project_id, API, &job_id)
        .await?
        .ok_or_else(|| not_found(&job_id))?;
    let mut body = json!({ "job": parse_job_json(&job) });
    let parsed: Option<ParsedText> = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let wants = |name: &str| q.expand.iter().any(|e| e == name);
    if let Some(parsed) = parsed {
        let full = parsed
            .pages
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        if wants("text") {
            body["text"] = json!({"pages": parsed.pages});
            body["text_full"] = json!(full);
        }
        if wants("markdown") {
            // Text is all this server extracts; as Markdown it is the same text.
            body["markdown"] = json!({"pages": parsed.pages.iter().map(|p| json!({
                "page_number": p.page_number, "markdown": p.text, "success": true,
            })).collect::<Vec<_>>()});
            body["markdown_full"] = json!(full);
        }
    }
    Ok(Json(body))
}

/// The caller's parse job `id`, for classify's `file_input`.
pub async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<JobRecord> {
    state
        .store
        .get_job(&caller.project_id, API, id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListFilterQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_size(q.page_size)?;
    let filter = list_filter(&q)?;
    let after =
        state
            .signer
            .cursor_after("parse_v2", &caller.project_id, q.page_token.as_deref())?;
    let page = state
        .store
        .list_jobs(&caller.project_id, API, &filter, after.as_ref(), limit)
        .await?;
    let next = page.next.map(|cursor| {
        state
            .signer
            .page_token("parse_v2", &caller.project_id, &cursor)
    });
    Ok(Json(json!({
        "items": page.items.iter().map(parse_job_json).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state
        .store
        .cancel_job(&caller.project_id, API, &job_id)
        .await?
    {
        JobTransition::Done(job) => Ok(Json(parse_job_json(&job))),
        JobTransition::NotFound => Err(not_found(&job_id)),
        JobTransition::WrongState(job) => Err(ApiError::Conflict(format!(
            "Parse job {job_id} is already {} and cannot be cancelled",
            job.status
        ))),
    }
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state
        .store
        .delete_job(&caller.project_id, API, &job_id)
        .await?
    {
        JobTransition::Done(job) => Ok(Json(json!({"id": job.id, "project_id": job.project_id}))),
        JobTransition::NotFound => Err(not_found(&job_id)),
        JobTransition::WrongState(job) => Err(ApiError::Conflict(format!(
            "Parse job {job_id} is {}; cancel it before deleting it",
            job.status
        ))),
    }
}

pub fn page_selection(options: &ParseOptions) -> Result<PageSelection, String> {
    let ranges = options.page_ranges.clone().unwrap_or_default();
    PageSelection::parse(ranges.target_pages.as_deref(), ranges.max_pages)
}
