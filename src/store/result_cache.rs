//! The result cache's table: model answers by question key, shared by every replica.

use sqlx::Row;

use super::{now_micros, Store, StoreResult};

/// A model answer given earlier to the same question.
#[derive(Debug, Clone)]
pub struct CachedResult {
    /// The classification as stored on jobs (JSON).
    pub result: String,
    /// Pages read for the answer.
    pub page_count: i64,
    /// What the first answer cost (JSON `ModelUsage`).
    pub usage: String,
    pub created_at: i64,
}

impl Store {
    pub async fn cached_result(&self, key: &str) -> StoreResult<Option<CachedResult>> {
        let select = self
            .sql("SELECT result, page_count, usage, created_at FROM result_cache WHERE key = $1");
        let row = sqlx::query(&select)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(CachedResult {
                result: row.try_get("result")?,
                page_count: row.try_get("page_count")?,
                usage: row.try_get("usage")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Keeps the first answer when two replicas answered the same question at once.
    pub async fn cache_result(
        &self,
        key: &str,
        result: &str,
        page_count: i64,
        usage: &str,
    ) -> StoreResult<()> {
        let insert = self.sql(
            "INSERT INTO result_cache (key, result, page_count, usage, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
        );
        sqlx::query(&insert)
            .bind(key)
            .bind(result)
            .bind(page_count)
            .bind(usage)
            .bind(now_micros())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
