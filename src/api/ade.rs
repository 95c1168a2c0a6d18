//! LandingAI ADE page-level classify (`POST /v1/ade/classify`): synchronous, one class per
//! page. `classes` arrives as bracket-indexed form fields from the SDKs
//! (`classes[0][class]`, `classes[0][description]`) or as one JSON-string field from the docs
//! and curl; both are accepted. The document is an upload (`document`) or a URL
//! (`document_url`) fetched through the SSRF-safe outbound client.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::Caller;
use super::error::{ApiError, ApiResult, FieldError};
use super::files::{malformed, sanitize_name, too_large};
use super::AppState;
use crate::classifier::scripted::DocumentFacts;
use crate::classifier::{ClassifierError, Rule};
use crate::outbound::OutboundError;
use crate::pipeline::PipelineError;

const MAX_CLASSES: usize = 100;
const MAX_CLASS_NAME_CHARS: usize = 100;
/// Longest accepted text field (`document_url`, `model`, one `classes[i][…]` field); text
/// fields are held in memory, so none may be as large as an upload.
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;
/// Longest accepted `classes` JSON string: room for the most classes with long descriptions.
const MAX_CLASSES_JSON_BYTES: usize = 1024 * 1024;
/// The answer for a page that fits none of the classes.
const UNKNOWN: &str = "unknown";

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/ade/classify",
        post(classify).layer(DefaultBodyLimit::disable()),
    )
}

#[derive(Debug, Default, Deserialize)]
struct ClassIn {
    #[serde(rename = "class")]
    name: Option<String>,
    description: Option<String>,
}

/// An uploaded or fetched document, spooled to disk.
struct Document {
    file_name: String,
    file: tempfile::NamedTempFile,
    /// Hex SHA-256 of the content, for fixtures that match by hash.
    sha256: String,
}

/// The request as read from the form, before validation.
#[derive(Default)]
struct Form {
    document: Option<Document>,
    document_url: Option<String>,
    classes_json: Option<String>,
    indexed_classes: BTreeMap<usize, ClassIn>,
    model: Option<String>,
}

async fn classify(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let multipart = multipart.map_err(|e| {
        ApiError::validation(
            vec![json!("body")],
            format!("expected a multipart/form-data request: {e}"),
        )
    })?;
    let form = read_form(&state, multipart).await?;
    let rules = validate_classes(&form)?;
    let document = match (form.document, form.document_url.as_deref()) {
        (Some(document), None) => document,
        (None, Some(url)) => fetch_document(&state, url).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                vec![json!("body")],
                "Give either document or document_url, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::validation(
                vec![json!("body"), json!("document")],
                "Field required: upload the file as document or give its document_url",
            ))
        }
    };
    let facts = DocumentFacts {
        file_name: &document.file_name,
        file_id: "",
        sha256: &document.sha256,
        project_id: &caller.project_id,
    };
    let output = state
        .pipeline
        .classify_pages(
            document.file.path(),
            &facts,
            &rules,
            state.settings.classifier.page_concurrency,
        )
        .await
        .map_err(|error| match error {
            PipelineError::Document(e) => {
                ApiError::validation(vec![json!("body"), json!("document")], e.to_string())
            }
            PipelineError::Scripted(message) => {
                ApiError::validation(vec![json!("body"), json!("document")], message)
            }
            // The model endpoint (or its recording) had no answer: say which and why.
            PipelineError::Classifier(ClassifierError::Model(message)) => {
                ApiError::Unavailable(message)
            }
            other => ApiError::Internal(other.into()),
        })?;
    let classification: Vec<Value> = output
        .pages
        .iter()
        .enumerate()
        .map(|(page, outcome)| {
            let label = outcome.classification.label.as_deref();
            json!({
                "class": label.unwrap_or(UNKNOWN),
                "page": page,
                "reason": outcome.classification.reasoning,
                "suggested_class": if label.is_none() { outcome.suggested_label.clone() } else { None },
            })
        })
        .collect();
    if let Some(model) = &form.model {
        tracing::debug!(model, "ADE model requested; the configured backend answers");
    }
    let page_count = output.pages.len();
    Ok(Json(json!({
        "classification": classification,
        "metadata": {
            "credit_usage": page_count as f64,
            "duration_ms": started.elapsed().as_millis() as u64,
            "filename": document.file_name,
            "page_count": page_count,
            "job_id": uuid::Uuid::new_v4().to_string(),
            "org_id": null,
            "version": format!("classifyd-{}", state.settings.classifier.backend),
        },
    })))
}

async fn read_form(state: &AppState, mut multipart: Multipart) -> ApiResult<Form> {
    let mut form = Form::default();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "document" => {
                let file_name = sanitize_name(field.file_name().unwrap_or("upload"));
                form.document = Some(spool(state, file_name, &mut field).await?);
            }
            "document_url" => form.document_url = Some(text(field, MAX_TEXT_FIELD_BYTES).await?),
            "model" => form.model = Some(text(field, MAX_TEXT_FIELD_BYTES).await?),
            "classes" => form.classes_json = Some(text(field, MAX_CLASSES_JSON_BYTES).await?),
            _ => {
                if let Some((index, key)) = indexed_class_field(&name) {
                    if form.indexed_classes.len() == MAX_CLASSES
                        && !form.indexed_classes.contains_key(&index)
                    {
                        return Err(ApiError::validation(
                            vec![json!("body"), json!("classes")],
                            format!("At most {MAX_CLASSES} classes are allowed"),
                        ));
                    }
                    let value = text(field, MAX_TEXT_FIELD_BYTES).await?;
                    let class = form.indexed_classes.entry(index).or_default();
                    match key {
                        "class" => class.name = Some(value),
                        "description" => class.description = Some(value),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(form)
}

/// A text field, refused with a 422 past `limit` bytes or when it is not UTF-8.
async fn text(mut field: Field<'_>, limit: usize) -> ApiResult<String> {
    let name = field.name().unwrap_or_default().to_string();
    let invalid = |msg: String| ApiError::validation(vec![json!("body"), json!(name)], msg);
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if bytes.len() + chunk.len() > limit {
            return Err(invalid(format!("{name} is longer than {limit} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// `classes[3][description]` → (3, "description").
fn indexed_class_field(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("classes[")?;
    let (index, rest) = rest.split_once("][")?;
    let key = rest.strip_suffix(']')?;
    Some((index.parse().ok()?, key))
}

/// Streams the upload to a temporary file, bounded by the upload limit.
async fn spool(state: &AppState, file_name: String, field: &mut Field<'_>) -> ApiResult<Document> {
    let limit = state.settings.limits.max_upload_bytes;
    let temp = tempfile::NamedTempFile::new().map_err(anyhow::Error::from)?;
    let mut file = tokio::fs::File::from_std(temp.reopen().map_err(anyhow::Error::from)?);
    let mut size = 0u64;
    let mut hasher = Sha256::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
    }
    file.flush().await.map_err(anyhow::Error::from)?;
    Ok(Document {
        file_name,
        file: temp,
        sha256: hex::encode(hasher.finalize()),
    })
}

async fn fetch_document(state: &AppState, url: &str) -> ApiResult<Document> {
    let limit = state.settings.limits.max_upload_bytes;
    let fetched = state
        .settings
        .outbound
        .policy()
        .fetch(url, limit)
        .await
        .map_err(|error| match error {
            OutboundError::TooLarge(_) => too_large(limit),
            other => ApiError::BadRequest(format!("Could not fetch document_url: {other}")),
        })?;
    let temp = tempfile::NamedTempFile::new().map_err(anyhow::Error::from)?;
    tokio::fs::write(temp.path(), &fetched.bytes)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Document {
        file_name: sanitize_name(&fetched.file_name),
        file: temp,
        sha256: hex::encode(Sha256::digest(&fetched.bytes)),
    })
}

/// The classes as rules: non-empty, unique names; a class without a description is described
/// by its name, which is all the classifier then has to go on.
fn validate_classes(form: &Form) -> ApiResult<Vec<Rule>> {
    let loc = |parts: &[Value]| -> Vec<Value> {
        [json!("body"), json!("classes")]
            .into_iter()
            .chain(parts.iter().cloned())
            .collect()
    };
    let classes: Vec<ClassIn> = match (&form.classes_json, form.indexed_classes.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::validation(
                loc(&[]),
                "Give classes either as a JSON string or as classes[i][class] fields, not both",
            ))
        }
        (Some(raw), true) => serde_json::from_str(raw).map_err(|e| {
            ApiError::validation(
                loc(&[]),
                format!(
                    "classes must be a JSON array of {{\"class\", \"description\"}} objects: {e}"
                ),
            )
        })?,
        (None, false) => {
            let indexes: Vec<usize> = form.indexed_classes.keys().copied().collect();
            if indexes.iter().enumerate().any(|(i, index)| i != *index) {
                return Err(ApiError::validation(
                    loc(&[]),
                    format!(
                        "classes[i] indexes must run 0, 1, 2, … without gaps (got {indexes:?})"
                    ),
                ));
            }
            form.indexed_classes
                .values()
                .map(|c| ClassIn {
                    name: c.name.clone(),
                    description: c.description.clone(),
                })
                .collect()
        }
        (None, true) => return Err(ApiError::validation(loc(&[]), "Field required")),
    };
    let mut errors = Vec::new();
    if classes.is_empty() {
        errors.push(FieldError::new(loc(&[]), "At least one class is required"));
    }
    if classes.len() > MAX_CLASSES {
        errors.push(FieldError::new(
            loc(&[]),
            format!("At most {MAX_CLASSES} classes are allowed"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut rules = Vec::with_capacity(classes.len());
    for (i, class) in classes.iter().enumerate() {
        let name = class.name.as_deref().unwrap_or_default().trim().to_string();
        let name_loc = loc(&[json!(i), json!("class")]);
        if name.is_empty() {
            errors.push(FieldError::new(name_loc, "class must be a non-empty name"));
            continue;
        }
        if name.chars().count() > MAX_CLASS_NAME_CHARS {
            errors.push(FieldError::new(
                name_loc,
                format!("class must be at most {MAX_CLASS_NAME_CHARS} characters"),
            ));
            continue;
        }
        if !seen.insert(name.to_lowercase()) {
            errors.push(FieldError::new(
                name_loc,
                format!("Duplicate class {name:?}: each class may appear once"),
            ));
            continue;
        }
        let description = class
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or(&name)
            .to_string();
        rules.push(Rule {
            label: name,
            description,
        });
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::indexed_class_field;

    #[test]
    fn bracket_fields_are_parsed() {
        assert_eq!(
            indexed_class_field("classes[12][description]"),
            Some((12, "description"))
        );
        assert_eq!(indexed_class_field("classes[0][class]"), Some((0, "class")));
        assert_eq!(indexed_class_field("classes[x][class]"), None);
        assert_eq!(indexed_class_field("classes"), None);
    }
}
