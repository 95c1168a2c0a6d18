//! `GET /metrics` (Prometheus text format) and the middleware that counts every request by
//! its route template.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::monitoring;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> ApiResult<Response> {
    let stats = state
        .store
        .queue_stats()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    monitoring::set_queue_stats(&stats.jobs, stats.queue_depth);
    state.metrics.run_upkeep();
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response())
}

/// Records method, route template (`unmatched` for unknown paths, so scanners cannot grow the
/// label set), status and latency of every request.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    monitoring::record_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
