//! SIGTERM: the server stops, a task that finishes within the grace period is recorded, and a
//! task that does not is released to the queue at once (not left RUNNING until its lease
//! expires), so the next process takes it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;

use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::{
    connect_db, database_url, rules, wait_terminal, ServerProcess, StoreKind,
};

async fn upload(client: &reqwest::Client, base: &str, name: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(INVOICE_TEXT.as_bytes().to_vec())
                .file_name(name.to_string()),
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
    file["id"].as_str().unwrap().to_string()
}

async fn create(client: &reqwest::Client, base: &str, file_id: &str) -> String {
    let job: Value = client
        .post(format!("{base}/api/v2/classify"))
        .json(&json!({"file_input": file_id, "configuration": {"rules": rules()}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    job["id"].as_str().unwrap().to_string()
}

async fn wait_running(client: &reqwest::Client, base: &str, job_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
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
            return;
        }
        assert!(Instant::now() < deadline, "job never started: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigterm_finishes_or_releases(kind: StoreKind) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(kind, data_dir.path()).await else {
        return;
    };
    let fixtures = data_dir.path().join("fixtures.json");
    let slow = json!({"fixtures": [
        {"match": {"file_name": "brief-*"}, "delay_ms": 1000},
        {"match": {"file_name": "stuck-*"}, "delay_ms": 600_000}
    ]});
    std::fs::write(&fixtures, slow.to_string()).unwrap();
    let data = data_dir.path().display().to_string();
    let fixtures_arg = fixtures.display().to_string();
    let args = [
        "--data-dir",
        &data,
        "--database-url",
        &url,
        "--fixtures",
        &fixtures_arg,
        "--workers",
        "2",
        "--lease-seconds",
        "600",
        "--shutdown-grace-seconds",
        "3",
    ];
    let mut first = ServerProcess::spawn(&args, &[]);
    let client = reqwest::Client::new();
    let brief = upload(&client, &first.base, "brief-invoice.txt").await;
    let stuck = upload(&client, &first.base, "stuck-invoice.txt").await;
    let brief_job = create(&client, &first.base, &brief).await;
    let stuck_job = create(&client, &first.base, &stuck).await;
    wait_running(&client, &first.base, &brief_job).await;
    wait_running(&client, &first.base, &stuck_job).await;

    first.terminate();
    let status = first.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "SIGTERM is a clean exit: {status}");

    let mut db = connect_db(&url).await;
    let statuses = "SELECT j.status AS job_status, t.status AS task_status, t.attempts, \
                    t.lease_token FROM jobs j JOIN tasks t ON t.job_id = j.id WHERE j.id = ";
    let row = sqlx::query(&format!("{statuses}'{brief_job}'"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        row.get::<String, _>("job_status"),
        "COMPLETED",
        "a task that ends within the grace period is recorded"
    );
    let row = sqlx::query(&format!("{statuses}'{stuck_job}'"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("job_status"), "PENDING");
    assert_eq!(row.get::<String, _>("task_status"), "PENDING");
    assert_eq!(
        row.get::<i64, _>("attempts"),
        0,
        "a released attempt is not counted"
    );
    assert!(
        row.get::<Option<String>, _>("lease_token").is_none(),
        "released, not left leased for 600 s"
    );
    drop(db);

    // The next process (here: the same data, the delay scripted away) takes it at once.
    std::fs::write(&fixtures, json!({"fixtures": []}).to_string()).unwrap();
    let second = ServerProcess::spawn(&args, &[]);
    let job = wait_terminal(&client, &second.base, &stuck_job).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sqlite() {
    sigterm_finishes_or_releases(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_postgres() {
    sigterm_finishes_or_releases(StoreKind::Postgres).await;
}

/// The pids of the process's children (its pooled extraction children, here).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                // Fields after the parenthesised command: state, then the parent's pid.
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Alive and not a zombie waiting to be reaped.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// A request that never ends (an upload whose body stops arriving) must not keep the process
/// alive: after the grace period it is answered 503, the process exits within the margin, and
/// no extraction child outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_bounded_by_a_hanging_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().display().to_string();
    let grace = 2;
    let grace_arg = grace.to_string();
    let mut server = ServerProcess::spawn(
        &[
            "--data-dir",
            &data,
            "--workers",
            "2",
            "--shutdown-grace-seconds",
            &grace_arg,
        ],
        &[],
    );
    let pid = server.child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let children = loop {
        let children = children_of(pid);
        if !children.is_empty() {
            break children;
        }
        assert!(Instant::now() < deadline, "no extraction child was started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let address = server.base.trim_start_matches("http://").to_string();
    let mut upload = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = "POST /api/v1/beta/files HTTP/1.1\r\nHost: classifyd\r\n\
                Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n\
                --b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nclassify\r\n\
                --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\r\n\
                the first bytes of a body that never ends";
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.flush().await.unwrap();
    // The handler is now streaming the part into the blob store, waiting for more.
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.terminate();
    let signalled = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(grace + 10),
        upload.read_to_end(&mut answer),
    )
    .await
    .expect("the hanging request is answered")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "cut off with a 503: {answer}"
    );
    assert!(answer.contains(r#"{"detail":"#), "FastAPI-shaped: {answer}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(grace) - Duration::from_millis(100),
        "the request had the grace period before it was cut off"
    );

    // Grace (2 s) + the margin (1 s), with room for a busy machine; without the bound the
    // process would wait for the upload forever.
    let status = server.wait_exit(Duration::from_secs(grace + 6));
    assert!(
        status.success(),
        "a request cut off is a clean exit: {status}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while children.iter().any(|&child| running(child)) {
        assert!(
            Instant::now() < deadline,
            "extraction children outlived the server: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
