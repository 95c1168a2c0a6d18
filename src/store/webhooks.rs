//! Webhooks: saved webhook configs, each job's copied targets, and the delivery outbox.
//!
//! An event row is written in the same transaction as the job status change it reports, so an
//! event is never lost nor sent for a change that rolled back. The delivery loop claims rows
//! with a lease like tasks (a crashed sender's delivery is retried after the lease), and a
//! target receives one job's events in order: a row waits while an earlier row for the same
//! job and URL is still undelivered.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::jobs::JobRecord;
use super::pagination::{Bind, Conditions};
use super::{Cursor, Engine, Page, Store, StoreResult};

/// Where and how to report a job's events (a saved config, or a target copied onto a job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub webhook_url: String,
    /// `None`: every event.
    pub webhook_events: Option<Vec<String>>,
    pub webhook_headers: Option<std::collections::BTreeMap<String, String>>,
    /// `json` or `string` (the default).
    pub webhook_output_format: Option<String>,
    pub signing_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfigRecord {
    pub id: String,
    pub project_id: String,
    pub target: WebhookTarget,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub job: JobRecord,
    pub webhook_url: String,
    pub webhook_headers: Option<std::collections::BTreeMap<String, String>>,
    pub webhook_output_format: Option<String>,
    pub signing_secret: Option<String>,
    pub attempts: i64,
    pub lease_token: String,
    /// When the event happened (the row was written).
    pub created_at: i64,
}

/// What one delivery attempt came to.
#[derive(Debug)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `run_after` (microseconds).
    Retry {
        error: String,
        run_after: i64,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> StoreResult<Option<T>> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|raw| {
        serde_json::from_str(&raw).map_err(|e| super::StoreError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
}

fn to_json<T: Serialize>(value: &Option<T>) -> Option<String> {
    value
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
}

const TARGET_COLUMNS: &str =
    "webhook_url, webhook_events, webhook_headers, webhook_output_format, signing_secret";

fn target_from_row(row: &AnyRow) -> StoreResult<WebhookTarget> {
    Ok(WebhookTarget {
        webhook_url: row.try_get("webhook_url")?,
        webhook_events: json_column(row, "webhook_events")?,
        webhook_headers: json_column(row, "webhook_headers")?,
        webhook_output_format: row.try_get("webhook_output_format")?,
        signing_secret: row.try_get("signing_secret")?,
    })
}

fn config_from_row(row: &AnyRow) -> StoreResult<WebhookConfigRecord> {
    Ok(WebhookConfigRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        target: target_from_row(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The event a job's current status stands for, if its API has events.
pub fn event_type(job: &JobRecord) -> Option<String> {
    let product = match job.api.as_str() {
        "v2" => "classify",
        "parse" => "parse",
        _ => return None,
    };
    let suffix = match job.status.as_str() {
        "PENDING" => "pending",
        "RUNNING" => "running",
        "COMPLETED" => "success",
        "FAILED" => "error",
        "CANCELLED" => "cancelled",
        _ => return None,
    };
    Some(format!("{product}.{suffix}"))
}

impl Store {
    pub async fn create_webhook_config(
        &self,
        project_id: &str,
        target: &WebhookTarget,
    ) -> StoreResult<WebhookConfigRecord> {
        let now = super::now_micros();
        let sql = self.sql(&format!(
            "INSERT INTO webhook_configs (id, project_id, {TARGET_COLUMNS}, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             RETURNING id, project_id, {TARGET_COLUMNS}, created_at, updated_at"
        ));
        let row = sqlx::query(&sql)
            .bind(format!("whc-{}", uuid::Uuid::new_v4()))
            .bind(project_id)
            .bind(&target.webhook_url)
            .bind(to_json(&target.webhook_events))
            .bind(to_json(&target.webhook_headers))
            .bind(&target.webhook_output_format)
            .bind(&target.signing_secret)
            .bind(now)
            .fetch_one(&self.writer)
            .await?;
        config_from_row(&row)
    }

    pub async fn get_webhook_config(
        &self,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<WebhookConfigRecord>> {
        let sql = self.sql(&format!(
            "SELECT id, project_id, {TARGET_COLUMNS}, created_at, updated_at FROM webhook_configs \
             WHERE id = $1 AND project_id = $2"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(config_from_row).transpose()
    }

    /// Replaces the stored target (the caller merged the changes in).
    pub async fn update_webhook_config(
        &self,
        project_id: &str,
        id: &str,
        target: &WebhookTarget,
    ) -> StoreResult<Option<WebhookConfigRecord>> {
        let now = super::now_micros();
        let sql = self.sql(&format!(
            "UPDATE webhook_configs SET webhook_url = $3, webhook_events = $4, webhook_headers = $5, \
             webhook_output_format = $6, signing_secret = $7, updated_at = $8 \
             WHERE id = $1 AND project_id = $2 \
             RETURNING id, project_id, {TARGET_COLUMNS}, created_at, updated_at"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .bind(&target.webhook_url)
            .bind(to_json(&target.webhook_events))
            .bind(to_json(&target.webhook_headers))
            .bind(&target.webhook_output_format)
            .bind(&target.signing_secret)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(config_from_row).transpose()
    }

    pub async fn delete_webhook_config(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let sql = self.sql("DELETE FROM webhook_configs WHERE id = $1 AND project_id = $2");
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Newest first.
    pub async fn list_webhook_configs(
        &self,
        project_id: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<WebhookConfigRecord>> {
        let mut conditions = Conditions::default();
        conditions.push("project_id = ?", [Bind::Text(project_id.to_string())]);
        self.newest_first_page(
            &format!(
                "SELECT id, project_id, {TARGET_COLUMNS}, created_at, updated_at FROM webhook_configs"
            ),
            conditions,
            after,
            limit,
            config_from_row,
            |record| (record.created_at, record.id.clone()),
        )
        .await
    }

    pub async fn count_webhook_configs(&self, project_id: &str) -> StoreResult<i64> {
        let sql = self.sql("SELECT COUNT(*) AS n FROM webhook_configs WHERE project_id = $1");
        let row = sqlx::query(&sql)
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Copies a new job's webhook targets (inside its creating transaction).
    pub(super) async fn insert_job_webhooks(
        &self,
        conn: &mut AnyConnection,
        job_id: &str,
        targets: &[WebhookTarget],
    ) -> StoreResult<()> {
        let sql = self.sql(&format!(
            "INSERT INTO job_webhooks (job_id, position, {TARGET_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ));
        for (position, target) in targets.iter().enumerate() {
            sqlx::query(&sql)
                .bind(job_id)
                .bind(position as i64)
                .bind(&target.webhook_url)
                .bind(to_json(&target.webhook_events))
                .bind(to_json(&target.webhook_headers))
                .bind(&target.webhook_output_format)
                .bind(&target.signing_secret)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Writes the event for the job's (just changed) status to the outbox of every target that
    /// subscribed to it, inside the caller's transaction. Returns whether anything was written.
    pub(super) async fn enqueue_job_event(
        &self,
        conn: &mut AnyConnection,
        job: &JobRecord,
    ) -> StoreResult<bool> {
        let Some(event_type) = event_type(job) else {
            return Ok(false);
        };
        let sql = self.sql(&format!(
            "SELECT {TARGET_COLUMNS} FROM job_webhooks WHERE job_id = $1 ORDER BY position"
        ));
        let rows = sqlx::query(&sql)
            .bind(&job.id)
            .fetch_all(&mut *conn)
            .await?;
        let targets = rows
            .iter()
            .map(target_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let subscribed: Vec<&WebhookTarget> = targets
            .iter()
            .filter(|t| {
                t.webhook_events
                    .as_ref()
                    .is_none_or(|events| events.contains(&event_type))
            })
            .collect();
        if subscribed.is_empty() {
            return Ok(false);
        }
        let now = super::now_micros();
        let event_id = format!("evt-{}", uuid::Uuid::new_v4());
        let snapshot = serde_json::to_string(job).unwrap_or_default();
        let insert = self.sql(
            "INSERT INTO webhook_deliveries (event_id, event_type, project_id, job_id, job_snapshot, \
             webhook_url, webhook_headers, webhook_output_format, signing_secret, status, attempts, \
             run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'PENDING', 0, $10, $10, $10)",
        );
        for target in subscribed {
            sqlx::query(&insert)
                .bind(&event_id)
                .bind(&event_type)
                .bind(&job.project_id)
                .bind(&job.id)
                .bind(&snapshot)
                .bind(&target.webhook_url)
                .bind(to_json(&target.webhook_headers))
                .bind(&target.webhook_output_format)
                .bind(&target.signing_secret)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok(true)
    }

    /// Claims the oldest due delivery whose earlier events for the same job and URL are all
    /// settled. `None`: nothing to send now.
    pub async fn claim_delivery(&self, lease_micros: i64) -> StoreResult<Option<Delivery>> {
        let now = super::now_micros();
        let token = uuid::Uuid::new_v4().to_string();
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        // As for tasks (`Store::claim_task`): an expired lease and a due delivery are looked up
        // separately, each through its own partial index, instead of through one `OR`.
        let first_of_stream = "NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
             WHERE e.job_id = d.job_id AND e.webhook_url = d.webhook_url \
               AND e.seq < d.seq AND e.status IN ('PENDING', 'RUNNING'))";
        let sql = self.sql(&format!(
            "UPDATE webhook_deliveries SET status = 'RUNNING', lease_token = $1, lease_expires_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE seq = COALESCE( \
                 (SELECT d.seq FROM webhook_deliveries d \
                  WHERE d.status = 'RUNNING' AND d.lease_expires_at < $3 AND {first_of_stream} \
                  ORDER BY d.lease_expires_at LIMIT 1 {lock}), \
                 (SELECT d.seq FROM webhook_deliveries d \
                  WHERE d.status = 'PENDING' AND d.run_after <= $3 AND {first_of_stream} \
                  ORDER BY d.run_after, d.seq LIMIT 1 {lock})) \
             RETURNING seq, event_id, event_type, job_snapshot, webhook_url, webhook_headers, \
             webhook_output_format, signing_secret, attempts, created_at"
        ));
        let row = sqlx::query(&sql)
            .bind(&token)
            .bind(now + lease_micros)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let snapshot: String = row.try_get("job_snapshot")?;
        let job = serde_json::from_str(&snapshot)
            .map_err(|e| super::StoreError::Corrupt(format!("job_snapshot: {e}")))?;
        Ok(Some(Delivery {
            seq: row.try_get("seq")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            job,
            webhook_url: row.try_get("webhook_url")?,
            webhook_headers: json_column(&row, "webhook_headers")?,
            webhook_output_format: row.try_get("webhook_output_format")?,
            signing_secret: row.try_get("signing_secret")?,
            attempts: row.try_get("attempts")?,
            lease_token: token,
            created_at: row.try_get("created_at")?,
        }))
    }

    /// Deletes settled deliveries (`DELIVERED`, `FAILED`) last attempted before `before`, in
    /// batches so that SQLite's single writer is never held long; returns how many went.
    pub async fn prune_deliveries(&self, before: i64) -> StoreResult<u64> {
        const BATCH: u64 = 500;
        let sql = self.sql(&format!(
            "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM webhook_deliveries \
             WHERE status IN ('DELIVERED', 'FAILED') AND updated_at < $1 LIMIT {BATCH})"
        ));
        let mut pruned = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(before)
                .execute(&self.writer)
                .await?
                .rows_affected();
            pruned += done;
            if done < BATCH {
                return Ok(pruned);
            }
        }
    }

    /// Records an attempt's outcome if the lease is still this sender's.
    pub async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<bool> {
        let now = super::now_micros();
        let (status, error, run_after) = match outcome {
            DeliveryOutcome::Delivered => ("DELIVERED", None, now),
            DeliveryOutcome::Retry { error, run_after } => ("PENDING", Some(error), *run_after),
            DeliveryOutcome::Failed { error } => ("FAILED", Some(error), now),
        };
        let sql = self.sql(
            "UPDATE webhook_deliveries SET status = $1, last_error = $2, run_after = $3, \
             lease_token = NULL, lease_expires_at = NULL, updated_at = $4 \
             WHERE seq = $5 AND lease_token = $6 AND status = 'RUNNING'",
        );
        let done = sqlx::query(&sql)
            .bind(status)
            .bind(error)
            .bind(run_after)
            .bind(now)
            .bind(delivery.seq)
            .bind(&delivery.lease_token)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
