//! The database ceiling: the least SQL one job needs — insert the job and its task (one
//! transaction), claim the task (`FOR UPDATE SKIP LOCKED` on PostgreSQL), complete task and
//! job (one transaction) — run on the server's own schema in the same database, with as many
//! inserting clients and claiming workers as the server run had, on a pool of the same size
//! (on SQLite the server's single writer connection: every statement here writes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

use crate::db::{BenchDatabase, Engine};

pub struct Ceiling {
    pub jobs_per_sec: f64,
}

/// The server's default `CLASSIFYD_DB_MAX_CONNECTIONS`.
const POOL_SIZE: u32 = 16;
/// The server's SQLite writer pool (`Store::writer`).
const SQLITE_WRITERS: u32 = 1;

pub async fn run(
    database: &BenchDatabase,
    jobs: usize,
    clients: usize,
    workers: usize,
) -> anyhow::Result<Ceiling> {
    let pool = match database.engine {
        Engine::Postgres => database.pool(POOL_SIZE).await?,
        Engine::Sqlite => database.pool(SQLITE_WRITERS).await?,
    };
    let lock = match database.engine {
        Engine::Postgres => "FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let sql = Arc::new(Statements::new(database.engine, lock));
    let configuration = serde_json::json!({"rules": crate::docs::rules()}).to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(Notify::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (pool, sql, next, queued) = (pool.clone(), sql.clone(), next.clone(), queued.clone());
        let configuration = configuration.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < jobs {
                insert_job(&pool, &sql, &configuration).await?;
                queued.notify_one();
            }
            anyhow::Ok(())
        }));
    }
    for _ in 0..workers.max(1) {
        let (pool, sql, done, queued) = (pool.clone(), sql.clone(), done.clone(), queued.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < jobs {
                if claim_and_complete(&pool, &sql).await? {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = tokio::time::timeout(Duration::from_millis(5), queued.notified()).await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    pool.close().await;
    Ok(Ceiling {
        jobs_per_sec: jobs as f64 / elapsed.as_secs_f64(),
    })
}

struct Statements {
    insert_job: String,
    insert_task: String,
    claim: String,
    complete_task: String,
    complete_job: String,
}

impl Statements {
    fn new(engine: Engine, lock: &str) -> Self {
        let sql = |s: &str| match engine {
            Engine::Postgres => s.to_string(),
            Engine::Sqlite => s.replace('$', "?"),
        };
        Self {
            insert_job: sql(
                "INSERT INTO jobs (id, project_id, user_id, api, status, configuration, \
                 document_input_type, file_input, created_at, updated_at) \
                 VALUES ($1, 'prj-bench', 'usr-bench', 'v2', 'PENDING', $2, 'file_id', 'dfl-bench', $3, $3)",
            ),
            insert_task: sql(
                "INSERT INTO tasks (id, job_id, file_id, position, status, run_after, created_at, updated_at) \
                 VALUES ($1, $2, 'dfl-bench', 0, 'PENDING', $3, $3, $3)",
            ),
            claim: sql(&format!(
                "UPDATE tasks SET status = 'RUNNING', lease_token = $1, lease_expires_at = $2, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE id = (SELECT id FROM tasks WHERE status = 'PENDING' AND run_after <= $3 \
                             ORDER BY run_after LIMIT 1 {lock}) \
                 RETURNING id, job_id"
            )),
            complete_task: sql(
                "UPDATE tasks SET status = 'COMPLETED', result = $1, lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = $2 WHERE id = $3 AND lease_token = $4",
            ),
            complete_job: sql(
                "UPDATE jobs SET status = 'COMPLETED', result = $1, updated_at = $2 WHERE id = $3",
            ),
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn insert_job(pool: &AnyPool, sql: &Statements, configuration: &str) -> anyhow::Result<()> {
    let job_id = format!("cls-{}", uuid::Uuid::new_v4());
    let now = now();
    let mut tx = pool.begin().await?;
    sqlx::query(&sql.insert_job)
        .bind(&job_id)
        .bind(configuration)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&sql.insert_task)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&job_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Claims one task and completes it; `false` when the queue was empty.
async fn claim_and_complete(pool: &AnyPool, sql: &Statements) -> anyhow::Result<bool> {
    let token = uuid::Uuid::new_v4().to_string();
    let now = now();
    let Some(row) = sqlx::query(&sql.claim)
        .bind(&token)
        .bind(now + 30_000_000)
        .bind(now)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(false);
    };
    let task_id: String = row.try_get("id")?;
    let job_id: String = row.try_get("job_id")?;
    let result = r#"{"type":"invoice","confidence":0.9,"reasoning":"bench"}"#;
    let mut tx = pool.begin().await?;
    sqlx::query(&sql.complete_task)
        .bind(result)
        .bind(now)
        .bind(&task_id)
        .bind(&token)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&sql.complete_job)
        .bind(result)
        .bind(now)
        .bind(&job_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
