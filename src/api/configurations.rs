//! Saved configurations (`/api/v1/beta/configurations`): named, reusable parameter sets that
//! classify jobs reference with `configuration_id`. Classify parameters are validated like an
//! inline classify configuration; other products' parameters are kept as given, since the
//! endpoints are shared by every product type.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::classify_v2::{page_size, validate_configuration, ConfigurationIn};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::classifier::config::ClassifyConfiguration;
use crate::store::{micros_to_rfc3339, ConfigurationFilter, ConfigurationRecord};

pub const CLASSIFY: &str = "classify_v2";
const PRODUCT_TYPES: [&str; 6] = [
    CLASSIFY,
    "extract_v2",
    "parse_v2",
    "split_v1",
    "spreadsheet_v1",
    "unknown",
];
const MAX_NAME_CHARS: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/beta/configurations", get(list).post(create))
        .route(
            "/api/v1/beta/configurations/{config_id}",
            get(retrieve).put(update).patch(update).delete(delete),
        )
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    parameters: Option<Map<String, Value>>,
}

fn configuration_json(record: &ConfigurationRecord) -> Value {
    let parameters: Value = serde_json::from_str(&record.parameters).unwrap_or_else(|_| json!({}));
    json!({
        "id": record.id,
        "name": record.name,
        "parameters": parameters,
        "product_type": record.product_type,
        // Not versioned: every change makes a new version, named by its time.
        "version": micros_to_rfc3339(record.updated_at),
        "created_at": micros_to_rfc3339(record.created_at),
        "updated_at": micros_to_rfc3339(record.updated_at),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Configuration {id} not found"))
}

fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            vec![json!("body"), json!("name")],
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Validates the parameters; returns the product type and the parameters to store.
fn checked_parameters(parameters: Map<String, Value>) -> ApiResult<(String, String)> {
    let product_type = match parameters.get("product_type") {
        Some(Value::String(p)) if PRODUCT_TYPES.contains(&p.as_str()) => p.clone(),
        other => {
            return Err(ApiError::validation(
                vec![json!("body"), json!("parameters"), json!("product_type")],
                format!(
                    "product_type must be one of {} (got {})",
                    PRODUCT_TYPES.join(", "),
                    other
                        .map(Value::to_string)
                        .unwrap_or_else(|| "nothing".into())
                ),
            ))
        }
    };
    let stored = if product_type == CLASSIFY {
        let input: ConfigurationIn =
            serde_json::from_value(Value::Object(parameters)).map_err(|e| {
                ApiError::validation(vec![json!("body"), json!("parameters")], e.to_string())
            })?;
        let configuration = validate_configuration(&input, &["body", "parameters"])?;
        let mut value = serde_json::to_value(configuration).map_err(anyhow::Error::from)?;
        value["product_type"] = json!(CLASSIFY);
        value
    } else {
        Value::Object(parameters)
    };
    Ok((product_type, stored.to_string()))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let name = body.name.ok_or_else(|| {
        ApiError::validation(vec![json!("body"), json!("name")], "Field required")
    })?;
    let name = checked_name(&name)?;
    let parameters = body.parameters.ok_or_else(|| {
        ApiError::validation(vec![json!("body"), json!("parameters")], "Field required")
    })?;
    let (product_type, parameters) = checked_parameters(parameters)?;
    let record = state
        .store
        .upsert_configuration(&caller.project_id, &name, &product_type, &parameters)
        .await?;
    Ok(Json(configuration_json(&record)))
}

async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let record = state
        .store
        .get_configuration(&caller.project_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(configuration_json(&record)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let name = body.name.as_deref().map(checked_name).transpose()?;
    let parameters = body.parameters.map(checked_parameters).transpose()?;
    let record = state
        .store
        .update_configuration(
            &caller.project_id,
            &id,
            name.as_deref(),
            parameters
                .as_ref()
                .map(|(product_type, parameters)| (product_type.as_str(), parameters.as_str())),
        )
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(configuration_json(&record)))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_configuration(&caller.project_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

#[derive(Deserialize)]
struct ListQuery {
    page_size: Option<i64>,
    page_token: Option<String>,
    name: Option<String>,
    #[serde(default)]
    product_type: Vec<String>,
    // `latest_only` needs nothing: configurations are not versioned, each is its name's latest.
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_size(q.page_size)?;
    if let Some(bad) = q
        .product_type
        .iter()
        .find(|p| !PRODUCT_TYPES.contains(&p.as_str()))
    {
        return Err(ApiError::validation(
            vec![json!("query"), json!("product_type")],
            format!(
                "product_type {bad:?} is not one of {}",
                PRODUCT_TYPES.join(", ")
            ),
        ));
    }
    let filter = ConfigurationFilter {
        name: q.name.filter(|n| !n.is_empty()),
        product_types: q.product_type,
    };
    let after = state.signer.cursor_after(
        "configurations",
        &caller.project_id,
        q.page_token.as_deref(),
    )?;
    let page = state
        .store
        .list_configurations(&caller.project_id, &filter, after.as_ref(), limit)
        .await?;
    let next = page.next.map(|cursor| {
        state
            .signer
            .page_token("configurations", &caller.project_id, &cursor)
    });
    Ok(Json(json!({
        "items": page.items.iter().map(configuration_json).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

/// The classify configuration saved under `id` in the caller's project.
pub async fn classify_configuration(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<ClassifyConfiguration> {
    let record = state
        .store
        .get_configuration(&caller.project_id, id)
        .await?
        .filter(|record| record.product_type == CLASSIFY)
        .ok_or_else(|| not_found(id))?;
    serde_json::from_str(&record.parameters)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored configuration {id}: {e}")))
}
