//! The jobs table is the queue: a task is claimed by setting a lease (token + expiry) in one
//! committed statement, renewed while it runs, and finished by a write fenced on the token, so a
//! worker whose lease was taken over can never overwrite the newer attempt.

use sqlx::Row;

use super::jobs::{job_from_row, TaskOutcome, JOB_COLUMNS};
use super::{Engine, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: String,
    pub job_id: String,
    pub file_id: String,
    pub attempts: i64,
    pub lease_token: String,
}

impl Store {
    /// Claims the oldest runnable task: a pending one, or a running one whose lease expired
    /// (its worker died). Returns `None` when the queue is empty.
    pub async fn claim_task(&self, lease_micros: i64) -> StoreResult<Option<ClaimedTask>> {
        let now = super::now_micros();
        let token = uuid::Uuid::new_v4().to_string();
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite serialises writers, so the single UPDATE is already exclusive.
            Engine::Sqlite => "",
        };
        let sql = self.sql(&format!(
            "UPDATE tasks SET status = 'RUNNING', lease_token = $1, lease_expires_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id = (SELECT id FROM tasks \
                         WHERE (status = 'PENDING' AND run_after <= $3) \
                            OR (status = 'RUNNING' AND lease_expires_at < $3) \
                         ORDER BY run_after, created_at LIMIT 1 {lock}) \
             RETURNING id, job_id, file_id, attempts"
        ));
        let row = sqlx::query(&sql)
            .bind(&token)
            .bind(now + lease_micros)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let task = ClaimedTask {
            id: row.try_get("id")?,
            job_id: row.try_get("job_id")?,
            file_id: row.try_get("file_id")?,
            attempts: row.try_get("attempts")?,
            lease_token: token,
        };
        let mut tx = self.writer.begin().await?;
        let mark_running = self.sql(&format!(
            "UPDATE jobs SET status = 'RUNNING', updated_at = $2 WHERE id = $1 AND status = 'PENDING' \
             RETURNING {JOB_COLUMNS}"
        ));
        let started = sqlx::query(&mark_running)
            .bind(&task.job_id)
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
        Ok(Some(task))
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
        let (status, result, error, pages, usage) = match outcome {
            TaskOutcome::Completed {
                result,
                page_count,
                usage,
            } => (
                "COMPLETED",
                Some(result.as_str()),
                None,
                Some(*page_count),
                Some(usage.as_str()),
            ),
            TaskOutcome::Failed {
                message,
                page_count,
            } => ("FAILED", None, Some(message.as_str()), *page_count, None),
        };
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
