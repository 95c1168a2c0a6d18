//! The API's one error type and its mapping to HTTP: FastAPI-shaped bodies (`{"detail": …}`,
//! a list of field errors for 422) that every official SDK turns into its exception classes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::blob::BlobError;
use crate::store::StoreError;

#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl FieldError {
    pub fn new(loc: Vec<Value>, msg: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: "value_error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Final conflicts: the SDKs are told not to retry them.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(loc: Vec<Value>, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(loc, msg)])
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, json!(m)),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, json!(m)),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, json!(m)),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, json!(m)),
            Self::Conflict(m) => (StatusCode::CONFLICT, json!(m)),
            Self::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, json!(m)),
            Self::Validation(errors) => (StatusCode::UNPROCESSABLE_ENTITY, json!(errors)),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!(m)),
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!("Internal Server Error"),
                )
            }
        };
        let mut response = (status, Json(json!({ "detail": detail }))).into_response();
        if matches!(
            self,
            Self::Conflict(_) | Self::BadRequest(_) | Self::PayloadTooLarge(_)
        ) {
            // Stainless clients retry 409 (and would re-send large bodies) unless told otherwise.
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
