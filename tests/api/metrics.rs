//! `/metrics` scraped after real traffic: request counts and latencies by route template and
//! status, jobs by status, queue depth, task durations, model calls and extraction time.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::pdf::{pdf_with_pages, INVOICE_TEXT};
use crate::common::server::{database_url, rules, wait_terminal, ServerProcess, StoreKind};

/// One sample of the Prometheus text format: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label has a value");
                            (key.to_string(), value.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            (name, labels, value.parse().expect("numeric sample"))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include all of `want`.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

pub async fn scrape(client: &reqwest::Client, base: &str) -> Vec<Sample> {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_metrics(&response.text().await.unwrap())
}

async fn metrics_after_traffic(kind: StoreKind) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(kind, data_dir.path()).await else {
        return;
    };
    let data = data_dir.path().display().to_string();
    // Its own process: the recorder is process-wide, so counts here are this test's alone.
    let server = ServerProcess::spawn(&["--data-dir", &data, "--database-url", &url], &[]);
    let client = reqwest::Client::new();
    let base = &server.base;

    let mut job_ids = Vec::new();
    let documents = [
        ("invoice.txt", INVOICE_TEXT.as_bytes().to_vec()),
        (
            "invoice.pdf",
            pdf_with_pages(&[&["INVOICE No. 7", "Total due: 10 EUR"]]),
        ),
    ];
    for (name, bytes) in documents {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "classify")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
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
            .json(&json!({"file_input": file["id"], "configuration": {"rules": rules()}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        job_ids.push(job["id"].as_str().unwrap().to_string());
    }
    for job_id in &job_ids {
        let job = wait_terminal(&client, base, job_id).await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
    }
    let unknown = client
        .get(format!("{base}/no/such/route/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let samples = scrape(&client, base).await;
    let requests = "classifyd_http_requests_total";
    assert_eq!(
        value(
            &samples,
            requests,
            &[
                ("method", "POST"),
                ("route", "/api/v2/classify"),
                ("status", "200")
            ]
        ),
        2.0
    );
    assert!(
        value(
            &samples,
            requests,
            &[
                ("method", "GET"),
                ("route", "/api/v2/classify/{job_id}"),
                ("status", "200")
            ]
        ) >= 2.0,
        "polls are counted under the route template"
    );
    assert_eq!(
        value(
            &samples,
            requests,
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        samples.iter().all(|(_, labels, _)| labels
            .values()
            .all(|v| !v.contains(&job_ids[0]) && !v.contains("12345"))),
        "no ids or raw paths in labels"
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/v2/classify")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_jobs",
            &[("api", "v2"), ("status", "COMPLETED")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_jobs",
            &[("api", "v2"), ("status", "PENDING")]
        ),
        0.0
    );
    assert_eq!(value(&samples, "classifyd_queue_depth", &[]), 0.0);
    assert_eq!(
        value(
            &samples,
            "classifyd_tasks_total",
            &[("outcome", "completed")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_task_duration_seconds_count",
            &[("outcome", "completed")]
        ),
        2.0
    );
    assert!(
        value(
            &samples,
            "classifyd_task_duration_seconds_bucket",
            &[("outcome", "completed"), ("le", "+Inf")]
        ) == 2.0,
        "durations are histograms with buckets"
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_model_calls_total",
            &[("backend", "local"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_model_call_duration_seconds_count",
            &[("backend", "local")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "classifyd_extraction_duration_seconds_count",
            &[("outcome", "ok")]
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_sqlite() {
    metrics_after_traffic(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_postgres() {
    metrics_after_traffic(StoreKind::Postgres).await;
}
