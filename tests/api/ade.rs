//! `POST /v1/ade/classify` holds its text fields in memory, so each is bounded; the upload is
//! the only large part.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::common::server::{StoreKind, TestApp};

fn form(model: String) -> Form {
    Form::new()
        .text("classes", r#"[{"class": "invoice"}]"#)
        .text("model", model)
        .part(
            "document",
            Part::bytes(b"INVOICE No. 7\nTotal due: 75.00 EUR".to_vec()).file_name("a.txt"),
        )
}

async fn post(app: &TestApp, form: Form) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/ade/classify"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn oversized_text_fields_are_refused() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let (status, body) = post(&app, form("classify-20260420".into())).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = post(&app, form("m".repeat(64 * 1024 + 1))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        serde_json::json!(["body", "model"])
    );

    let mut many = Form::new().part("document", Part::bytes(b"text".to_vec()).file_name("a.txt"));
    for i in 0..=100 {
        many = many.text(format!("classes[{i}][class]"), format!("class {i}"));
    }
    let (status, body) = post(&app, many).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("At most 100 classes"),
        "{body}"
    );
}
