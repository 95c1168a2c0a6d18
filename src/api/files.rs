//! Beta files API (`/api/v1/beta/files`), as `llama-cloud` 2.x calls it. Uploads stream to
//! the blob store chunk by chunk; a body over the limit is cut off with 413.

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::blob::StoredBlob;
use crate::store::{micros_to_rfc3339, FileFilter, FileOrder, FileRecord, NewFile};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/beta/files",
            post(upload).get(list).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/beta/files/query", post(query))
        .route("/api/v1/beta/files/{file_id}", get(retrieve).delete(delete))
        .route("/api/v1/beta/files/{file_id}/content", get(content))
        .route("/api/v1/beta/files/{file_id}/download", get(download))
}

pub fn file_json(file: &FileRecord) -> Value {
    json!({
        "id": file.id,
        "name": file.name,
        "project_id": file.project_id,
        "file_type": file.file_type,
        "purpose": file.purpose,
        "external_file_id": file.external_file_id,
        "file_size": file.size_bytes,
        "expires_at": null,
        "created_at": micros_to_rfc3339(file.created_at),
        "updated_at": micros_to_rfc3339(file.updated_at),
        "last_modified_at": micros_to_rfc3339(file.updated_at),
    })
}

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
    // Whatever goes wrong after the bytes were stored, they must not stay behind.
    let inserted = match receive(&state, &mut multipart, &id).await {
        Ok(upload) => state
            .store
            .insert_file(NewFile {
                id: id.clone(),
                project_id: caller.project_id,
                file_type: extension(&upload.name),
                name: upload.name,
                purpose: Some(upload.purpose),
                external_file_id: upload.external_file_id,
                size_bytes: upload.blob.size as i64,
                sha256: upload.blob.sha256,
                blob_key: id.clone(),
            })
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match inserted {
        Ok(file) => Ok(Json(file_json(&file))),
        Err(error) => {
            state.blobs.delete(&id).await?;
            Err(error)
        }
    }
}

/// The parts of an upload, with the file's bytes already in the blob store under its id.
struct ReceivedUpload {
    name: String,
    blob: StoredBlob,
    purpose: String,
    external_file_id: Option<String>,
}

/// Longest accepted text field (`purpose`, `external_file_id`).
const MAX_TEXT_FIELD_BYTES: usize = 4096;

async fn receive(
    state: &AppState,
    multipart: &mut Multipart,
    id: &str,
) -> ApiResult<ReceivedUpload> {
    let mut purpose = None;
    let mut external_file_id = None;
    let mut file: Option<(String, StoredBlob)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(ApiError::validation(
                        vec![json!("body"), json!("file")],
                        "Upload one file per request",
                    ));
                }
                let name = sanitize_name(field.file_name().unwrap_or("upload"));
                file = Some((name, store_part(state, &mut field, id).await?));
            }
            "purpose" | "external_file_id" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_TEXT_FIELD_BYTES {
                        return Err(ApiError::validation(
                            vec![json!("body"), json!(field_name)],
                            format!("{field_name} is longer than {MAX_TEXT_FIELD_BYTES} bytes"),
                        ));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| {
                    ApiError::validation(vec![json!("body"), json!(field_name)], "not valid UTF-8")
                })?;
                if field_name == "purpose" {
                    purpose = Some(text);
                } else {
                    external_file_id = Some(text);
                }
            }
            _ => {}
        }
    }
    let missing =
        |field: &str| ApiError::validation(vec![json!("body"), json!(field)], "Field required");
    let (name, blob) = file.ok_or_else(|| missing("file"))?;
    let purpose = purpose
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| missing("purpose"))?;
    Ok(ReceivedUpload {
        name,
        blob,
        purpose,
        external_file_id: external_file_id.filter(|e| !e.is_empty()),
    })
}

/// Streams one multipart file part into the blob store under `key`, cutting it off with 413
/// past the upload limit.
pub(super) async fn store_part(
    state: &AppState,
    field: &mut Field<'_>,
    key: &str,
) -> ApiResult<StoredBlob> {
    let limit = state.settings.limits.max_upload_bytes;
    let mut writer = state.blobs.writer().await?;
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if writer.size() + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        writer.write(&chunk).await?;
    }
    Ok(writer.finish(&state.blobs, key).await?)
}

pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "The file is larger than the upload limit of {limit} bytes (CLASSIFYD_MAX_UPLOAD_BYTES)."
    ))
}

pub(super) fn malformed(error: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::BadRequest(format!("Malformed multipart body: {}", error.body_text()))
}

/// The last path component, without control characters, at most 255 characters.
pub fn sanitize_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if clean.trim().is_empty() {
        "upload".into()
    } else {
        clean
    }
}

pub(super) fn extension(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 10).then(|| ext.to_ascii_lowercase())
}

pub(super) async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(file_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let file = find(&state, &caller, &file_id).await?;
    Ok(Json(file_json(&file)))
}

pub async fn find(state: &AppState, caller: &Caller, file_id: &str) -> ApiResult<FileRecord> {
    state
        .store
        .get_file(&caller.project_id, file_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("File {file_id} not found")))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(file_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let file = state
        .store
        .delete_file(&caller.project_id, &file_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("File {file_id} not found")))?;
    state.blobs.delete(&file.blob_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ListQuery {
    page_size: Option<i64>,
    page_token: Option<String>,
    file_name: Option<String>,
    #[serde(default)]
    file_ids: Vec<String>,
    external_file_id: Option<String>,
    order_by: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let order = match q.order_by.as_deref().map(str::trim) {
        None | Some("") | Some("created_at") => FileOrder::CreatedAtDesc,
        Some("name") => FileOrder::NameAsc,
        Some("id") => FileOrder::IdAsc,
        Some(other) => {
            return Err(ApiError::validation(
                vec![json!("query"), json!("order_by")],
                format!("order_by {other:?} is not supported; use one of: name, id, created_at"),
            ))
        }
    };
    let filter = FileFilter {
        file_name: q.file_name,
        file_ids: q.file_ids,
        external_file_id: q.external_file_id,
        order,
    };
    list_page(
        &state,
        &caller,
        &filter,
        q.page_size,
        q.page_token.as_deref(),
    )
    .await
}

async fn list_page(
    state: &AppState,
    caller: &Caller,
    filter: &FileFilter,
    page_size: Option<i64>,
    page_token: Option<&str>,
) -> ApiResult<Json<Value>> {
    let limit = super::classify_v2::page_size(page_size)?;
    let scope = format!("files:{:?}", filter.order);
    let after = state
        .signer
        .cursor_after(&scope, &caller.project_id, page_token)?;
    let page = state
        .store
        .list_files(&caller.project_id, filter, after.as_ref(), limit)
        .await?;
    let next = page
        .next
        .map(|cursor| state.signer.page_token(&scope, &caller.project_id, &cursor));
    Ok(Json(json!({
        "items": page.items.iter().map(file_json).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

#[derive(Deserialize, Default)]
struct QueryBody {
    #[serde(default)]
    filter: Option<QueryFilter>,
    page_size: Option<i64>,
    page_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct QueryFilter {
    file_ids: Option<Vec<String>>,
    file_name: Option<String>,
    external_file_id: Option<String>,
}

/// Deprecated POST form of the list.
async fn query(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<Json<Value>> {
    let filter = body.filter.unwrap_or_default();
    let filter = FileFilter {
        file_name: filter.file_name,
        file_ids: filter.file_ids.unwrap_or_default(),
        external_file_id: filter.external_file_id,
        order: FileOrder::CreatedAtDesc,
    };
    list_page(
        &state,
        &caller,
        &filter,
        body.page_size,
        body.page_token.as_deref(),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct ContentQuery {
    expires_at_seconds: Option<i64>,
}

/// A presigned link back to this server, valid for `expires_at_seconds` (default one hour).
pub(super) async fn content(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(file_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> ApiResult<Json<Value>> {
    let file = find(&state, &caller, &file_id).await?;
    let lifetime = q.expires_at_seconds.unwrap_or(3600);
    if !(1..=7 * 24 * 3600).contains(&lifetime) {
        return Err(ApiError::validation(
            vec![json!("query"), json!("expires_at_seconds")],
            "expires_at_seconds must be between 1 and 604800",
        ));
    }
    let expires = chrono::Utc::now().timestamp() + lifetime;
    let signature = state.signer.download_signature(&file.id, expires);
    let base = public_base(&state, &headers);
    Ok(Json(json!({
        "url": format!("{base}/api/v1/beta/files/{}/download?expires={expires}&signature={signature}", file.id),
        "expires_at": micros_to_rfc3339(expires * 1_000_000),
        "form_fields": null,
    })))
}

fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.settings.listen.to_string());
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

#[derive(Deserialize)]
struct DownloadQuery {
    expires: i64,
    signature: String,
}

/// Serves a file's bytes to whoever holds a valid signed link (no API key needed).
async fn download(
    State(state): State<AppState>,
    ApiPath(file_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> ApiResult<Response> {
    if !state
        .signer
        .verify_download(&file_id, q.expires, &q.signature)
    {
        return Err(ApiError::Forbidden("Invalid download signature".into()));
    }
    if chrono::Utc::now().timestamp() > q.expires {
        return Err(ApiError::Forbidden("This download link has expired".into()));
    }
    let file = state
        .store
        .get_file_by_id(&file_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("File {file_id} not found")))?;
    let body = Body::from_stream(state.blobs.open(&file.blob_key).await?);
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.name.replace(['"', '\\'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, file.size_bytes.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
