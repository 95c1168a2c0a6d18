//! HTTP surface: one module per API family. Handlers validate, authorize and call the store;
//! the work itself happens in the worker.

mod ade;
pub mod auth;
mod classifier_v1;
mod classify_v2;
mod configurations;
pub mod error;
mod extract;
mod faults;
mod files;
mod files_v1;
mod health;
mod metrics;
mod openapi;
mod parse;
mod signing;
mod time;
mod webhook_configs;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::blob::BlobStore;
use crate::classifier::scripted::Fixtures;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::store::{JobRecord, Store};
use auth::Auth;
use error::ApiError;
pub use signing::Signer;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub blobs: BlobStore,
    pub auth: Arc<Auth>,
    pub signer: Signer,
    pub settings: Arc<Settings>,
    /// Scripted API faults; `Some` only when fault injection is enabled.
    pub faults: Option<Fixtures>,
    /// For the synchronous endpoints; queued work goes through the worker.
    pub pipeline: Arc<Pipeline>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Cancelled when the shutdown grace period is over: requests still running then (a slow
    /// upload, say) are answered 503 instead of keeping the process alive.
    pub cut_off: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(files::routes())
        .merge(classify_v2::routes())
        .merge(configurations::routes())
        .merge(webhook_configs::routes())
        .merge(parse::routes())
        .merge(files_v1::routes())
        .merge(classifier_v1::routes())
        .merge(ade::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), cut_off))
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults::inject))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(
            // Every line logged while serving a request carries its span, hence its request id;
            // the path is logged without its query (signed links carry tokens there).
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A job as a webhook event's `data` carries it: what `GET` on its API returns.
pub fn job_event_data(job: &JobRecord) -> serde_json::Value {
    match job.api.as_str() {
        parse::API => serde_json::json!({ "job": parse::parse_job_json(job) }),
        _ => classify_v2::job_json(job, false),
    }
}

/// Runs the request unless shutdown's grace period ends first; then the handler (and the
/// body it was reading) is dropped and the client told to retry elsewhere.
async fn cut_off(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    tokio::select! {
        response = next.run(request) => response,
        () = state.cut_off.cancelled() => {
            tracing::warn!("request cut off: still running when the shutdown grace period ended");
            ApiError::Unavailable("The server is shutting down; retry the request.".into())
                .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({"detail": "Method Not Allowed"})),
    )
}
