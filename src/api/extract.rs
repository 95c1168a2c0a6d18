//! Request extractors whose rejections are FastAPI-shaped 422s instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::error::{ApiError, FieldError};

/// A JSON body. An empty body reads as `{}`: the SDKs send bodiless POSTs with a JSON
/// content type.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("The JSON body is larger than the limit of 2 MiB.".into())
            } else {
                ApiError::BadRequest(format!(
                    "Could not read the request body: {}",
                    e.body_text()
                ))
            }
        })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(deserializer)
            .map(ApiJson)
            .map_err(|error| {
                let mut loc = vec![json!("body")];
                loc.extend(path_segments(error.path()));
                let inner = error.into_inner();
                let kind = if inner.is_syntax() || inner.is_eof() {
                    "json_invalid"
                } else {
                    "value_error"
                };
                ApiError::Validation(vec![FieldError {
                    loc,
                    msg: inner.to_string(),
                    kind,
                }])
            })
    }
}

/// Query parameters; repeated keys (`job_ids=a&job_ids=b`) fill a `Vec`, as the SDKs send them.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_html_form::Deserializer::from_bytes(query.as_bytes());
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let mut loc = vec![json!("query")];
                loc.extend(path_segments(error.path()));
                ApiError::validation(loc, error.into_inner().to_string())
            })
    }
}

/// Path parameters; a segment that cannot be read (bad percent-encoding) names no object, so
/// it is a 404 like any unknown id.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|e| ApiError::NotFound(format!("Not Found: {}", e.body_text())))
    }
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<Value> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(json!(index)),
            serde_path_to_error::Segment::Map { key } => Some(json!(key)),
            serde_path_to_error::Segment::Enum { variant } => Some(json!(variant)),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}
