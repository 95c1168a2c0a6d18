//! The result cache: the same question (document content, rules, mode, pages, model) asked
//! twice is paid for once; anything that changes the question asks the model again.

use serde_json::{json, Value};

use crate::common::fake_model::{FakeModel, Reply};
use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::{
    database_url, rules, wait_terminal, ServerProcess, StoreKind, TestApp,
};

async fn with_model(kind: StoreKind, model: &FakeModel, extra: &[&str]) -> Option<TestApp> {
    let mut args = vec![
        "--classifier",
        "openai",
        "--openai-base-url",
        &model.url,
        "--model",
        "fake-model",
        "--model-retry-base-ms",
        "10",
        "--model-max-retries",
        "0",
    ];
    args.extend_from_slice(extra);
    TestApp::spawn(kind, &args).await
}

/// Creates a job on `file_id` with `configuration` and waits for its end; with its usage.
async fn ask(app: &TestApp, file_id: &str, configuration: Value) -> Value {
    let response = app
        .create_job(json!({"file_input": file_id, "configuration": configuration}))
        .await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let job = app.wait_job(id).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    app.client
        .get(app.url(&format!("/api/v2/classify/{id}?expand=usage")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn the_same_question_is_paid_once(kind: StoreKind) {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.8)).await;
    let Some(app) = with_model(kind, &model, &[]).await else {
        return;
    };
    let first_file = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let first = ask(&app, &first_file, json!({"rules": rules()})).await;
    assert_eq!(model.requests().len(), 1);
    assert_eq!(first["usage"]["cached"], false, "{first}");
    assert_eq!(first["usage"]["model_calls"], 1);

    // The same bytes uploaded again under another name: the same question.
    let second_file = app
        .upload("copy.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let second = ask(&app, &second_file, json!({"rules": rules()})).await;
    assert_eq!(
        model.requests().len(),
        1,
        "the cached answer made no model call"
    );
    assert_eq!(second["result"]["type"], "invoice");
    assert_eq!(second["result"]["confidence"], 0.8);
    let reasoning = second["result"]["reasoning"].as_str().unwrap();
    assert!(
        reasoning.starts_with("the fake model read the document"),
        "{reasoning}"
    );
    assert!(reasoning.contains("From the result cache"), "{reasoning}");
    let usage = &second["usage"];
    assert_eq!(usage["cached"], true, "{usage}");
    assert_eq!(usage["prompt_tokens"], 0);
    assert_eq!(usage["completion_tokens"], 0);
    assert_eq!(usage["model_calls"], 0);
    assert_eq!(usage["pages_processed"], 1);
    assert_eq!(usage["confidence_source"], "stated");

    // Each change to the question asks the model again.
    let mut changed_rules = rules();
    changed_rules[0]["description"] = json!("a bill with a total due");
    ask(&app, &first_file, json!({"rules": changed_rules})).await;
    assert_eq!(model.requests().len(), 2, "a changed rule asks the model");
    ask(
        &app,
        &first_file,
        json!({"rules": rules(), "mode": "MULTIMODAL"}),
    )
    .await;
    assert_eq!(model.requests().len(), 3, "a changed mode asks the model");
    let first_page = json!({"rules": rules(), "parsing_configuration": {"target_pages": "1"}});
    ask(&app, &first_file, first_page.clone()).await;
    assert_eq!(model.requests().len(), 4, "a page selection asks the model");
    let cached = ask(&app, &second_file, first_page).await;
    assert_eq!(model.requests().len(), 4, "and is cached in turn");
    assert_eq!(cached["usage"]["cached"], true);
    let other = app
        .upload(
            "other.txt",
            b"INVOICE No. 2024-002\nTotal due: 5 EUR\n".to_vec(),
        )
        .await;
    ask(&app, &other, json!({"rules": rules()})).await;
    assert_eq!(model.requests().len(), 5, "other content asks the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_question_is_paid_once_on_sqlite() {
    the_same_question_is_paid_once(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_question_is_paid_once_on_postgres() {
    the_same_question_is_paid_once(StoreKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_every_job_asks_the_model() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.8)).await;
    let app = with_model(StoreKind::Sqlite, &model, &["--result-cache", "false"])
        .await
        .unwrap();
    let file = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    for asked in 1..=2 {
        let job = ask(&app, &file, json!({"rules": rules()})).await;
        assert_eq!(model.requests().len(), asked);
        assert_eq!(job["usage"]["cached"], false);
        assert_eq!(job["usage"]["model_calls"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_not_cached() {
    let model = FakeModel::start(|n, _| {
        if n == 0 {
            Reply::error(500, "upstream overloaded")
        } else {
            Reply::answer(Some("invoice"), 0.8)
        }
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let file = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let job_id = app.classify(&file).await;
    let failed = app.wait_job(&job_id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let job = ask(&app, &file, json!({"rules": rules()})).await;
    assert_eq!(model.requests().len(), 2, "the failure was not kept");
    assert_eq!(job["usage"]["cached"], false);
    assert_eq!(job["result"]["type"], "invoice");
}

/// Twin jobs running at the same time in one process ask once: the others wait for the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_jobs_at_once_ask_the_model_once() {
    let model = FakeModel::start(|_, _| {
        Reply::Slow(
            std::time::Duration::from_millis(300),
            Box::new(Reply::answer(Some("invoice"), 0.8)),
        )
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &["--workers", "4"])
        .await
        .unwrap();
    let file = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.classify(&file).await);
    }
    let mut cached = 0;
    for id in &ids {
        let job = app.wait_job(id).await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
        assert_eq!(job["result"]["type"], "invoice");
        let reasoning = job["result"]["reasoning"].as_str().unwrap();
        cached += usize::from(reasoning.contains("From the result cache"));
    }
    assert_eq!(model.requests().len(), 1, "one model call for three twins");
    assert_eq!(cached, 2);
}

/// A parse job's text is a document too: classifying the same parse job twice asks once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_jobs_text_is_cached_too() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.8)).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let file = app
        .upload("bill.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let response = app
        .client
        .post(app.url("/api/v2/parse"))
        .json(&json!({"file_id": file, "tier": "fast", "version": "latest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let parse: Value = response.json().await.unwrap();
    let parse_id = parse["id"].as_str().unwrap();
    let first = ask(&app, parse_id, json!({"rules": rules()})).await;
    assert_eq!(first["usage"]["cached"], false, "{first}");
    let second = ask(&app, parse_id, json!({"rules": rules()})).await;
    assert_eq!(second["usage"]["cached"], true, "{second}");
    assert_eq!(second["result"]["type"], "invoice");
    assert_eq!(model.requests().len(), 1);
}

/// The cache lives in the database: a replica answers a question another replica paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_cache() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.8)).await;
    let data_dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url(StoreKind::Postgres, data_dir.path()).await else {
        return;
    };
    let data = data_dir.path().display().to_string();
    let replicas: Vec<ServerProcess> = (0..2)
        .map(|_| {
            ServerProcess::spawn(
                &[
                    "--data-dir",
                    &data,
                    "--database-url",
                    &url,
                    "--classifier",
                    "openai",
                    "--openai-base-url",
                    &model.url,
                    "--model",
                    "fake-model",
                ],
                &[],
            )
        })
        .collect();
    let client = reqwest::Client::new();
    let mut jobs = Vec::new();
    for replica in &replicas {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "classify")
            .part(
                "file",
                reqwest::multipart::Part::bytes(INVOICE_TEXT.as_bytes().to_vec())
                    .file_name("bill.txt"),
            );
        let file: Value = client
            .post(format!("{}/api/v1/beta/files", replica.base))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job: Value = client
            .post(format!("{}/api/v2/classify", replica.base))
            .json(&json!({"file_input": file["id"], "configuration": {"rules": rules()}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job_id = job["id"].as_str().unwrap();
        jobs.push(wait_terminal(&client, &replica.base, job_id).await);
    }
    assert_eq!(
        model.requests().len(),
        1,
        "one model call for both replicas"
    );
    assert_eq!(jobs[0]["result"]["type"], "invoice", "{}", jobs[0]);
    assert_eq!(jobs[1]["result"]["type"], "invoice", "{}", jobs[1]);
    let reasoning = jobs[1]["result"]["reasoning"].as_str().unwrap();
    assert!(reasoning.contains("From the result cache"), "{reasoning}");
}
