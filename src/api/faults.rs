//! Fault injection for integration tests: when enabled, requests matching an `api_faults`
//! entry of the fixtures file get the scripted error status (with `Retry-After` if asked) a
//! given number of times before passing through, so a client's retry logic can be rehearsed.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn inject(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(fixtures) = &state.faults else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').map(|(_, token)| token.trim().to_string()));
    let requested = request.uri().query().and_then(|query| {
        serde_html_form::from_str::<Vec<(String, String)>>(query)
            .unwrap_or_default()
            .into_iter()
            .find_map(|(k, v)| (k == "project_id").then_some(v))
    });
    let project = state
        .auth
        .authorize(bearer.as_deref(), requested.as_deref())
        .ok()
        .map(|caller| caller.project_id);
    let headers = request.headers();
    let fault = fixtures.fault_for(
        request.method().as_str(),
        request.uri().path(),
        project.as_deref(),
        |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        },
    );
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    tracing::info!(status = fault.status, path = %request.uri().path(), "injected API fault");
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = fault
        .detail
        .unwrap_or_else(|| format!("Injected fault: HTTP {} (fixtures file)", fault.status));
    let mut response = (status, Json(json!({ "detail": detail }))).into_response();
    if let Some(seconds) = fault.retry_after_seconds {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}
