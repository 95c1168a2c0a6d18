//! Deprecated classifier v1 (`/api/v1/classifier/jobs`), as `llama-cloud` 0.1.46 and
//! `LlamaClassify` call it. One job classifies many files (one task each, run concurrently by
//! the shared worker pool); its status is derived from those tasks, in v1's vocabulary, which
//! has no RUNNING. The Fern client parses strictly, so every required field is always present.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::classify_v2::{check_mode, page_size, validate_configuration, ConfigurationIn, RuleIn};
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::classifier::config::ParsingConfiguration;
use crate::store::{micros_to_rfc3339, JobFilter, JobRecord, NewJob, TaskRecord};

const API: &str = "v1";
const MAX_FILES: usize = 500;
const MODES: [&str; 2] = ["FAST", "MULTIMODAL"];

/// `ParserLanguages`: the only `lang` values the v1 SDK accepts (it validates them on the way
/// back, so anything else must be refused on the way in).
const LANGUAGES: [&str; 86] = [
    "af",
    "az",
    "bs",
    "cs",
    "cy",
    "da",
    "de",
    "en",
    "es",
    "et",
    "fr",
    "ga",
    "hr",
    "hu",
    "id",
    "is",
    "it",
    "ku",
    "la",
    "lt",
    "lv",
    "mi",
    "ms",
    "mt",
    "nl",
    "no",
    "oc",
    "pi",
    "pl",
    "pt",
    "ro",
    "rs_latin",
    "sk",
    "sl",
    "sq",
    "sv",
    "sw",
    "tl",
    "tr",
    "uz",
    "vi",
    "ar",
    "fa",
    "ug",
    "ur",
    "bn",
    "as",
    "mni",
    "ru",
    "rs_cyrillic",
    "be",
    "bg",
    "uk",
    "mn",
    "abq",
    "ady",
    "kbd",
    "ava",
    "dar",
    "inh",
    "che",
    "lbe",
    "lez",
    "tab",
    "tjk",
    "hi",
    "mr",
    "ne",
    "bh",
    "mai",
    "ang",
    "bho",
    "mah",
    "sck",
    "new",
    "gom",
    "sa",
    "bgc",
    "th",
    "ch_sim",
    "ch_tra",
    "ja",
    "ko",
    "ta",
    "te",
    "kn",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/classifier/jobs", post(create).get(list))
        .route("/api/v1/classifier/jobs/{job_id}", get(retrieve))
        .route("/api/v1/classifier/jobs/{job_id}/results", get(results))
}

#[derive(Deserialize)]
struct CreateBody {
    file_ids: Option<Vec<String>>,
    rules: Option<Vec<RuleIn>>,
    mode: Option<String>,
    parsing_configuration: Option<ParsingIn>,
}

/// v1's parsing configuration, echoed back as given.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct ParsingIn {
    lang: Option<String>,
    max_pages: Option<i64>,
    /// 0-based page indexes.
    target_pages: Option<Vec<i64>>,
}

/// What v1 echoes but the worker does not read, kept beside the shared configuration.
#[derive(Debug, Default, Deserialize, Serialize)]
struct V1Echo {
    mode: Option<String>,
    parsing_configuration: Option<ParsingIn>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    let required =
        |field: &str| FieldError::new(vec![json!("body"), json!(field)], "Field required");
    let file_ids = body.file_ids.clone().unwrap_or_default();
    match &body.file_ids {
        None => errors.push(required("file_ids")),
        Some(ids) if ids.is_empty() => errors.push(FieldError::new(
            vec![json!("body"), json!("file_ids")],
            "At least one file id is required",
        )),
        Some(ids) if ids.len() > MAX_FILES => errors.push(FieldError::new(
            vec![json!("body"), json!("file_ids")],
            format!("At most {MAX_FILES} files are allowed in one job"),
        )),
        Some(_) => {}
    }
    let rules_missing = body.rules.is_none();
    if rules_missing {
        errors.push(required("rules"));
    }
    if let Some(mode) = body.mode.as_deref().filter(|m| !MODES.contains(m)) {
        errors.push(FieldError::new(
            vec![json!("body"), json!("mode")],
            format!("mode {mode:?} is not one of FAST, MULTIMODAL"),
        ));
    }
    let parsing = body.parsing_configuration.clone().unwrap_or_default();
    let parsing_loc =
        |field: &str| vec![json!("body"), json!("parsing_configuration"), json!(field)];
    if let Some(lang) = parsing.lang.as_deref().filter(|l| !LANGUAGES.contains(l)) {
        errors.push(FieldError::new(
            parsing_loc("lang"),
            format!("lang {lang:?} is not a supported language code (e.g. en, de, fr, ch_sim)"),
        ));
    }
    let target_pages = parsing.target_pages.clone().unwrap_or_default();
    if let Some(index) = target_pages.iter().find(|&&i| i < 0) {
        errors.push(FieldError::new(
            parsing_loc("target_pages"),
            format!("target_pages holds 0-based page indexes; {index} is negative"),
        ));
    }
    // The shared checks (rule limits, FAST only, page selection) on the v2 form of the request.
    let shared = ConfigurationIn {
        rules: Some(body.rules.unwrap_or_default()),
        mode: body.mode.clone().filter(|m| MODES.contains(&m.as_str())),
        parsing_configuration: body
            .parsing_configuration
            .as_ref()
            .map(|p| ParsingConfiguration {
                lang: p.lang.clone(),
                max_pages: p.max_pages,
                target_pages: (!target_pages.is_empty()).then(|| {
                    target_pages
                        .iter()
                        .map(|i| (i.max(&0) + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }),
            }),
    };
    let configuration = match validate_configuration(&shared, &["body"]) {
        Ok(configuration) => Some(configuration),
        Err(ApiError::Validation(found)) => {
            errors.extend(found.into_iter().filter(|e| {
                // Already reported in v1's own terms above.
                !(rules_missing && e.loc.get(1) == Some(&json!("rules")))
            }));
            None
        }
        Err(other) => return Err(other),
    };
    let (Some(configuration), true) = (configuration, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    check_mode(&state, &configuration, &["body"])?;
    for file_id in &file_ids {
        super::files::find(&state, &caller, file_id).await?;
    }
    let mut stored = serde_json::to_value(&configuration).map_err(anyhow::Error::from)?;
    stored["v1"] = serde_json::to_value(V1Echo {
        mode: body.mode,
        parsing_configuration: body.parsing_configuration,
    })
    .map_err(anyhow::Error::from)?;
    let (job, _) = state
        .store
        .create_job(NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: caller.project_id,
            user_id: caller.user_id,
            api: API,
            configuration: stored.to_string(),
            configuration_id: None,
            document_input_type: "file_ids".into(),
            file_input: file_ids.join(","),
            parse_job_id: None,
            transaction_id: None,
            file_ids,
            webhooks: Vec::new(),
        })
        .await?;
    let tasks = state
        .store
        .tasks_of_jobs(std::slice::from_ref(&job.id))
        .await?;
    Ok(Json(job_json(&job, &tasks)))
}

async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &caller, &job_id).await?;
    let tasks = state
        .store
        .tasks_of_jobs(std::slice::from_ref(&job.id))
        .await?;
    Ok(Json(job_json(&job, &tasks)))
}

async fn find_job(state: &AppState, caller: &Caller, job_id: &str) -> ApiResult<JobRecord> {
    state
        .store
        .get_job(&caller.project_id, API, job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Classify job {job_id} not found")))
}

/// Every file's classification in one response (`LlamaClassify` reads no further pages):
/// one item per file, `result: null` for a file that failed or is not done yet.
async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &caller, &job_id).await?;
    let tasks = state
        .store
        .tasks_of_jobs(std::slice::from_ref(&job.id))
        .await?;
    let items: Vec<Value> = tasks
        .iter()
        .map(|task| {
            let result: Value = task
                .result
                .as_deref()
                .filter(|_| task.status == "COMPLETED")
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            json!({
                "id": task.id,
                "classify_job_id": job.id,
                "file_id": task.file_id,
                "result": result,
                "created_at": micros_to_rfc3339(task.created_at),
                "updated_at": micros_to_rfc3339(task.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "total_size": items.len(),
        "items": items,
        "next_page_token": null,
    })))
}

#[derive(Deserialize)]
struct ListQuery {
    page_size: Option<i64>,
    page_token: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_size(q.page_size)?;
    let after =
        state
            .signer
            .cursor_after("classifier_v1", &caller.project_id, q.page_token.as_deref())?;
    let page = state
        .store
        .list_jobs(
            &caller.project_id,
            API,
            &JobFilter::default(),
            after.as_ref(),
            limit,
        )
        .await?;
    let ids: Vec<String> = page.items.iter().map(|job| job.id.clone()).collect();
    let mut tasks_by_job: HashMap<String, Vec<TaskRecord>> = HashMap::new();
    for task in state.store.tasks_of_jobs(&ids).await? {
        tasks_by_job
            .entry(task.job_id.clone())
            .or_default()
            .push(task);
    }
    let next = page.next.map(|cursor| {
        state
            .signer
            .page_token("classifier_v1", &caller.project_id, &cursor)
    });
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|job| job_json(job, tasks_by_job.get(&job.id).map_or(&[], Vec::as_slice)))
        .collect();
    Ok(Json(json!({
        "items": items,
        "next_page_token": next,
        "total_size": null,
    })))
}

/// v1's status from the job's tasks: PENDING while any file waits or runs (v1 has no
/// RUNNING), then SUCCESS, ERROR or PARTIAL_SUCCESS by how many files failed.
fn v1_status<'a>(
    job_status: &str,
    task_statuses: impl IntoIterator<Item = &'a str>,
) -> &'static str {
    if job_status == "CANCELLED" {
        return "CANCELLED";
    }
    let (mut active, mut completed, mut failed) = (0, 0, 0);
    for status in task_statuses {
        match status {
            "PENDING" | "RUNNING" => active += 1,
            "COMPLETED" => completed += 1,
            _ => failed += 1,
        }
    }
    match (active, completed, failed) {
        (0, 0, 0) | (1.., _, _) => "PENDING",
        (0, _, 0) => "SUCCESS",
        (0, 0, _) => "ERROR",
        _ => "PARTIAL_SUCCESS",
    }
}

fn job_json(job: &JobRecord, tasks: &[TaskRecord]) -> Value {
    let stored: Value = serde_json::from_str(&job.configuration).unwrap_or(Value::Null);
    let echo: V1Echo = serde_json::from_value(stored["v1"].clone()).unwrap_or_default();
    let failed: Vec<&TaskRecord> = tasks.iter().filter(|t| t.status == "FAILED").collect();
    let error_message = failed.iter().max_by_key(|t| t.updated_at).map(|last| {
        format!(
            "{} of {} files could not be classified; file {}: {}",
            failed.len(),
            tasks.len(),
            last.file_id,
            last.error_message.as_deref().unwrap_or("unknown error")
        )
    });
    json!({
        "id": job.id,
        "project_id": job.project_id,
        "user_id": job.user_id,
        "rules": stored["rules"],
        "status": v1_status(&job.status, tasks.iter().map(|t| t.status.as_str())),
        "mode": echo.mode.unwrap_or_else(|| "FAST".into()),
        "parsing_configuration": echo.parsing_configuration,
        "created_at": micros_to_rfc3339(job.created_at),
        "updated_at": micros_to_rfc3339(job.updated_at),
        "effective_at": micros_to_rfc3339(job.created_at),
        "error_message": error_message,
        "job_record_id": null,
    })
}

#[cfg(test)]
mod tests {
    use super::v1_status;

    #[test]
    fn status_is_derived_from_the_tasks() {
        assert_eq!(v1_status("RUNNING", ["COMPLETED", "RUNNING"]), "PENDING");
        assert_eq!(v1_status("PENDING", ["PENDING", "PENDING"]), "PENDING");
        assert_eq!(
            v1_status("COMPLETED", ["COMPLETED", "COMPLETED"]),
            "SUCCESS"
        );
        assert_eq!(v1_status("COMPLETED", ["FAILED", "FAILED"]), "ERROR");
        assert_eq!(
            v1_status("COMPLETED", ["FAILED", "COMPLETED"]),
            "PARTIAL_SUCCESS"
        );
        assert_eq!(
            v1_status("CANCELLED", ["CANCELLED", "COMPLETED"]),
            "CANCELLED"
        );
    }
}
