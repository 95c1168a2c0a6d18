//! The `openai` backend behind the other two clients' endpoints: LandingAI ADE's page-level
//! classify asks the model once per page, with that page's text only, and the deprecated v1
//! classifier jobs ask it once per file.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fake_model::{FakeModel, Reply};
use crate::common::pdf::{pdf_with_pages, CONTRACT_TEXT, INVOICE_TEXT};
use crate::common::server::{rules, StoreKind, TestApp};

/// A model that answers from the text it was sent, so a test can tell which page it saw.
async fn reading_model() -> FakeModel {
    FakeModel::start(|_, body| {
        let prompt = body["messages"].to_string();
        if prompt.contains("INVOICE") {
            Reply::answer(Some("invoice"), 0.91)
        } else if prompt.contains("AGREEMENT") {
            Reply::answer(Some("contract"), 0.82)
        } else {
            Reply::answer(None, 0.2)
        }
    })
    .await
}

async fn with_model(kind: StoreKind, model: &FakeModel) -> Option<TestApp> {
    TestApp::spawn(
        kind,
        &[
            "--classifier",
            "openai",
            "--openai-base-url",
            &model.url,
            "--openai-api-key",
            "sk-test",
            "--model",
            "fake-model",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ade_page_level_classify_asks_the_model_about_each_page() {
    let model = reading_model().await;
    let Some(app) = with_model(StoreKind::Sqlite, &model).await else {
        return;
    };
    let pdf = pdf_with_pages(&[
        &["INVOICE No. 7", "Total due: 75.00 EUR"],
        &["SERVICE AGREEMENT", "between the parties ACME and Beta"],
        &["Weather outlook", "Sunny spells over the hills"],
    ]);
    let classes = json!([
        {"class": "invoice", "description": "a bill with a total due"},
        {"class": "contract", "description": "an agreement between parties"},
    ]);
    let form = reqwest::multipart::Form::new()
        .part(
            "document",
            reqwest::multipart::Part::bytes(pdf).file_name("mixed.pdf"),
        )
        .text("classes", classes.to_string());
    let response = app
        .client
        .post(app.url("/v1/ade/classify"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let answers: Vec<(u64, &str)> = body["classification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["page"].as_u64().unwrap(), p["class"].as_str().unwrap()))
        .collect();
    assert_eq!(
        answers,
        [(0, "invoice"), (1, "contract"), (2, "unknown")],
        "{body}"
    );

    let prompts: Vec<String> = model
        .requests()
        .iter()
        .map(|r| r.body["messages"].to_string())
        .collect();
    assert_eq!(prompts.len(), 3, "one model call per page");
    for (marker, others) in [
        ("INVOICE No. 7", ["SERVICE AGREEMENT", "Weather outlook"]),
        ("SERVICE AGREEMENT", ["INVOICE No. 7", "Weather outlook"]),
        ("Weather outlook", ["INVOICE No. 7", "SERVICE AGREEMENT"]),
    ] {
        let prompt = prompts
            .iter()
            .find(|p| p.contains(marker))
            .unwrap_or_else(|| panic!("no prompt carried {marker:?}: {prompts:?}"));
        for other in others {
            assert!(
                !prompt.contains(other),
                "a page's prompt holds another page's text"
            );
        }
    }
}

async fn v1_job_through_the_model(kind: StoreKind) {
    let model = reading_model().await;
    let Some(app) = with_model(kind, &model).await else {
        return;
    };
    let invoice = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let contract = app
        .upload("terms.txt", CONTRACT_TEXT.as_bytes().to_vec())
        .await;
    let created: Value = app
        .client
        .post(app.url("/api/v1/classifier/jobs"))
        .json(&json!({"file_ids": [invoice, contract], "rules": rules()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job: Value = app
            .client
            .get(app.url(&format!("/api/v1/classifier/jobs/{job_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] != "PENDING" || std::time::Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let results: Value = app
        .client
        .get(app.url(&format!("/api/v1/classifier/jobs/{job_id}/results")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let type_of = |file_id: &str| {
        results["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["file_id"] == file_id)
            .map(|item| item["result"]["type"].clone())
    };
    assert_eq!(type_of(&invoice), Some(json!("invoice")), "{results}");
    assert_eq!(type_of(&contract), Some(json!("contract")), "{results}");
    assert_eq!(model.requests().len(), 2, "one model call per file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_jobs_classify_through_the_model_on_sqlite() {
    v1_job_through_the_model(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_jobs_classify_through_the_model_on_postgres() {
    v1_job_through_the_model(StoreKind::Postgres).await;
}
