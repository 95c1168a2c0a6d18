//! The `openai` backend against the fake OpenAI-compatible model: what it sends, how it reads
//! answers, and how every fault of the endpoint ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fake_model::{FakeModel, Reply};
use crate::common::pdf::{pdf_with_pages, CONTRACT_TEXT, INVOICE_TEXT};
use crate::common::server::{rules, StoreKind, TestApp};

const KEY: &str = "sk-test-secret-4242";

/// The server under test, classifying through `model`; `extra` adds settings flags.
async fn with_model(kind: StoreKind, model: &FakeModel, extra: &[&str]) -> Option<TestApp> {
    let mut args = vec![
        "--classifier",
        "openai",
        "--openai-base-url",
        &model.url,
        "--openai-api-key",
        KEY,
        "--model",
        "fake-model",
        "--model-retry-base-ms",
        "10",
    ];
    if !extra.contains(&"--model-max-retries") {
        args.extend_from_slice(&["--model-max-retries", "2"]);
    }
    args.extend_from_slice(extra);
    TestApp::spawn(kind, &args).await
}

/// Runs a scenario on SQLite and on PostgreSQL (skipped when unreachable outside CI).
macro_rules! both_stores {
    ($name:ident, |$kind:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn scenario($kind: StoreKind) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario(StoreKind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                scenario(StoreKind::Postgres).await;
            }
        }
    };
}

async fn classify_text(app: &TestApp, name: &str, text: &str) -> Value {
    let file_id = app.upload(name, text.as_bytes().to_vec()).await;
    let job_id = app.classify(&file_id).await;
    app.wait_job(&job_id).await
}

async fn usage(app: &TestApp, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap();
    let body: Value = app
        .client
        .get(app.url(&format!("/api/v2/classify/{id}?expand=usage")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["usage"].clone()
}

both_stores!(the_model_classifies_with_structured_output, |kind| {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.87)).await;
    let Some(app) = with_model(kind, &model, &[]).await else {
        return;
    };
    let job = classify_text(&app, "bill.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
    assert_eq!(job["result"]["confidence"], 0.87);
    assert_eq!(
        job["result"]["reasoning"],
        "the fake model read the document"
    );

    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = &request.body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["properties"]["type"]["enum"],
        json!(["invoice", "contract", null])
    );
    let prompt = body["messages"].to_string();
    assert!(prompt.contains("a bill requesting payment"), "{prompt}");
    assert!(prompt.contains("a legal agreement"), "{prompt}");
    assert!(prompt.contains("Total due: 1000 EUR"), "{prompt}");

    let usage = usage(&app, &job).await;
    assert_eq!(usage["prompt_tokens"], 120, "{usage}");
    assert_eq!(usage["completion_tokens"], 30);
    assert_eq!(usage["model_calls"], 1);
    assert_eq!(usage["pages_processed"], 1);
    assert_eq!(usage["credits"], 1.0);
    assert_eq!(usage["trimmed"], false);
    assert_eq!(usage["confidence_source"], "stated");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_json_schema_falls_back_to_json_mode_and_is_remembered() {
    let model = FakeModel::start(|_, body| {
        if body["response_format"]["type"] == "json_schema" {
            Reply::error(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            )
        } else {
            Reply::answer(Some("contract"), 0.7)
        }
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", CONTRACT_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "contract");
    let formats = |requests: &[crate::common::fake_model::Recorded]| -> Vec<Value> {
        requests
            .iter()
            .map(|r| r.body["response_format"]["type"].clone())
            .collect()
    };
    assert_eq!(
        formats(&model.requests()),
        vec![json!("json_schema"), json!("json_object")]
    );
    // The next classification (another document, so not a cached answer) goes straight to
    // the format that worked.
    let job = classify_text(&app, "b.txt", &format!("{CONTRACT_TEXT}Annex B.\n")).await;
    assert_eq!(job["result"]["type"], "contract");
    assert_eq!(formats(&model.requests()[2..]), vec![json!("json_object")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_without_response_format_or_logprobs_gets_plain_requests() {
    let model = FakeModel::start(|_, body| {
        if body.get("response_format").is_some() || body.get("logprobs").is_some() {
            Reply::error(422, "unknown field")
        } else {
            Reply::text("The document is an invoice: it asks for payment of a total.")
        }
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
    assert_eq!(
        model.requests().len(),
        4,
        "json_schema, json_object, plain+logprobs, plain"
    );
    assert!(job["result"]["reasoning"]
        .as_str()
        .unwrap()
        .contains("asks for payment"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_is_not_a_rule_is_no_match() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("receipt"), 0.95)).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], Value::Null);
    assert_eq!(job["result"]["confidence"], 0.0);
    assert!(job["result"]["reasoning"]
        .as_str()
        .unwrap()
        .contains("\"receipt\""));

    // Case differences are not unknown types.
    let model = FakeModel::start(|_, _| Reply::answer(Some("INVOICE"), 0.95)).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["result"]["type"], "invoice", "{job}");
}

/// Calibration: with log-probabilities the confidence is the probability the model gave its
/// label, whatever confidence it states in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidence_comes_from_the_labels_logprobs() {
    let probabilities = [0.97, 0.8, 0.55, 0.3];
    let model = FakeModel::start(move |n, body| {
        assert_eq!(body["logprobs"], true);
        Reply::answer_with_logprobs("invoice", 0.99, probabilities[n % probabilities.len()])
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    for (i, p) in probabilities.iter().enumerate() {
        // A different document each time: the same one would be answered from the cache.
        let text = format!("{INVOICE_TEXT}Reference {i}\n");
        let job = classify_text(&app, &format!("{i}.txt"), &text).await;
        assert_eq!(job["result"]["type"], "invoice", "{job}");
        let confidence = job["result"]["confidence"].as_f64().unwrap();
        assert!((confidence - p).abs() < 1e-9, "{confidence} != {p}");
        assert_eq!(usage(&app, &job).await["confidence_source"], "logprobs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out() {
    let model = FakeModel::start(|n, _| {
        if n == 0 {
            Reply::Status {
                status: 429,
                body: json!({"error": {"message": "Rate limit reached"}}),
                retry_after: Some(1),
            }
        } else {
            Reply::answer(Some("invoice"), 0.9)
        }
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].at - requests[0].at >= Duration::from_secs(1),
        "the retry came before Retry-After allowed it"
    );
    assert_eq!(usage(&app, &job).await["model_calls"], 2);
}

both_stores!(
    a_failing_model_ends_the_job_failed_with_its_answer,
    |kind| {
        let model = FakeModel::start(|_, _| {
            Reply::error(500, &format!("upstream overloaded (key {KEY} is fine)"))
        })
        .await;
        let Some(app) = with_model(kind, &model, &[]).await else {
            return;
        };
        let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
        assert_eq!(job["status"], "FAILED", "{job}");
        let message = job["error_message"].as_str().unwrap();
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(message.contains("upstream overloaded"), "{message}");
        assert!(message.contains("3 requests"), "{message}");
        assert!(!message.contains(KEY), "the key leaked: {message}");
        assert_eq!(model.requests().len(), 3, "1 try + 2 retries");
        assert_eq!(job["result"], Value::Null);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_slower_than_the_timeout_fails_the_job() {
    let model = FakeModel::start(|_, _| {
        Reply::Slow(
            Duration::from_secs(5),
            Box::new(Reply::answer(Some("invoice"), 0.9)),
        )
    })
    .await;
    let app = with_model(
        StoreKind::Sqlite,
        &model,
        &["--model-timeout-seconds", "1", "--model-max-retries", "1"],
    )
    .await
    .unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let message = job["error_message"].as_str().unwrap();
    assert!(message.contains("no answer within 1 s"), "{message}");
    assert!(
        message.contains("CLASSIFYD_MODEL_TIMEOUT_SECONDS"),
        "{message}"
    );
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_read_tolerantly_or_retried() {
    // Cut-off JSON still names its type.
    let model = FakeModel::start(|_, _| Reply::text("{\"type\": \"contract\", \"confid")).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", CONTRACT_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "contract");

    // An answer with no classification in it is asked again, and a body that is not JSON at all
    // counts as a failed request.
    let model = FakeModel::start(|n, _| match n {
        0 => Reply::text("<html>I'm sorry, I can't</html>"),
        1 => Reply::RawBody("upstream proxy error".into()),
        _ => Reply::answer(Some("invoice"), 0.6),
    })
    .await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice");
    assert_eq!(model.requests().len(), 3);

    // Never a usable answer: FAILED, quoting what the model said.
    let model = FakeModel::start(|_, _| Reply::text("I'm sorry, I can't help with that.")).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let job = classify_text(&app, "a.txt", INVOICE_TEXT).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let message = job["error_message"].as_str().unwrap();
    assert!(message.contains("could not be read"), "{message}");
    assert!(message.contains("I'm sorry"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_never_blocks_the_api() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let app = TestApp::spawn(
        StoreKind::Sqlite,
        &[
            "--classifier",
            "openai",
            "--openai-base-url",
            &url,
            "--model-retry-base-ms",
            "10",
            "--model-max-retries",
            "1",
        ],
    )
    .await
    .unwrap();
    let file_id = app.upload("a.txt", INVOICE_TEXT.as_bytes().to_vec()).await;
    // `classify` asserts that create answers PENDING at once.
    let job = app.wait_job(&app.classify(&file_id).await).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let message = job["error_message"].as_str().unwrap();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(message.contains(&url), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_documents_are_trimmed_to_the_token_budget() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.9)).await;
    let app = with_model(StoreKind::Sqlite, &model, &["--token-budget", "200"])
        .await
        .unwrap();
    let long = format!(
        "{INVOICE_TEXT}{}",
        "More line items follow here. ".repeat(400)
    );
    let job = classify_text(&app, "long.txt", &long).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(usage(&app, &job).await["trimmed"], true);
    let prompt = model.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("INVOICE No. 2024-001"),
        "the beginning stays"
    );
    assert!(prompt.contains("[…]"));
    assert!(prompt.len() < 200 * 4 + 100, "{} chars", prompt.len());

    let job = classify_text(&app, "short.txt", INVOICE_TEXT).await;
    assert_eq!(usage(&app, &job).await["trimmed"], false);
}

/// A 1×1 PNG.
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

fn png() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap()
}

async fn multimodal_job(app: &TestApp, file_id: &str) -> Value {
    let response = app
        .create_job(json!({"file_input": file_id,
            "configuration": {"rules": rules(), "mode": "MULTIMODAL"}}))
        .await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    app.wait_job(job["id"].as_str().unwrap()).await
}

/// The parts of the user message of a recorded request: (texts, image data URLs).
fn parts(body: &Value) -> (Vec<String>, Vec<String>) {
    let content = body["messages"][1]["content"]
        .as_array()
        .expect("content parts");
    let texts = content
        .iter()
        .filter(|p| p["type"] == "text")
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    let images = content
        .iter()
        .filter(|p| p["type"] == "image_url")
        .map(|p| p["image_url"]["url"].as_str().unwrap().to_string())
        .collect();
    (texts, images)
}

both_stores!(
    multimodal_sends_rendered_pages_to_the_vision_model,
    |kind| {
        let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.9)).await;
        let Some(app) = with_model(kind, &model, &["--vision-model", "fake-vision"]).await else {
            return;
        };
        // Page 2 is a scan: no text layer, but its image goes to the model.
        let pdf = pdf_with_pages(&[&["INVOICE No. 7", "Total due: 10 EUR"], &[]]);
        let file_id = app.upload("scan.pdf", pdf).await;
        let job = multimodal_job(&app, &file_id).await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
        assert_eq!(job["result"]["type"], "invoice");
        assert_eq!(job["configuration"]["mode"], "MULTIMODAL");

        let requests = model.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].body["model"], "fake-vision");
        let (texts, images) = parts(&requests[0].body);
        assert_eq!(images.len(), 2, "one image per page");
        for url in &images {
            let data = url
                .strip_prefix("data:image/png;base64,")
                .expect("a PNG data URL");
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "a real PNG");
            assert!(bytes.len() > 1000, "a rendered page, {} bytes", bytes.len());
        }
        assert!(texts[0].contains("INVOICE No. 7"), "{texts:?}");
        assert_eq!(texts[1], "--- page 2 ---");

        let usage = usage(&app, &job).await;
        assert_eq!(usage["pages_processed"], 2);
        assert_eq!(usage["credits"], 4.0, "2 credits per page in MULTIMODAL");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_uploads_need_multimodal() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.9)).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let file_id = app.upload("photo.png", png()).await;
    let job = multimodal_job(&app, &file_id).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    let (_, images) = parts(&model.requests()[0].body);
    assert_eq!(images, vec![format!("data:image/png;base64,{PNG}")]);
    assert_eq!(
        model.requests()[0].body["model"],
        "fake-model",
        "no vision model set: the text model"
    );

    // FAST mode reads text only, and says what to do.
    let job = app.wait_job(&app.classify(&file_id).await).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("mode MULTIMODAL"),
        "{job}"
    );
    assert_eq!(model.requests().len(), 1, "FAST never asked the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_jobs_honour_multimodal() {
    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.9)).await;
    let app = with_model(StoreKind::Sqlite, &model, &[]).await.unwrap();
    let file_id = app.upload("scan.png", png()).await;
    let response = app
        .client
        .post(app.url("/api/v1/classifier/jobs"))
        .json(&json!({"file_ids": [file_id], "rules": rules(), "mode": "MULTIMODAL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job: Value = app
            .client
            .get(app.url(&format!("/api/v1/classifier/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] != "PENDING" {
            assert_eq!(job["status"], "SUCCESS", "{job}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, images) = parts(&model.requests()[0].body);
    assert_eq!(images.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multimodal_is_refused_without_a_vision_backend() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let file_id = app.upload("photo.png", png()).await;
    let response = app
        .create_job(json!({"file_input": file_id,
            "configuration": {"rules": rules(), "mode": "MULTIMODAL"}}))
        .await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(text.contains("CLASSIFYD_CLASSIFIER=openai"), "{text}");
}
