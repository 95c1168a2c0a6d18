//! Classic files API (`/api/v1/files`), as `llama-cloud` 0.1.46 and `LlamaClassify` call it:
//! one multipart part `upload_file`, `external_file_id` as a query parameter. Files land in the
//! same store as beta uploads, so either id works in v1 and v2 classify.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::files::{extension, file_json, malformed, sanitize_name, store_part};
use super::AppState;
use crate::blob::StoredBlob;
use crate::store::NewFile;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/files",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/files/{file_id}",
            get(super::files::retrieve).delete(super::files::delete),
        )
        .route(
            "/api/v1/files/{file_id}/content",
            get(super::files::content),
        )
}

#[derive(Deserialize)]
struct UploadQuery {
    external_file_id: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UploadQuery>,
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
        Ok((name, stored)) => state
            .store
            .insert_file(NewFile {
                id: id.clone(),
                project_id: caller.project_id,
                file_type: extension(&name),
                name,
                purpose: None,
                external_file_id: q.external_file_id.filter(|e| !e.is_empty()),
                size_bytes: stored.size as i64,
                sha256: stored.sha256,
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

/// The `upload_file` part's name, with its bytes stored under `id`; other parts are skipped.
async fn receive(
    state: &AppState,
    multipart: &mut Multipart,
    id: &str,
) -> ApiResult<(String, StoredBlob)> {
    let mut uploaded = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() == Some("upload_file") && uploaded.is_none() {
            let name = sanitize_name(field.file_name().unwrap_or("upload"));
            uploaded = Some((name, store_part(state, &mut field, id).await?));
        }
    }
    uploaded.ok_or_else(|| {
        ApiError::validation(vec![json!("body"), json!("upload_file")], "Field required")
    })
}
