//! Counts for monitoring: what `/metrics` reports about the shared queue.

use sqlx::Row;

use super::{Store, StoreResult};

/// Jobs per (api, status), and tasks waiting for a worker.
pub struct QueueStats {
    pub jobs: Vec<(String, String, i64)>,
    pub queue_depth: i64,
}

impl Store {
    /// One grouped count per scrape; cheap next to the 15 s or so between scrapes.
    pub async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let rows = sqlx::query(
            "SELECT api, status, CAST(COUNT(*) AS BIGINT) AS n FROM jobs GROUP BY api, status",
        )
        .fetch_all(&self.pool)
        .await?;
        let jobs = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("api")?,
                    row.try_get("status")?,
                    row.try_get("n")?,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let queue_depth: i64 =
            sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM tasks WHERE status = 'PENDING'")
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
        Ok(QueueStats { jobs, queue_depth })
    }
}
