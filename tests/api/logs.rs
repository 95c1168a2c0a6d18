//! Logs: with `CLASSIFYD_LOG_FORMAT=json` every line is a JSON object; the lines of a request
//! carry its `x-request-id` (taken from the client, or made up and echoed back); neither API
//! keys nor document text ever reach the log.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::server::{rules, wait_terminal, ServerProcess};

const KEY: &str = "sk-never-log-this-7f3a";
const MARKER: &str = "Zebrafishmarker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_with_request_ids_and_no_secrets() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().display().to_string();
    let log_path = data_dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let keys = format!("{KEY}=prj-logs");
    let mut server = ServerProcess::spawn_logging(
        &["--data-dir", &data],
        &[
            ("CLASSIFYD_LOG_FORMAT", "json"),
            ("CLASSIFYD_API_KEYS", &keys),
            ("RUST_LOG", "info"),
        ],
        log,
    );
    let client = reqwest::Client::new();
    let base = &server.base;

    let text = format!("INVOICE No. 9\n{MARKER} consulting\nTotal due: 10 EUR\n");
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(text.into_bytes()).file_name("invoice.txt"),
        );
    let upload = client
        .post(format!("{base}/api/v1/beta/files"))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    let generated = upload.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        !generated.is_empty(),
        "a request id is made up when none is sent"
    );
    let file: Value = upload.json().await.unwrap();

    let create = client
        .post(format!("{base}/api/v2/classify"))
        .bearer_auth(KEY)
        .header("x-request-id", "req-from-the-client-42")
        .json(&json!({"file_input": file["id"], "configuration": {"rules": rules()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 200);
    assert_eq!(
        create.headers()["x-request-id"],
        "req-from-the-client-42",
        "the client's request id is echoed"
    );
    let job: Value = create.json().await.unwrap();
    let done = {
        let authed = reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {KEY}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap();
        wait_terminal(&authed, base, job["id"].as_str().unwrap()).await
    };
    assert_eq!(done["status"], "COMPLETED", "{done}");

    server.terminate();
    server.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let of_request = |id: &str| {
        lines
            .iter()
            .filter(|line| line["span"]["request_id"] == id)
            .count()
    };
    assert!(of_request("req-from-the-client-42") >= 1, "{log}");
    assert!(of_request(&generated) >= 1, "{log}");
    for line in &lines {
        if line["span"]["name"] == "request" {
            assert!(line["span"]["request_id"].is_string(), "{line}");
        }
    }
    assert!(!log.contains(KEY), "an API key reached the log");
    assert!(!log.contains(MARKER), "document text reached the log");
}
