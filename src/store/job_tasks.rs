//! Reading a job's tasks: v1 jobs report one result per file and derive their status from
//! their tasks, so the API needs them, not only the job row.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::pagination::Conditions;
use super::{Store, StoreResult};

/// One file's part of a job, as its worker left it.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: String,
    pub job_id: String,
    pub file_id: String,
    pub position: i64,
    /// PENDING, RUNNING, COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// The classification as JSON, once COMPLETED.
    pub result: Option<String>,
    pub error_message: Option<String>,
    pub page_count: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const TASK_COLUMNS: &str = "id, job_id, file_id, position, status, result, error_message, \
    page_count, created_at, updated_at";

fn task_from_row(row: &AnyRow) -> sqlx::Result<TaskRecord> {
    Ok(TaskRecord {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        file_id: row.try_get("file_id")?,
        position: row.try_get("position")?,
        status: row.try_get("status")?,
        result: row.try_get("result")?,
        error_message: row.try_get("error_message")?,
        page_count: row.try_get("page_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The tasks of the given jobs, each job's in file order.
    pub async fn tasks_of_jobs(&self, job_ids: &[String]) -> StoreResult<Vec<TaskRecord>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conditions = Conditions::default();
        conditions.push_in("job_id", job_ids);
        let sql = self.sql(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks {} ORDER BY job_id, position",
            conditions.where_sql()
        ));
        let rows = conditions
            .bind_all(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(task_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?)
    }
}
