//! The jobs table is the queue: a task is claimed by setting a lease (token + expiry) in one
//! committed statement, renewed while it runs, and finished by a write fenced on the token, so a
//! worker whose lease was taken over can never overwrite the newer attempt.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::files::{self, FileRecord};
use super::jobs::{job_from_row, JobRecord, TaskOutcome, JOB_COLUMNS};
use super::{Engine, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: String,
    pub job_id: String,
    pub file_id: String,
    pub attempts: i64,
    pub lease_token: String,
    /// The job has this one task and no webhook targets, so on PostgreSQL its outcome is
    /// written in one statement (see [`Store::finish_task`]).
    single_statement_finish: bool,
    /// The job and file rows as the claim read them (PostgreSQL), so the worker need not.
    pub inputs: Option<TaskInputs>,
}

/// What a worker reads before running a task.
#[derive(Debug, Clone)]
pub struct TaskInputs {
    pub job: JobRecord,
    /// `None` once the file was deleted.
    pub file: Option<FileRecord>,
}

impl Store {
    /// Claims the oldest runnable task: a pending one, or a running one whose lease expired
    /// (its worker died). Returns `None` when the queue is empty.
    pub async fn claim_task(&self, lease_micros: i64) -> StoreResult<Option<ClaimedTask>> {
        let now = super::now_micros();
        let token = uuid::Uuid::new_v4().to_string();
        let claimed = match self.engine {
            Engine::Postgres => self.claim_and_start(&token, now, lease_micros).await?,
            Engine::Sqlite => self.claim(&token, now, lease_micros).await?,
        };
        let Some((task, job_needs_start)) = claimed else {
            return Ok(None);
        };
        if job_needs_start {
            self.mark_job_running(&task.job_id, now).await?;
        }
        Ok(Some(task))
    }

    /// The task's row alone; its job is marked RUNNING by [`Store::mark_job_running`].
    async fn claim(
        &self,
        token: &str,
        now: i64,
        lease_micros: i64,
    ) -> StoreResult<Option<(ClaimedTask, bool)>> {
        // SQLite serialises writers, so the single UPDATE is already exclusive.
        let sql = self.sql(&format!(
            "UPDATE tasks SET status = 'RUNNING', lease_token = $1, lease_expires_at = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id = {} \
             RETURNING id AS task_id, job_id AS task_job_id, file_id AS task_file_id, \
             attempts AS task_attempts",
            runnable_task("")
        ));
        let row = sqlx::query(&sql)
            .bind(token)
            .bind(now + lease_micros)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((claimed_task(&row, token, false, None)?, true)))
    }

    /// PostgreSQL: claims the task and, when its job has no webhook targets (no event to
    /// write), marks the job RUNNING in the same statement, which also reads the job and file
    /// rows — one round trip instead of seven. The flag says whether the job still needs
    /// [`Store::mark_job_running`].
    async fn claim_and_start(
        &self,
        token: &str,
        now: i64,
        lease_micros: i64,
    ) -> StoreResult<Option<(ClaimedTask, bool)>> {
        let sql = format!(
            "WITH claimed AS (\
                UPDATE tasks SET status = 'RUNNING', lease_token = $1, lease_expires_at = $2, \
                attempts = attempts + 1, updated_at = $3 WHERE id = {} \
                RETURNING id, job_id, file_id, attempts), \
             job AS (\
                SELECT {JOB_COLUMNS}, EXISTS (SELECT 1 FROM job_webhooks w WHERE w.job_id = jobs.id) \
                AS has_webhooks FROM jobs WHERE id = (SELECT job_id FROM claimed)), \
             started AS (\
                UPDATE jobs SET status = 'RUNNING', updated_at = $3 FROM job \
                WHERE jobs.id = job.id AND jobs.status = 'PENDING' AND NOT job.has_webhooks \
                RETURNING jobs.id) \
             SELECT claimed.id AS task_id, claimed.job_id AS task_job_id, \
                claimed.file_id AS task_file_id, claimed.attempts AS task_attempts, job.*, \
                COALESCE(job.has_webhooks, TRUE) AS job_has_webhooks, {} \
             FROM claimed LEFT JOIN job ON job.id = claimed.job_id \
             LEFT JOIN files f ON f.id = claimed.file_id",
            runnable_task("FOR UPDATE SKIP LOCKED"),
            files::prefixed_columns("f", "file_")
        );
        let row = sqlx::query(&sql)
            .bind(token)
            .bind(now + lease_micros)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let has_webhooks: bool = row.try_get("job_has_webhooks")?;
        let job_found = row.try_get::<Option<String>, _>("id")?.is_some();
        let file_found = row.try_get::<Option<String>, _>("file_id")?.is_some();
        let inputs = match job_found {
            true => Some(TaskInputs {
                job: job_from_row(&row)?,
                file: match file_found {
                    true => Some(files::from_prefixed_row(&row, "file_")?),
                    false => None,
                },
            }),
            false => None,
        };
        let single_statement_finish = !has_webhooks
            && inputs
                .as_ref()
                .is_some_and(|inputs| matches!(inputs.job.api.as_str(), "v2" | "parse"));
        let task = claimed_task(&row, token, single_statement_finish, inputs)?;
        Ok(Some((task, has_webhooks)))
    }

    /// A job whose first task starts becomes RUNNING, with its `running` webhook event.
    async fn mark_job_running(&self, job_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let mark_running = self.sql(&format!(
            "UPDATE jobs SET status = 'RUNNING', updated_at = $2 WHERE id = $1 AND status = 'PENDING' \
             RETURNING {JOB_COLUMNS}"
        ));
        let started = sqlx::query(&mark_running)
            .bind(job_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let event = match started {
            Some(row) => {
                self.enqueue_job_event(&mut tx, &job_from_row(&row)?)
                    .await?
            }
            None => false,
        };
        tx.commit().await?;
        self.webhook_event_written(event);
        Ok(())
    }

    /// Extends the lease. `false` means the lease is gone (job cancelled or lease taken over):
    /// the worker must stop and write nothing.
    pub async fn renew_lease(&self, task: &ClaimedTask, lease_micros: i64) -> StoreResult<bool> {
        let now = super::now_micros();
        let sql = self.sql(
            "UPDATE tasks SET lease_expires_at = $1, updated_at = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'RUNNING'",
        );
        let done = sqlx::query(&sql)
            .bind(now + lease_micros)
            .bind(now)
            .bind(&task.id)
            .bind(&task.lease_token)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the outcome if this worker still holds the lease; returns whether it did.
    pub async fn finish_task(
        &self,
        task: &ClaimedTask,
        outcome: &TaskOutcome,
    ) -> StoreResult<bool> {
        let now = super::now_micros();
        if task.single_statement_finish {
            return self.finish_in_one_statement(task, outcome, now).await;
        }
        let OutcomeColumns {
            status,
            result,
            error,
            pages,
            usage,
        } = OutcomeColumns::of(outcome);
        let mut tx = self.writer.begin().await?;
        if self.engine == Engine::Postgres {
            // Tasks of one v1 job finish in parallel; serialising them on the job row lets the
            // last one see every sibling's outcome when it decides the job is done.
            let lock = "SELECT id FROM jobs WHERE id = $1 FOR UPDATE";
            sqlx::query(lock)
                .bind(&task.job_id)
                .execute(&mut *tx)
                .await?;
        }
        let sql = self.sql(
            "UPDATE tasks SET status = $1, result = $2, error_message = $3, page_count = $4, \
             lease_token = NULL, lease_expires_at = NULL, updated_at = $5, usage = $8 \
             WHERE id = $6 AND lease_token = $7 AND status = 'RUNNING'",
        );
        let done = sqlx::query(&sql)
            .bind(status)
            .bind(result)
            .bind(error)
            .bind(pages)
            .bind(now)
            .bind(&task.id)
            .bind(&task.lease_token)
            .bind(usage)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let job = self.sql(&format!(
            "UPDATE jobs SET status = $1, result = $2, error_message = $3, pages_processed = $4, \
             updated_at = $5, usage = $7 WHERE id = $6 AND api IN ('v2', 'parse') AND status IN ('PENDING', 'RUNNING') \
             RETURNING {JOB_COLUMNS}"
        ));
        let finished = sqlx::query(&job)
            .bind(status)
            .bind(result)
            .bind(error)
            .bind(pages)
            .bind(now)
            .bind(&task.job_id)
            .bind(usage)
            .fetch_optional(&mut *tx)
            .await?;
        let event = match finished {
            Some(row) => {
                self.enqueue_job_event(&mut tx, &job_from_row(&row)?)
                    .await?
            }
            None => false,
        };
        // A v1 job is done once none of its tasks is active; its API status (SUCCESS, ERROR,
        // PARTIAL_SUCCESS) is derived from the tasks when it is read.
        let multi_file_job = self.sql(
            "UPDATE jobs SET status = CASE WHEN EXISTS (SELECT 1 FROM tasks \
                 WHERE job_id = $1 AND status IN ('PENDING', 'RUNNING')) THEN 'RUNNING' ELSE 'COMPLETED' END, \
             pages_processed = (SELECT CAST(SUM(page_count) AS BIGINT) FROM tasks WHERE job_id = $1), \
             updated_at = $2 WHERE id = $1 AND api = 'v1' AND status IN ('PENDING', 'RUNNING')",
        );
        sqlx::query(&multi_file_job)
            .bind(&task.job_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.webhook_event_written(event);
        Ok(true)
    }

    /// PostgreSQL, a job of one task without webhook targets: task and job in one statement
    /// (one round trip instead of seven), still fenced on the lease token.
    async fn finish_in_one_statement(
        &self,
        task: &ClaimedTask,
        outcome: &TaskOutcome,
        now: i64,
    ) -> StoreResult<bool> {
        let columns = OutcomeColumns::of(outcome);
        let sql = "WITH done AS (\
                UPDATE tasks SET status = $1, result = $2, error_message = $3, page_count = $4, \
                lease_token = NULL, lease_expires_at = NULL, updated_at = $5, usage = $8 \
                WHERE id = $6 AND lease_token = $7 AND status = 'RUNNING' RETURNING job_id), \
             finished AS (\
                UPDATE jobs SET status = $1, result = $2, error_message = $3, pages_processed = $4, \
                updated_at = $5, usage = $8 FROM done \
                WHERE jobs.id = done.job_id AND jobs.status IN ('PENDING', 'RUNNING') RETURNING jobs.id) \
             SELECT job_id FROM done";
        let done = sqlx::query(sql)
            .bind(columns.status)
            .bind(columns.result)
            .bind(columns.error)
            .bind(columns.pages)
            .bind(now)
            .bind(&task.id)
            .bind(&task.lease_token)
            .bind(columns.usage)
            .fetch_optional(&self.writer)
            .await?;
        Ok(done.is_some())
    }

    /// Gives the task back to the queue at once (graceful shutdown): another worker, here or
    /// on another replica, takes it without waiting for the lease to expire. The attempt is
    /// not counted, since the document did not cause the interruption, and a job none of whose
    /// tasks has started reads PENDING again.
    pub async fn release_task(&self, task: &ClaimedTask) -> StoreResult<()> {
        let now = super::now_micros();
        let mut tx = self.writer.begin().await?;
        let sql = self.sql(
            "UPDATE tasks SET status = 'PENDING', lease_token = NULL, lease_expires_at = NULL, \
             attempts = attempts - 1, run_after = $1, updated_at = $1 \
             WHERE id = $2 AND lease_token = $3 AND status = 'RUNNING'",
        );
        let released = sqlx::query(&sql)
            .bind(now)
            .bind(&task.id)
            .bind(&task.lease_token)
            .execute(&mut *tx)
            .await?;
        if released.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(());
        }
        let job = self.sql(
            "UPDATE jobs SET status = 'PENDING', updated_at = $1 WHERE id = $2 AND status = 'RUNNING' \
             AND NOT EXISTS (SELECT 1 FROM tasks WHERE job_id = $2 AND status <> 'PENDING')",
        );
        sqlx::query(&job)
            .bind(now)
            .bind(&task.job_id)
            .execute(&mut *tx)
            .await?;
        self.announce_tasks(&mut tx, 1).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The task a claim returned, its columns named `task_*` by both claims.
fn claimed_task(
    row: &AnyRow,
    token: &str,
    single_statement_finish: bool,
    inputs: Option<TaskInputs>,
) -> sqlx::Result<ClaimedTask> {
    Ok(ClaimedTask {
        id: row.try_get("task_id")?,
        job_id: row.try_get("task_job_id")?,
        file_id: row.try_get("task_file_id")?,
        attempts: row.try_get("task_attempts")?,
        lease_token: token.to_string(),
        single_statement_finish,
        inputs,
    })
}

/// A task outcome as the columns of `tasks` and `jobs` that record it.
struct OutcomeColumns<'a> {
    status: &'static str,
    result: Option<&'a str>,
    error: Option<&'a str>,
    pages: Option<i64>,
    usage: Option<&'a str>,
}

impl<'a> OutcomeColumns<'a> {
    fn of(outcome: &'a TaskOutcome) -> Self {
        match outcome {
            TaskOutcome::Completed {
                result,
                page_count,
                usage,
            } => Self {
                status: "COMPLETED",
                result: Some(result),
                error: None,
                pages: Some(*page_count),
                usage: Some(usage),
            },
            TaskOutcome::Failed {
                message,
                page_count,
            } => Self {
                status: "FAILED",
                result: None,
                error: Some(message),
                pages: *page_count,
                usage: None,
            },
        }
    }
}

/// The id of the task to claim next: two single-index lookups, an expired lease first (older
/// work). One `WHERE pending OR expired` made the planner read and sort every runnable task,
/// so each claim's cost grew with the queue (BENCHMARKS.md, claim); COALESCE runs the second
/// lookup only when the first finds nothing. Ordered by exactly the pending index's key: with a
/// second sort key PostgreSQL sorted at least 32 index entries (and visited their rows, many
/// of them already claimed) to return one. `lock` is PostgreSQL's row lock, empty on SQLite.
fn runnable_task(lock: &str) -> String {
    format!(
        "COALESCE(\
            (SELECT id FROM tasks WHERE status = 'RUNNING' AND lease_expires_at < $3 \
             ORDER BY lease_expires_at LIMIT 1 {lock}), \
            (SELECT id FROM tasks WHERE status = 'PENDING' AND run_after <= $3 \
             ORDER BY run_after LIMIT 1 {lock}))"
    )
}
