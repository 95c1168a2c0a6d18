//! `load`: uploads documents, creates jobs with concurrent clients, waits for every job to end,
//! and reports throughput and latencies beside two ceilings measured in the same run: the
//! bare SQL one job needs (see `ceiling`) and `/health` under the same client concurrency.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::Row;

use crate::ceiling;
use crate::db::{BenchDatabase, Engine};
use crate::docs;
use crate::fake_model::FakeModel;
use crate::report::{percentile, round, Report};
use crate::server::{mb, Server};

#[derive(clap::Args)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    database: Engine,
    /// PostgreSQL admin URL; a fresh `classifyd_bench_*` database is made and dropped.
    #[arg(
        long,
        env = "CLASSIFYD_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
    #[arg(long, default_value_t = 400)]
    jobs: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// The server's `CLASSIFYD_WORKERS` (the ceiling uses as many claimers).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// The server's `CLASSIFYD_CLASSIFIER`, or `openai-fake`: the `openai` backend against
    /// the harness's instant model (see `fake_model`).
    #[arg(long, default_value = "local")]
    classifier: String,
    /// Leave the server's result cache on. Off by default: the run's jobs repeat a few
    /// documents with the same rules, so with the cache nearly every job would be a cache hit
    /// and twins would wait for each other, instead of measuring the pipeline.
    #[arg(long)]
    result_cache: bool,
    /// Upload every file of this directory instead of the generated small PDFs.
    #[arg(long)]
    docs: Option<PathBuf>,
    /// Give up waiting for the jobs after this long.
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
}

/// `--classifier` value that runs the `openai` backend against the instant fake model.
const FAKE_MODEL: &str = "openai-fake";

pub async fn run(bin: &Path, args: LoadArgs) -> anyhow::Result<Report> {
    let database = BenchDatabase::create(args.database, &args.pg_url).await?;
    let outcome = measure(bin, &args, &database).await;
    database.drop_database().await?;
    outcome
}

async fn measure(bin: &Path, args: &LoadArgs, database: &BenchDatabase) -> anyhow::Result<Report> {
    let mut env = vec![
        ("CLASSIFYD_WORKERS", args.workers.to_string()),
        ("CLASSIFYD_RESULT_CACHE", args.result_cache.to_string()),
    ];
    let fake_model = if args.classifier == FAKE_MODEL {
        let model = FakeModel::start().await?;
        env.push(("CLASSIFYD_CLASSIFIER", "openai".into()));
        env.push(("CLASSIFYD_OPENAI_BASE_URL", model.base_url.clone()));
        env.push(("CLASSIFYD_MODEL", "bench-instant".into()));
        Some(model)
    } else {
        env.push(("CLASSIFYD_CLASSIFIER", args.classifier.clone()));
        None
    };
    let server = Server::start(bin, Some(&database.url), &env).await?;
    let client = http_client(args.clients);
    let documents = match &args.docs {
        Some(dir) => read_dir_files(dir)?,
        None => docs::small_pdfs(),
    };
    let mut file_ids = Vec::new();
    for (name, bytes) in documents {
        file_ids.push(upload(&client, &server.base, &name, bytes).await?);
    }

    let health_url = format!("{}/health", server.base);
    let health_client = client.clone();
    let health_started = Instant::now();
    let health = hammer(args.jobs.max(200), args.clients, move |_| {
        let client = health_client.clone();
        let url = health_url.clone();
        async move {
            let response = client.get(&url).send().await?;
            ensure_success(response).await.map(|_| ())
        }
    })
    .await;
    let health_elapsed = health_started.elapsed();

    let started_micros = chrono::Utc::now().timestamp_micros();
    let create_started = Instant::now();
    let create_url = format!("{}/api/v2/classify", server.base);
    let rules = docs::rules();
    let create_client = client.clone();
    let file_ids = Arc::new(file_ids);
    let creates = hammer(args.jobs, args.clients, move |i| {
        let client = create_client.clone();
        let url = create_url.clone();
        let body = json!({
            "file_input": file_ids[i % file_ids.len()],
            "configuration": {"rules": rules.clone()},
        });
        async move {
            let response = client.post(&url).json(&body).send().await?;
            ensure_success(response).await.map(|_| ())
        }
    })
    .await;
    let create_elapsed = create_started.elapsed();
    let created = creates.iter().filter(|(_, ok)| ok.is_ok()).count();

    let pool = database.pool(2).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    loop {
        // Stops at the first active job, and only every 100 ms: this poll is database work the
        // ceiling run does not have, and the figures come from the rows' own timestamps.
        let active =
            sqlx::query("SELECT id FROM jobs WHERE status IN ('PENDING', 'RUNNING') LIMIT 1")
                .fetch_optional(&pool)
                .await?;
        if active.is_none() {
            break;
        }
        if Instant::now() > deadline {
            bail!("jobs still active after {} s", args.timeout_seconds);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = sqlx::query("SELECT status, error_message, created_at, updated_at FROM jobs")
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    let stages = server_stages(&client, &server.base).await?;
    let memory = server.memory();
    server.stop().await?;
    drop(fake_model);

    let mut completion_ms = Vec::new();
    let mut last_done = started_micros;
    let mut failed = 0;
    let mut first_failure = None;
    for row in &rows {
        let status: String = row.try_get("status")?;
        let created_at: i64 = row.try_get("created_at")?;
        let updated_at: i64 = row.try_get("updated_at")?;
        last_done = last_done.max(updated_at);
        if status == "COMPLETED" {
            completion_ms.push((updated_at - created_at) as f64 / 1000.0);
        } else {
            failed += 1;
            if first_failure.is_none() {
                first_failure = row.try_get::<Option<String>, _>("error_message")?;
            }
        }
    }
    let end_to_end_secs = (last_done - started_micros).max(1) as f64 / 1e6;
    let server_jobs_per_sec = completion_ms.len() as f64 / end_to_end_secs;

    let db_ceiling = ceiling::run(database, args.jobs, args.clients, args.workers).await?;

    let create_ms: Vec<f64> = creates.iter().map(|(ms, _)| *ms).collect();
    let health_ms: Vec<f64> = health.iter().map(|(ms, _)| *ms).collect();
    let create_p99 = percentile(&create_ms, 99.0);
    let ratio = server_jobs_per_sec / db_ceiling.jobs_per_sec;

    let mut report = Report::new(format!(
        "load ({:?}, classifier {}, {} jobs, {} clients, {} workers)",
        args.database, args.classifier, args.jobs, args.clients, args.workers
    ));
    report.figure("database", format!("{:?}", args.database).to_lowercase());
    report.figure("classifier", args.classifier.clone());
    report.figure("jobs", args.jobs);
    report.figure("clients", args.clients);
    report.figure("workers", args.workers);
    report.figure("result cache", args.result_cache);
    report.figure("server jobs/s", round(server_jobs_per_sec, 1));
    report.figure("db ceiling jobs/s", round(db_ceiling.jobs_per_sec, 1));
    report.figure("server / db ceiling", round(ratio, 3));
    report.figure(
        "create req/s",
        round(args.jobs as f64 / create_elapsed.as_secs_f64(), 1),
    );
    report.figure("create p50 ms", round(percentile(&create_ms, 50.0), 2));
    report.figure("create p99 ms", round(create_p99, 2));
    report.figure(
        "health req/s (http ceiling)",
        round(health.len() as f64 / health_elapsed.as_secs_f64(), 1),
    );
    report.figure("health p50 ms", round(percentile(&health_ms, 50.0), 2));
    report.figure("health p99 ms", round(percentile(&health_ms, 99.0), 2));
    report.figure(
        "create→done p50 ms",
        round(percentile(&completion_ms, 50.0), 1),
    );
    report.figure(
        "create→done p99 ms",
        round(percentile(&completion_ms, 99.0), 1),
    );
    report.figure(
        "errors",
        (args.jobs - created) + failed + health.iter().filter(|(_, ok)| ok.is_err()).count(),
    );
    if let Some(message) = first_failure.or_else(|| {
        creates
            .iter()
            .find_map(|(_, ok)| ok.as_ref().err().map(|e| format!("{e:#}")))
    }) {
        report.figure("first error", message);
    }
    for (stage, mean_ms) in stages {
        report.figure(&format!("server mean {stage} ms"), round(mean_ms, 2));
    }
    report.figure("server peak RSS MB", mb(memory.peak));
    if args.database == Engine::Postgres {
        report.check(
            &format!(
                "server jobs/s ≥ 50% of the database ceiling (PostgreSQL, classifier {})",
                args.classifier
            ),
            format!("{:.0}%", ratio * 100.0),
            ratio >= 0.5,
        );
    }
    if args.clients == 32 {
        report.check(
            &format!("create p99 ≤ 20 ms at 32 clients ({:?})", args.database),
            format!("{create_p99:.1} ms"),
            create_p99 <= 20.0,
        );
    }
    Ok(report)
}

pub fn http_client(clients: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("a default HTTP client builds")
}

/// Runs `f(0..n)` with `clients` concurrent callers; returns each call's latency in ms and
/// outcome, in completion order.
pub async fn hammer<F, Fut, T>(n: usize, clients: usize, f: F) -> Vec<(f64, anyhow::Result<T>)>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
    T: Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let next = next.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let started = Instant::now();
                let outcome = f(i).await;
                results.push((started.elapsed().as_secs_f64() * 1000.0, outcome));
            }
            results
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

pub async fn ensure_success(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Uploads one file; returns its id.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<String> {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
    let response = client
        .post(format!("{base}/api/v1/beta/files"))
        .multipart(form)
        .send()
        .await?;
    let body = ensure_success(response).await?;
    body["id"]
        .as_str()
        .map(str::to_string)
        .context("the upload answer has no id")
}

fn read_dir_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into();
            files.push((name, std::fs::read(&path)?));
        }
    }
    if files.is_empty() {
        bail!("{} has no files", dir.display());
    }
    files.sort();
    Ok(files)
}

/// Where a job's time went inside the server, from its own `/metrics` histograms: the mean of
/// each stage over the run (task = claim to outcome written, excluding the claim itself).
async fn server_stages(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let stages = [
        ("task", "classifyd_task_duration_seconds"),
        ("extraction", "classifyd_extraction_duration_seconds"),
        ("model call", "classifyd_model_call_duration_seconds"),
    ];
    Ok(stages
        .into_iter()
        .filter_map(|(stage, metric)| {
            let sum = metric_total(&text, &format!("{metric}_sum"));
            let count = metric_total(&text, &format!("{metric}_count"));
            (count > 0.0).then(|| (stage, sum / count * 1000.0))
        })
        .collect())
}

/// The sum of a Prometheus metric's samples over all its label sets.
fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}
