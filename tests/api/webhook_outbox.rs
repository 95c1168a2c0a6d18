//! The webhook outbox does not grow forever: settled deliveries are deleted after
//! CLASSIFYD_WEBHOOK_RETENTION_SECONDS, deliveries still being retried are kept.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::{
    connect_db, database_url, rules, wait_terminal, ServerProcess, StoreKind,
};

/// A receiver on 127.0.0.1 that accepts `/ok` and answers 500 to anything else.
async fn receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                loop {
                    let Ok(n @ 1..) = stream.read(&mut buffer).await else {
                        return;
                    };
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let ok = String::from_utf8_lossy(&request).starts_with("POST /ok ");
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

async fn deliveries(url: &str) -> Vec<(String, String)> {
    let mut db = connect_db(url).await;
    sqlx::query("SELECT webhook_url, status FROM webhook_deliveries")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("webhook_url"), row.get("status")))
        .collect()
}

async fn settled_deliveries_are_pruned(kind: StoreKind) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(kind, data_dir.path()).await else {
        return;
    };
    let data = data_dir.path().display().to_string();
    let server = ServerProcess::spawn(
        &[
            "--data-dir",
            &data,
            "--database-url",
            &url,
            "--allow-private-urls",
            "--webhook-retry-base-ms",
            "600000",
            "--webhook-retention-seconds",
            "3",
        ],
        &[],
    );
    let target = receiver().await;
    let client = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(INVOICE_TEXT.as_bytes().to_vec())
                .file_name("invoice.txt"),
        );
    let file: Value = client
        .post(format!("{}/api/v1/beta/files", server.base))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job: Value = client
        .post(format!("{}/api/v2/classify", server.base))
        .json(&json!({
            "file_input": file["id"],
            "configuration": {"rules": rules()},
            "webhook_configurations": [
                {"webhook_url": format!("{target}/ok")},
                {"webhook_url": format!("{target}/fail")},
            ],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = wait_terminal(&client, &server.base, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");

    let ok = format!("{target}/ok");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_delivered = false;
    loop {
        let rows = deliveries(&url).await;
        seen_delivered |= rows.iter().any(|(u, s)| *u == ok && s == "DELIVERED");
        let kept = rows.iter().filter(|(u, _)| *u != ok).count();
        if seen_delivered && rows.iter().all(|(u, _)| *u != ok) {
            assert!(
                kept > 0,
                "deliveries still being retried are kept: {rows:?}"
            );
            assert!(
                rows.iter().all(|(_, s)| s == "PENDING" || s == "RUNNING"),
                "{rows:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered rows were not pruned after the retention period: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_deliveries_are_pruned_sqlite() {
    settled_deliveries_are_pruned(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_deliveries_are_pruned_postgres() {
    settled_deliveries_are_pruned(StoreKind::Postgres).await;
}
