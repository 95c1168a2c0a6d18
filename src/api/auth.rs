//! Bearer keys → projects. Keys are compared by their SHA-256 digest, so lookup time says
//! nothing about a key's characters.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;

#[derive(Debug, Clone)]
pub struct Auth {
    /// digest of key → project id; empty = open access.
    keys: HashMap<[u8; 32], String>,
    default_project: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub project_id: String,
    pub user_id: String,
}

impl Auth {
    pub fn new(keys: Vec<(String, String)>, default_project: String) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|(key, project)| (digest(&key), project))
                .collect(),
            default_project,
        }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Resolves the caller's project; `requested` is the optional `project_id` query parameter.
    pub fn authorize(
        &self,
        bearer: Option<&str>,
        requested: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let requested = requested.filter(|p| !p.is_empty());
        if self.is_open() {
            let project_id = requested.unwrap_or(&self.default_project).to_string();
            return Ok(Caller {
                project_id,
                user_id: "usr-local".into(),
            });
        }
        let Some(key) = bearer else {
            return Err(ApiError::Unauthorized(
                "Missing API key: send Authorization: Bearer <key>".into(),
            ));
        };
        let Some(project_id) = self.keys.get(&digest(key)) else {
            return Err(ApiError::Unauthorized("Invalid API key".into()));
        };
        if let Some(requested) = requested {
            if requested != project_id {
                return Err(ApiError::Forbidden(format!(
                    "This API key has no access to project {requested}"
                )));
            }
        }
        Ok(Caller {
            project_id: project_id.clone(),
            user_id: format!("usr-{}", &hex::encode(digest(key))[..12]),
        })
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let requested = parts.uri.query().and_then(|query| {
            form_urlencoded_pairs(query).find_map(|(k, v)| (k == "project_id").then_some(v))
        });
        state.auth.authorize(bearer, requested.as_deref())
    }
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_html_form::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}
