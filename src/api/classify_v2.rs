//! Classify v2 (`/api/v2/classify`): one job classifies one document against a list of rules.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::time::parse_datetime_micros;
use super::AppState;
use crate::classifier::config::{ClassifyConfiguration, ParsingConfiguration};
use crate::classifier::Rule;
use crate::document::PageSelection;
use crate::store::{micros_to_rfc3339, JobFilter, JobRecord, JobTransition, NewJob};

const API: &str = "v2";
const STATUSES: [&str; 5] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const MAX_RULES: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/classify", post(create).get(list))
        .route("/api/v2/classify/{job_id}", get(retrieve).delete(delete))
        .route("/api/v2/classify/{job_id}/cancel", post(cancel))
}

#[derive(Deserialize)]
struct CreateBody {
    file_input: Option<String>,
    file_id: Option<String>,
    parse_job_id: Option<String>,
    configuration: Option<ConfigurationIn>,
    configuration_id: Option<String>,
    transaction_id: Option<String>,
    webhook_configuration_ids: Option<Vec<String>>,
    webhook_configurations: Option<Vec<super::webhook_configs::WebhookIn>>,
}

#[derive(Deserialize)]
pub(super) struct ConfigurationIn {
    pub(super) rules: Option<Vec<RuleIn>>,
    pub(super) mode: Option<String>,
    pub(super) parsing_configuration: Option<ParsingConfiguration>,
}

#[derive(Deserialize)]
pub(super) struct RuleIn {
    #[serde(rename = "type")]
    pub(super) label: Option<String>,
    pub(super) description: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let input = single_input(&body)?.to_string();
    let configuration = match (&body.configuration, &body.configuration_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "Give either configuration or configuration_id, not both".into(),
            ))
        }
        (None, None) => return Err(ApiError::BadRequest(
            "A configuration is required: pass configuration (inline rules) or configuration_id"
                .into(),
        )),
        (None, Some(id)) => {
            super::configurations::classify_configuration(&state, &caller, id).await?
        }
        (Some(configuration), None) => {
            validate_configuration(configuration, &["body", "configuration"])?
        }
    };
    check_mode(&state, &configuration, &["body", "configuration"])?;
    let webhooks = super::webhook_configs::job_targets(
        &state,
        &caller,
        body.webhook_configurations,
        body.webhook_configuration_ids,
    )
    .await?;
    let (file_id, document_input_type, parse_job_id) = if input.starts_with("pjb-") {
        let parse = super::parse::find(&state, &caller, &input).await?;
        if matches!(parse.status.as_str(), "FAILED" | "CANCELLED") {
            return Err(ApiError::BadRequest(format!(
                "Parse job {input} is {}; classify needs a parse job that completed",
                parse.status
            )));
        }
        (parse.file_input, "parse_job_id", Some(parse.id))
    } else {
        (
            super::files::find(&state, &caller, &input).await?.id,
            "file_id",
            None,
        )
    };
    let transaction_id = body.transaction_id.filter(|t| !t.is_empty());
    if transaction_id.as_ref().is_some_and(|t| t.len() > 256) {
        return Err(ApiError::validation(
            vec![json!("body"), json!("transaction_id")],
            "transaction_id must be at most 256 characters",
        ));
    }
    let (job, _created) = state
        .store
        .create_job(NewJob {
            id: format!("cls-{}", uuid::Uuid::new_v4()),
            project_id: caller.project_id,
            user_id: caller.user_id,
            api: API,
            configuration: serde_json::to_string(&configuration).map_err(anyhow::Error::from)?,
            configuration_id: body.configuration_id.clone(),
            document_input_type: document_input_type.into(),
            file_input: input,
            parse_job_id,
            transaction_id,
            file_ids: vec![file_id],
            webhooks,
        })
        .await?;
    Ok(Json(job_json(&job, false)))
}

/// MULTIMODAL needs a backend that sees page images; refuse it up front rather than fail later.
pub(super) fn check_mode(
    state: &AppState,
    configuration: &ClassifyConfiguration,
    base: &[&str],
) -> ApiResult<()> {
    if configuration.mode == "MULTIMODAL" && !state.pipeline.multimodal() {
        let mut loc: Vec<Value> = base.iter().map(|p| json!(p)).collect();
        loc.push(json!("mode"));
        return Err(ApiError::validation(
            loc,
            "mode MULTIMODAL needs a vision model, and this server classifies with the local backend (set CLASSIFYD_CLASSIFIER=openai); use FAST",
        ));
    }
    Ok(())
}

/// Exactly one of `file_input` and its deprecated aliases.
fn single_input(body: &CreateBody) -> ApiResult<&str> {
    let given: Vec<(&'static str, &str)> = [
        ("file_input", body.file_input.as_deref()),
        ("file_id", body.file_id.as_deref()),
        ("parse_job_id", body.parse_job_id.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
    .collect();
    match given.as_slice() {
        [(_, value)] => Ok(value),
        [] => Err(ApiError::BadRequest(
            "A document is required: pass file_input (a file id or parse job id)".into(),
        )),
        _ => Err(ApiError::BadRequest(
            "Give only one of file_input, file_id and parse_job_id".into(),
        )),
    }
}

/// Checks rules and page selection, collecting every problem with its location.
pub(super) fn validate_configuration(
    input: &ConfigurationIn,
    base: &[&str],
) -> ApiResult<ClassifyConfiguration> {
    let loc = |parts: &[Value]| -> Vec<Value> {
        base.iter()
            .map(|p| json!(p))
            .chain(parts.iter().cloned())
            .collect()
    };
    let mut errors = Vec::new();
    let rules_in = input.rules.as_deref().unwrap_or_default();
    if rules_in.is_empty() {
        errors.push(FieldError::new(
            loc(&[json!("rules")]),
            "At least one rule is required",
        ));
    }
    if rules_in.len() > MAX_RULES {
        errors.push(FieldError::new(
            loc(&[json!("rules")]),
            format!("At most {MAX_RULES} rules are allowed"),
        ));
    }
    let mut rules = Vec::with_capacity(rules_in.len());
    let mut seen = std::collections::HashSet::new();
    for (i, rule) in rules_in.iter().enumerate() {
        let label = rule.label.as_deref().unwrap_or_default().trim().to_string();
        let description = rule
            .description
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_string();
        let label_len = label.chars().count();
        if label_len == 0 || label_len > 50 {
            errors.push(FieldError::new(
                loc(&[json!("rules"), json!(i), json!("type")]),
                "type must be 1 to 50 characters",
            ));
        } else if !label
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        {
            errors.push(FieldError::new(
                loc(&[json!("rules"), json!(i), json!("type")]),
                "type may contain only letters, digits, spaces, hyphens and underscores",
            ));
        } else if !seen.insert(label.to_lowercase()) {
            errors.push(FieldError::new(
                loc(&[json!("rules"), json!(i), json!("type")]),
                format!("Duplicate rule type {label:?}: each type may appear once"),
            ));
        }
        let description_len = description.chars().count();
        if !(10..=500).contains(&description_len) {
            errors.push(FieldError::new(
                loc(&[json!("rules"), json!(i), json!("description")]),
                format!("description must be 10 to 500 characters (got {description_len})"),
            ));
        }
        rules.push(Rule { label, description });
    }
    let mode = input.mode.clone().unwrap_or_else(|| "FAST".into());
    if mode != "FAST" && mode != "MULTIMODAL" {
        errors.push(FieldError::new(
            loc(&[json!("mode")]),
            format!("mode {mode:?} is not one of FAST, MULTIMODAL"),
        ));
    }
    let parsing = input.parsing_configuration.clone();
    if let Some(parsing) = &parsing {
        if let Err(message) =
            PageSelection::parse(parsing.target_pages.as_deref(), parsing.max_pages)
        {
            let field = if message.starts_with("max_pages") {
                "max_pages"
            } else {
                "target_pages"
            };
            errors.push(FieldError::new(
                loc(&[json!("parsing_configuration"), json!(field)]),
                message,
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ClassifyConfiguration {
        rules,
        mode,
        parsing_configuration: parsing,
    })
}

#[derive(Deserialize)]
struct GetQuery {
    #[serde(default)]
    expand: Vec<String>,
}

async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<Json<Value>> {
    let job = state
        .store
        .get_job(&caller.project_id, API, &job_id)
        .await?
        .ok_or_else(|| not_found(&job_id))?;
    Ok(Json(job_json(&job, q.expand.iter().any(|e| e == "usage"))))
}

fn not_found(job_id: &str) -> ApiError {
    ApiError::NotFound(format!("Classify job {job_id} not found"))
}

/// The list query of the v2 job APIs (classify and parse).
#[derive(Deserialize)]
pub(super) struct ListFilterQuery {
    pub(super) page_size: Option<i64>,
    pub(super) page_token: Option<String>,
    status: Option<String>,
    configuration_id: Option<String>,
    #[serde(default)]
    job_ids: Vec<String>,
    created_at_on_or_after: Option<String>,
    created_at_on_or_before: Option<String>,
}

/// Checks the list filters; the status must be one of the v2 job statuses.
pub(super) fn list_filter(q: &ListFilterQuery) -> ApiResult<JobFilter> {
    if let Some(status) = q.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::validation(
            vec![json!("query"), json!("status")],
            format!("status {status:?} is not one of {}", STATUSES.join(", ")),
        ));
    }
    Ok(JobFilter {
        status: q.status.clone(),
        configuration_id: q.configuration_id.clone(),
        job_ids: q.job_ids.clone(),
        created_on_or_after: datetime(
            "created_at_on_or_after",
            q.created_at_on_or_after.as_deref(),
        )?,
        created_on_or_before: datetime(
            "created_at_on_or_before",
            q.created_at_on_or_before.as_deref(),
        )?,
    })
}

pub fn page_size(requested: Option<i64>) -> ApiResult<usize> {
    match requested {
        None => Ok(50),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::validation(
            vec![json!("query"), json!("page_size")],
            format!("page_size must be between 1 and 1000 (got {n})"),
        )),
    }
}

fn datetime(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_datetime_micros(v).ok_or_else(|| {
                ApiError::validation(
                    vec![json!("query"), json!(field)],
                    format!("{v:?} is not an ISO 8601 datetime"),
                )
            })
        })
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListFilterQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_size(q.page_size)?;
    let filter = list_filter(&q)?;
    let after =
        state
            .signer
            .cursor_after("classify_v2", &caller.project_id, q.page_token.as_deref())?;
    let page = state
        .store
        .list_jobs(&caller.project_id, API, &filter, after.as_ref(), limit)
        .await?;
    let next = page.next.map(|cursor| {
        state
            .signer
            .page_token("classify_v2", &caller.project_id, &cursor)
    });
    Ok(Json(json!({
        "items": page.items.iter().map(|job| job_json(job, false)).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state
        .store
        .cancel_job(&caller.project_id, API, &job_id)
        .await?
    {
        JobTransition::Done(job) => Ok(Json(job_json(&job, false))),
        JobTransition::NotFound => Err(not_found(&job_id)),
        JobTransition::WrongState(job) => Err(ApiError::Conflict(format!(
            "Classify job {job_id} is already {} and cannot be cancelled",
            job.status
        ))),
    }
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state
        .store
        .delete_job(&caller.project_id, API, &job_id)
        .await?
    {
        JobTransition::Done(job) => Ok(Json(json!({"id": job.id, "project_id": job.project_id}))),
        JobTransition::NotFound => Err(not_found(&job_id)),
        JobTransition::WrongState(job) => Err(ApiError::Conflict(format!(
            "Classify job {job_id} is {}; cancel it before deleting it",
            job.status
        ))),
    }
}

/// Credits, as the SDK's `Usage` describes them: classify bills through the parse of its file
/// input — one credit per page read in FAST mode, two in MULTIMODAL — so `parse_credits` is the
/// whole total; a job run on a parse job the caller made bills nothing of its own (`credits`
/// 0, `parse_credits` null; the parse job carries its own usage). Null until the job finished.
fn credits(job: &JobRecord, configuration: &Value) -> Value {
    let pages = job.pages_processed;
    if job.document_input_type == "parse_job_id" {
        return json!({"credits": pages.map(|_| 0.0), "parse_credits": null, "pages_processed": pages});
    }
    let mode = configuration
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("FAST");
    let per_page = if mode == "MULTIMODAL" { 2.0 } else { 1.0 };
    let credits = pages.map(|pages| pages as f64 * per_page);
    json!({"credits": credits, "parse_credits": credits, "pages_processed": pages})
}

/// The usage object: credits, plus the token counts and how the answer was obtained, as the
/// worker recorded them.
fn usage(job: &JobRecord, configuration: &Value) -> Value {
    let mut usage = credits(job, configuration);
    if let Some(Value::Object(model)) = job
        .usage
        .as_deref()
        .and_then(|u| serde_json::from_str::<Value>(u).ok())
    {
        for (key, value) in model {
            usage[key] = value;
        }
    }
    usage
}

/// The job as every SDK model of it reads it.
pub fn job_json(job: &JobRecord, with_usage: bool) -> Value {
    let configuration: Value = serde_json::from_str(&job.configuration).unwrap_or(Value::Null);
    let result: Value = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let mut body = json!({
        "id": job.id,
        "configuration": configuration,
        "configuration_id": job.configuration_id,
        "document_input_type": job.document_input_type,
        "file_input": job.file_input,
        "project_id": job.project_id,
        "status": job.status,
        "user_id": job.user_id,
        "created_at": micros_to_rfc3339(job.created_at),
        "updated_at": micros_to_rfc3339(job.updated_at),
        "error_message": job.error_message,
        "parse_job_id": job.parse_job_id,
        "result": result,
        "transaction_id": job.transaction_id,
    });
    if with_usage {
        body["usage"] = usage(job, &configuration);
    }
    body
}
