use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// The process is alive.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database and the blob store answer.
async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    state
        .blobs
        .check()
        .await
        .map_err(|e| ApiError::Unavailable(format!("blob store unavailable: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}
