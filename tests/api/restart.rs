//! `kill -9` while a task is leased loses nothing: the lease expires and a new process
//! finishes the job.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::{classifyd_bin, database_url, wait_terminal, StoreKind};

fn start(data_dir: &std::path::Path, database_url: &str) -> (Child, String) {
    let port_file = data_dir.join(format!("port-{}", uuid::Uuid::new_v4()));
    let child = Command::new(classifyd_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lease-seconds",
            "2",
            "--poll-interval-ms",
            "100",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--port-file")
        .arg(&port_file)
        .args([
            "--database-url",
            database_url,
            "--fixtures",
            "tests/fixtures/restart.json",
            "--api-keys",
            "",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start classifyd");
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            if !port.is_empty() {
                return (child, format!("http://127.0.0.1:{}", port.trim()));
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn killed_while_leased_then_completed(kind: StoreKind) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(kind, data_dir.path()).await else {
        return;
    };
    let (mut first, base) = start(data_dir.path(), &url);
    let client = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(INVOICE_TEXT.as_bytes().to_vec())
                .file_name("slow-invoice.txt"),
        );
    let file: Value = client
        .post(format!("{base}/api/v1/beta/files"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job: Value = client
        .post(format!("{base}/api/v2/classify"))
        .json(&serde_json::json!({"file_input": file["id"], "configuration": {"rules": crate::common::server::rules()}}))
        .send().await.unwrap().json().await.unwrap();
    let job_id = job["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job: Value = client
            .get(format!("{base}/api/v2/classify/{job_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "RUNNING" {
            break;
        }
        assert!(Instant::now() < deadline, "job never started: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    let (mut second, base) = start(data_dir.path(), &url);
    let job = wait_terminal(&client, &base, &job_id).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_task_sqlite() {
    killed_while_leased_then_completed(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_task_postgres() {
    killed_while_leased_then_completed(StoreKind::Postgres).await;
}
