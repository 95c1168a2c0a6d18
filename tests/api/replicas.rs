//! Several replicas on one PostgreSQL database and one blob store: every job runs exactly
//! once whichever replica took it, any replica answers for any job, and a job created on one
//! replica wakes the workers of another at once (LISTEN/NOTIFY, not polling).

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::pdf::{CONTRACT_TEXT, INVOICE_TEXT};
use crate::common::server::{
    connect_db, database_url, rules, wait_terminal, ServerProcess, StoreKind,
};
use crate::metrics::{scrape, value};

const JOBS: usize = 200;

async fn upload(client: &reqwest::Client, base: &str, name: &str, text: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_string()),
        );
    let response = client
        .post(format!("{base}/api/v1/beta/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let file: Value = response.json().await.unwrap();
    file["id"].as_str().unwrap().to_string()
}

async fn create(client: &reqwest::Client, base: &str, file_id: &str) -> String {
    let response = client
        .post(format!("{base}/api/v2/classify"))
        .json(&json!({"file_input": file_id, "configuration": {"rules": rules()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_every_job_exactly_once() {
    run_replicas(None).await;
}

/// The same with nothing shared on disk: each replica has its own data directory and the files
/// live in one S3 bucket (moto), as with replicas on different machines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_an_s3_bucket() {
    let Some(endpoint) = crate::s3::endpoint() else {
        return;
    };
    run_replicas(Some(endpoint)).await;
}

async fn run_replicas(s3_endpoint: Option<String>) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(StoreKind::Postgres, data_dir.path()).await else {
        return;
    };
    let own_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut blob_url = String::new();
    let mut env = Vec::new();
    if let Some(endpoint) = &s3_endpoint {
        let bucket = crate::s3::create_bucket(endpoint).await;
        blob_url = format!("s3://{bucket}/replicas");
        env = crate::s3::s3_env(endpoint);
    }
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replicas: Vec<ServerProcess> = own_dirs
        .iter()
        .map(|own| {
            let data = if s3_endpoint.is_some() {
                own.path().display().to_string()
            } else {
                data_dir.path().display().to_string()
            };
            let mut args = vec![
                "--data-dir",
                &data,
                "--database-url",
                &url,
                "--workers",
                "4",
            ];
            if s3_endpoint.is_some() {
                args.extend_from_slice(&["--blob-url", &blob_url]);
            }
            ServerProcess::spawn(&args, &envs)
        })
        .collect();
    let client = reqwest::Client::new();
    // Files uploaded to one replica are readable by the other's workers (one blob store).
    let invoice = upload(&client, &replicas[0].base, "invoice.txt", INVOICE_TEXT).await;
    let contract = upload(&client, &replicas[1].base, "contract.txt", CONTRACT_TEXT).await;

    let created: Vec<(usize, String, &str)> = stream::iter(0..JOBS)
        .map(|n| {
            let client = client.clone();
            let base = replicas[n % 2].base.clone();
            let (file, expected) = if n % 3 == 0 {
                (contract.clone(), "contract")
            } else {
                (invoice.clone(), "invoice")
            };
            async move { (n, create(&client, &base, &file).await, expected) }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    for (n, job_id, expected) in &created {
        // Ask the replica that did not create it.
        let other = &replicas[(n + 1) % 2].base;
        let job = wait_terminal(&client, other, job_id).await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
        assert_eq!(job["result"]["type"], *expected, "{job}");
        let same: Value = client
            .get(format!("{}/api/v2/classify/{job_id}", replicas[n % 2].base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(same, job, "both replicas give the same answer");
    }

    // The model (here the local classifier) was called once per job in all, wherever it ran.
    let mut model_calls = 0.0;
    for replica in &replicas {
        let samples = scrape(&client, &replica.base).await;
        model_calls += value(
            &samples,
            "classifyd_model_calls_total",
            &[("outcome", "ok")],
        );
    }
    assert_eq!(
        model_calls, JOBS as f64,
        "one model call per job across replicas"
    );

    let mut db = connect_db(&url).await;
    let row = sqlx::query(
        "SELECT COUNT(*) AS tasks, \
         CAST(SUM(CASE WHEN attempts = 1 AND status = 'COMPLETED' THEN 1 ELSE 0 END) AS BIGINT) AS once \
         FROM tasks",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>("tasks"), JOBS as i64);
    assert_eq!(
        row.get::<i64, _>("once"),
        JOBS as i64,
        "every task was claimed and run exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_created_on_one_replica_wakes_another() {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(StoreKind::Postgres, data_dir.path()).await else {
        return;
    };
    let data = data_dir.path().display().to_string();
    let common = ["--data-dir", &data, "--database-url", &url];
    let api_only = ServerProcess::spawn(&[&common[..], &["--workers", "0"]].concat(), &[]);
    // Its workers look for work on their own only every ten minutes: the job below can only
    // start within wait_terminal's limit if the other replica's NOTIFY wakes them.
    let worker = ServerProcess::spawn(
        &[
            &common[..],
            &["--workers", "1", "--poll-interval-ms", "600000"],
        ]
        .concat(),
        &[],
    );
    let client = reqwest::Client::new();
    // Let the worker replica finish its start-up claim and open its LISTEN connection.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let file = upload(&client, &api_only.base, "invoice.txt", INVOICE_TEXT).await;
    let job_id = create(&client, &api_only.base, &file).await;
    let job = wait_terminal(&client, &worker.base, &job_id).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
}
