//! The S3-compatible blob store against a real S3 server (moto in server mode, started by
//! scripts/test.sh, which exports CLASSIFYD_TEST_S3_ENDPOINT): uploads land in the bucket under
//! the prefix, workers classify from it, downloads stream from it, deletes remove the object,
//! and /ready fails when the bucket is missing. Without the endpoint the test skips, except
//! with CI=true.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::{database_url, rules, wait_terminal, ServerProcess, StoreKind};

pub fn endpoint() -> Option<String> {
    match std::env::var("CLASSIFYD_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CLASSIFYD_TEST_S3_ENDPOINT is not set in CI (scripts/test.sh starts moto)")
        }
        _ => {
            eprintln!("skipping the S3 test: CLASSIFYD_TEST_S3_ENDPOINT is not set (scripts/test.sh starts moto)");
            None
        }
    }
}

/// Keys under `prefix` in the bucket, from a ListObjectsV2 answer (moto takes unsigned
/// requests).
async fn keys(client: &reqwest::Client, endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let listing = client
        .get(format!("{endpoint}/{bucket}?list-type=2&prefix={prefix}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect()
}

pub fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// A new, empty bucket; returns its name.
pub async fn create_bucket(endpoint: &str) -> String {
    let bucket = format!("classifyd-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    bucket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_live_in_the_bucket() {
    let Some(endpoint) = endpoint() else { return };
    let client = reqwest::Client::new();
    let bucket = create_bucket(&endpoint).await;

    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().display().to_string();
    let database = database_url(StoreKind::Sqlite, data_dir.path())
        .await
        .unwrap();
    let blob_url = format!("s3://{bucket}/deployment-a");
    let env = s3_env(&endpoint);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::spawn(
        &[
            "--data-dir",
            &data,
            "--database-url",
            &database,
            "--blob-url",
            &blob_url,
        ],
        &envs,
    );
    let base = &server.base;
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part(
            "file",
            reqwest::multipart::Part::bytes(INVOICE_TEXT.as_bytes().to_vec())
                .file_name("invoice.txt"),
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
    let file_id = file["id"].as_str().unwrap().to_string();
    let stored = keys(&client, &endpoint, &bucket, "deployment-a/").await;
    assert_eq!(
        stored
            .iter()
            .filter(|k| *k != "deployment-a/.ready")
            .count(),
        1,
        "the upload is one object under the prefix: {stored:?}"
    );
    assert!(
        std::fs::read_dir(data_dir.path().join("blobs/tmp"))
            .unwrap()
            .filter_map(Result::ok)
            .all(|entry| entry.file_name() == ".ready"),
        "no temporary upload file is left behind"
    );

    // The worker reads the document from the bucket.
    let job: Value = client
        .post(format!("{base}/api/v2/classify"))
        .json(&json!({"file_input": file_id, "configuration": {"rules": rules()}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = wait_terminal(&client, base, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");

    // Downloads stream from the bucket.
    let link: Value = client
        .get(format!("{base}/api/v1/beta/files/{file_id}/content"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), INVOICE_TEXT.as_bytes());

    // Deleting the file deletes the object.
    let deleted = client
        .delete(format!("{base}/api/v1/beta/files/{file_id}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let stored = keys(&client, &endpoint, &bucket, "deployment-a/").await;
    assert!(
        stored.iter().all(|k| k == "deployment-a/.ready"),
        "object left after delete: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_not_ready() {
    let Some(endpoint) = endpoint() else { return };
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().display().to_string();
    let env = s3_env(&endpoint);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let blob_url = format!("s3://no-such-bucket-{}", uuid::Uuid::new_v4().simple());
    let server = ServerProcess::spawn(&["--data-dir", &data, "--blob-url", &blob_url], &envs);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let ready = client
        .get(format!("{}/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("blob store"),
        "{body}"
    );
}
