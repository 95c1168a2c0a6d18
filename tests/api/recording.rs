//! Record and replay of the `openai` backend: one server records its exchanges with the fake
//! model, the model is stopped, and a fresh server with no endpoint and no key replays them.

use serde_json::{json, Value};

use crate::common::fake_model::{FakeModel, Reply};
use crate::common::pdf::{pdf_with_pages, CONTRACT_TEXT, INVOICE_TEXT};
use crate::common::server::{classifyd_bin, settings, StoreKind, TestApp};

const KEY: &str = "sk-recorded-secret-9731";

/// Answers from the prompt's text, and refuses `json_schema` the way some local servers do, so
/// the recording holds a refusal and requests sent straight at the plainer format.
async fn reading_model() -> FakeModel {
    FakeModel::start(|_, body| {
        if body["response_format"]["type"] == "json_schema" {
            return Reply::error(400, "response_format json_schema is not supported");
        }
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

async fn classify_text(app: &TestApp, name: &str, text: &str) -> Value {
    let file_id = app.upload(name, text.as_bytes().to_vec()).await;
    let job_id = app.classify(&file_id).await;
    app.wait_job(&job_id).await
}

fn three_pages() -> Vec<u8> {
    pdf_with_pages(&[
        &["INVOICE No. 7", "Total due: 75.00 EUR"],
        &["SERVICE AGREEMENT", "between the parties ACME and Beta"],
        &["Weather outlook", "Sunny spells over the hills"],
    ])
}

async fn ade_classify(app: &TestApp, pdf: Vec<u8>) -> reqwest::Response {
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
    app.client
        .post(app.url("/v1/ade/classify"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn outcome(job: &Value) -> Value {
    json!([job["status"], job["result"], job["error_message"]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_exchanges_replay_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("model.jsonl");
    let recording_arg = recording.display().to_string();

    let model = reading_model().await;
    let recorder = TestApp::spawn(
        StoreKind::Sqlite,
        &[
            "--classifier",
            "openai",
            "--openai-base-url",
            &model.url,
            "--openai-api-key",
            KEY,
            "--model",
            "fake-model",
            "--model-record",
            &recording_arg,
        ],
    )
    .await
    .unwrap();
    let invoice = classify_text(&recorder, "bill.txt", INVOICE_TEXT).await;
    let contract = classify_text(&recorder, "terms.txt", CONTRACT_TEXT).await;
    assert_eq!(invoice["result"]["type"], "invoice", "{invoice}");
    assert_eq!(contract["result"]["type"], "contract", "{contract}");
    let pages = ade_classify(&recorder, three_pages()).await;
    assert_eq!(pages.status(), 200);
    let pages: Value = pages.json().await.unwrap();
    assert_eq!(pages["classification"][1]["class"], "contract", "{pages}");
    // A question asked again reaches the model, not the result cache: the recording sees it.
    let before = model.requests().len();
    let again = classify_text(&recorder, "bill-again.txt", INVOICE_TEXT).await;
    assert_eq!(outcome(&again), outcome(&invoice));
    assert_eq!(model.requests().len(), before + 1);
    let sent = model.requests();
    drop(recorder);
    drop(model);

    let text = std::fs::read_to_string(&recording).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        sent.len(),
        "every exchange is recorded, refusals included"
    );
    assert!(lines.iter().any(|l| l["status"] == 400));
    assert!(lines
        .iter()
        .all(|l| l["model"] == "fake-model" && l["key"].as_str().is_some_and(|k| k.len() == 64)));
    assert!(
        !text.contains(KEY),
        "the API key stays out of the recording"
    );

    // A fresh server: no endpoint, no key, the model gone.
    let replayer = TestApp::spawn(
        StoreKind::Sqlite,
        &[
            "--classifier",
            "openai",
            "--model",
            "fake-model",
            "--model-replay",
            &recording_arg,
        ],
    )
    .await
    .unwrap();
    let invoice_again = classify_text(&replayer, "bill.txt", INVOICE_TEXT).await;
    let contract_again = classify_text(&replayer, "terms.txt", CONTRACT_TEXT).await;
    assert_eq!(outcome(&invoice_again), outcome(&invoice));
    assert_eq!(outcome(&contract_again), outcome(&contract));
    let pages_again = ade_classify(&replayer, three_pages()).await;
    assert_eq!(pages_again.status(), 200);
    let pages_again: Value = pages_again.json().await.unwrap();
    assert_eq!(pages_again["classification"], pages["classification"]);

    // What was not recorded fails with a message that says so.
    let unknown = classify_text(&replayer, "memo.txt", "Minutes of the staff meeting.\n").await;
    assert_eq!(unknown["status"], "FAILED", "{unknown}");
    let message = unknown["error_message"].as_str().unwrap();
    assert!(
        message.contains("No recorded model exchange matched")
            && message.contains(&format!("CLASSIFYD_MODEL_REPLAY={recording_arg}"))
            && message.contains("fake-model"),
        "{message}"
    );
    let unknown_pages = ade_classify(&replayer, pdf_with_pages(&[&["Minutes"]])).await;
    assert_eq!(unknown_pages.status(), 503);
    let body: Value = unknown_pages.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("No recorded model exchange matched")),
        "{body}"
    );

    // Another model's requests are other requests.
    drop(replayer);
    let other_model = TestApp::spawn(
        StoreKind::Sqlite,
        &[
            "--classifier",
            "openai",
            "--model",
            "another-model",
            "--model-replay",
            &recording_arg,
        ],
    )
    .await
    .unwrap();
    let job = classify_text(&other_model, "bill.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "FAILED", "{job}");
}

#[tokio::test]
async fn record_and_replay_settings_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let file = dir.path().join("model.jsonl").display().to_string();
    let start = |args: Vec<&str>| {
        let mut argv = vec![
            "--data-dir",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
        ];
        argv.extend(args);
        classifyd::startup::Application::build(settings(&argv), Some(classifyd_bin()))
    };
    let error = |result: anyhow::Result<classifyd::startup::Application>| match result {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    };
    let both = error(
        start(vec![
            "--classifier",
            "openai",
            "--model-record",
            &file,
            "--model-replay",
            &file,
        ])
        .await,
    );
    assert!(both.contains("mutually exclusive"), "{both}");
    let missing = error(start(vec!["--classifier", "openai", "--model-replay", &file]).await);
    assert!(
        missing.contains("CLASSIFYD_MODEL_REPLAY") && missing.contains("cannot read"),
        "{missing}"
    );
    let local = error(start(vec!["--model-replay", &file]).await);
    assert!(local.contains("local classifier"), "{local}");
}
