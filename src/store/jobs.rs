use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::pagination::{Bind, Conditions};
use super::webhooks::WebhookTarget;
use super::{Cursor, Engine, Page, Store, StoreResult};

/// A job. v2 classify and parse jobs own exactly one task; v1 jobs own one task per file.
/// Serialized as the snapshot a webhook event carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub api: String,
    pub status: String,
    /// The resolved configuration as JSON (rules, mode, parsing_configuration).
    pub configuration: String,
    pub configuration_id: Option<String>,
    pub document_input_type: String,
    pub file_input: String,
    pub parse_job_id: Option<String>,
    pub transaction_id: Option<String>,
    /// The classification result as JSON, once COMPLETED.
    pub result: Option<String>,
    pub error_message: Option<String>,
    pub pages_processed: Option<i64>,
    /// What the classification cost the model (JSON, see `ModelUsage`), once finished.
    pub usage: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewJob {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub api: &'static str,
    pub configuration: String,
    pub configuration_id: Option<String>,
    pub document_input_type: String,
    pub file_input: String,
    pub parse_job_id: Option<String>,
    pub transaction_id: Option<String>,
    /// One task per file, in order.
    pub file_ids: Vec<String>,
    /// Where to report the job's status changes (copied onto the job).
    pub webhooks: Vec<WebhookTarget>,
}

#[derive(Debug, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub configuration_id: Option<String>,
    pub job_ids: Vec<String>,
    pub created_on_or_after: Option<i64>,
    pub created_on_or_before: Option<i64>,
}

/// How a task ended, as written by the worker that held its lease.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    Completed {
        result: String,
        page_count: i64,
        /// `ModelUsage` as JSON.
        usage: String,
    },
    Failed {
        message: String,
        page_count: Option<i64>,
    },
}

/// Why a cancel or delete did not happen.
#[derive(Debug)]
pub enum JobTransition {
    Done(JobRecord),
    NotFound,
    WrongState(JobRecord),
}

pub(super) const JOB_COLUMNS: &str = "id, project_id, user_id, api, status, configuration, \
    configuration_id, document_input_type, file_input, parse_job_id, transaction_id, result, \
    error_message, pages_processed, usage, created_at, updated_at";

pub(super) fn job_from_row(row: &AnyRow) -> sqlx::Result<JobRecord> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        api: row.try_get("api")?,
        status: row.try_get("status")?,
        configuration: row.try_get("configuration")?,
        configuration_id: row.try_get("configuration_id")?,
        document_input_type: row.try_get("document_input_type")?,
        file_input: row.try_get("file_input")?,
        parse_job_id: row.try_get("parse_job_id")?,
        transaction_id: row.try_get("transaction_id")?,
        result: row.try_get("result")?,
        error_message: row.try_get("error_message")?,
        pages_processed: row.try_get("pages_processed")?,
        usage: row.try_get("usage")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Binds `$1`–`$11` of the job insert.
fn bind_job<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    job: &'q NewJob,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&job.id)
        .bind(&job.project_id)
        .bind(&job.user_id)
        .bind(job.api)
        .bind(&job.configuration)
        .bind(&job.configuration_id)
        .bind(&job.document_input_type)
        .bind(&job.file_input)
        .bind(&job.parse_job_id)
        .bind(&job.transaction_id)
        .bind(now)
}

const TERMINAL: &str = "('COMPLETED', 'FAILED', 'CANCELLED')";
const ACTIVE: &str = "('PENDING', 'RUNNING')";

impl Store {
    /// Inserts the job, its tasks, its webhook targets and its first event atomically. With a
    /// `transaction_id` already used in the project, nothing is inserted and the original job comes back with `created = false`;
    /// the unique index decides, so racing requests agree.
    pub async fn create_job(&self, job: NewJob) -> StoreResult<(JobRecord, bool)> {
        let now = super::now_micros();
        let inserted = if self.engine == Engine::Postgres && job.webhooks.is_empty() {
            self.insert_job_in_one_statement(&job, now).await?
        } else {
            self.insert_job_in_transaction(&job, now).await?
        };
        let Some(record) = inserted else {
            let existing = self
                .get_job_by_transaction(
                    &job.project_id,
                    job.transaction_id.as_deref().unwrap_or_default(),
                )
                .await?
                .ok_or_else(|| {
                    super::StoreError::Corrupt("transaction_id conflict without a job".into())
                })?;
            return Ok((existing, false));
        };
        self.tasks_committed(job.file_ids.len());
        Ok((record, true))
    }

    /// PostgreSQL without webhooks (no event to write): job and tasks in one statement, so a
    /// create costs one round trip instead of four holding a pooled connection.
    async fn insert_job_in_one_statement(
        &self,
        job: &NewJob,
        now: i64,
    ) -> StoreResult<Option<JobRecord>> {
        // $1–$11 the job (as `bind_job`), then (id, file id) per task.
        let tasks: Vec<String> = (0..job.file_ids.len())
            .map(|position| {
                let id = 12 + 2 * position;
                format!("(${id}, ${}, CAST({position} AS BIGINT))", id + 1)
            })
            .collect();
        let sql = format!(
            "WITH job AS (\
                INSERT INTO jobs (id, project_id, user_id, api, status, configuration, configuration_id, \
                document_input_type, file_input, parse_job_id, transaction_id, created_at, updated_at) \
                VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8, $9, $10, $11, $11) \
                ON CONFLICT (project_id, transaction_id) DO NOTHING RETURNING {JOB_COLUMNS}), \
             queued AS (\
                INSERT INTO tasks (id, job_id, file_id, position, status, run_after, created_at, updated_at) \
                SELECT t.id, job.id, t.file_id, t.position, 'PENDING', $11, $11, $11 \
                FROM job, (VALUES {}) AS t (id, file_id, position)) \
             SELECT {JOB_COLUMNS} FROM job",
            tasks.join(", ")
        );
        let mut query = bind_job(sqlx::query(&sql), job, now);
        for file_id in &job.file_ids {
            query = query.bind(uuid::Uuid::new_v4().to_string()).bind(file_id);
        }
        let row = query.fetch_optional(&self.writer).await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    /// The general path: SQLite (on its single writer connection), and jobs with webhooks,
    /// whose first event needs the job's targets.
    async fn insert_job_in_transaction(
        &self,
        job: &NewJob,
        now: i64,
    ) -> StoreResult<Option<JobRecord>> {
        let mut tx = self.writer.begin().await?;
        let insert = self.sql(&format!(
            "INSERT INTO jobs (id, project_id, user_id, api, status, configuration, configuration_id, \
             document_input_type, file_input, parse_job_id, transaction_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (project_id, transaction_id) DO NOTHING RETURNING {JOB_COLUMNS}"
        ));
        let inserted = bind_job(sqlx::query(&insert), job, now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = inserted else {
            tx.rollback().await?;
            return Ok(None);
        };
        let record = job_from_row(&row)?;
        let insert_task = self.sql(
            "INSERT INTO tasks (id, job_id, file_id, position, status, run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $5, $5)",
        );
        for (position, file_id) in job.file_ids.iter().enumerate() {
            sqlx::query(&insert_task)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&record.id)
                .bind(file_id)
                .bind(position as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        self.insert_job_webhooks(&mut tx, &record.id, &job.webhooks)
            .await?;
        let event = self.enqueue_job_event(&mut tx, &record).await?;
        tx.commit().await?;
        self.webhook_event_written(event);
        Ok(Some(record))
    }

    async fn get_job_by_transaction(
        &self,
        project_id: &str,
        transaction_id: &str,
    ) -> StoreResult<Option<JobRecord>> {
        let sql = self.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE project_id = $1 AND transaction_id = $2"
        ));
        let row = sqlx::query(&sql)
            .bind(project_id)
            .bind(transaction_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    pub async fn get_job(
        &self,
        project_id: &str,
        api: &str,
        id: &str,
    ) -> StoreResult<Option<JobRecord>> {
        let sql = self.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND project_id = $2 AND api = $3"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .bind(api)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    pub(crate) async fn get_job_by_id(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let sql = self.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    pub async fn list_jobs(
        &self,
        project_id: &str,
        api: &str,
        filter: &JobFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<JobRecord>> {
        let mut conditions = Conditions::default();
        conditions.push("project_id = ?", [Bind::Text(project_id.to_string())]);
        conditions.push("api = ?", [Bind::Text(api.to_string())]);
        if let Some(status) = &filter.status {
            conditions.push("status = ?", [Bind::Text(status.clone())]);
        }
        if let Some(configuration_id) = &filter.configuration_id {
            conditions.push(
                "configuration_id = ?",
                [Bind::Text(configuration_id.clone())],
            );
        }
        if !filter.job_ids.is_empty() {
            conditions.push_in("id", &filter.job_ids);
        }
        if let Some(from) = filter.created_on_or_after {
            conditions.push("created_at >= ?", [Bind::Int(from)]);
        }
        if let Some(to) = filter.created_on_or_before {
            conditions.push("created_at <= ?", [Bind::Int(to)]);
        }
        self.newest_first_page(
            &format!("SELECT {JOB_COLUMNS} FROM jobs"),
            conditions,
            after,
            limit,
            |row| Ok(job_from_row(row)?),
            |record| (record.created_at, record.id.clone()),
        )
        .await
    }

    /// Cancels a job that has not finished; its tasks stop at their next lease renewal.
    pub async fn cancel_job(
        &self,
        project_id: &str,
        api: &str,
        id: &str,
    ) -> StoreResult<JobTransition> {
        let now = super::now_micros();
        let mut tx = self.writer.begin().await?;
        let sql = self.sql(&format!(
            "UPDATE jobs SET status = 'CANCELLED', updated_at = $4 \
             WHERE id = $1 AND project_id = $2 AND api = $3 AND status IN {ACTIVE} RETURNING {JOB_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .bind(api)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(match self.get_job(project_id, api, id).await? {
                Some(job) => JobTransition::WrongState(job),
                None => JobTransition::NotFound,
            });
        };
        let tasks = self.sql(&format!(
            "UPDATE tasks SET status = 'CANCELLED', lease_token = NULL, lease_expires_at = NULL, \
             updated_at = $2 WHERE job_id = $1 AND status IN {ACTIVE}"
        ));
        sqlx::query(&tasks)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        let event = self.enqueue_job_event(&mut tx, &job).await?;
        tx.commit().await?;
        self.webhook_event_written(event);
        Ok(JobTransition::Done(job))
    }

    /// Deletes a finished job with its tasks.
    pub async fn delete_job(
        &self,
        project_id: &str,
        api: &str,
        id: &str,
    ) -> StoreResult<JobTransition> {
        let sql = self.sql(&format!(
            "DELETE FROM jobs WHERE id = $1 AND project_id = $2 AND api = $3 AND status IN {TERMINAL} \
             RETURNING {JOB_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .bind(api)
            .fetch_optional(&self.writer)
            .await?;
        if let Some(row) = row {
            return Ok(JobTransition::Done(job_from_row(&row)?));
        }
        Ok(match self.get_job(project_id, api, id).await? {
            Some(job) => JobTransition::WrongState(job),
            None => JobTransition::NotFound,
        })
    }
}
