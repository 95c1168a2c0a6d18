use sqlx::Row;

use super::{Store, StoreResult};

impl Store {
    /// Returns the named secret, creating it with `candidate` on first use. Every replica
    /// sharing the database reads the same value.
    pub async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        let insert = self.sql("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING");
        sqlx::query(&insert)
            .bind(name)
            .bind(candidate)
            .execute(&self.writer)
            .await?;
        let select = self.sql("SELECT value FROM server_secrets WHERE name = $1");
        let row = sqlx::query(&select)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}
