//! Parse jobs are jobs rows (`api = 'parse'`): their options are the job's configuration and
//! their text its result. A classify task whose parse job has not finished yet goes back to
//! the queue for a while instead of failing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ClaimedTask, Store, StoreResult};

/// What a parse job keeps of its request (`jobs.configuration`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParseOptions {
    pub tier: Option<String>,
    pub version: Option<String>,
    pub name: Option<String>,
    pub page_ranges: Option<PageRanges>,
    pub user_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PageRanges {
    pub max_pages: Option<i64>,
    pub target_pages: Option<String>,
}

/// A finished parse job's text (`jobs.result`): the parsed pages, 1-based.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParsedText {
    pub pages: Vec<ParsedPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParsedPage {
    pub page_number: usize,
    pub text: String,
}

impl Store {
    /// Returns the task to the queue to run again after `delay_micros`, without counting the
    /// attempt. Fenced by the lease like every write of a claimed task.
    pub async fn defer_task(&self, task: &ClaimedTask, delay_micros: i64) -> StoreResult<bool> {
        let now = super::now_micros();
        let sql = self.sql(
            "UPDATE tasks SET status = 'PENDING', lease_token = NULL, lease_expires_at = NULL, \
             attempts = attempts - 1, run_after = $1, updated_at = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'RUNNING'",
        );
        let done = sqlx::query(&sql)
            .bind(now + delay_micros)
            .bind(now)
            .bind(&task.id)
            .bind(&task.lease_token)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
