use std::time::Duration;

use serde_json::{json, Value};

use crate::common::pdf::{contract_pdf, invoice_pdf, pdf_with_pages, CONTRACT_TEXT, INVOICE_TEXT};
use crate::common::server::rules;
use crate::store_test;

store_test!(documents_are_classified_by_content, &[], |app| {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("invoice.pdf", invoice_pdf(), "invoice"),
        ("contract.pdf", contract_pdf(), "contract"),
        ("invoice.txt", INVOICE_TEXT.as_bytes().to_vec(), "invoice"),
        (
            "contract.md",
            format!("# Agreement\n\n{CONTRACT_TEXT}").into_bytes(),
            "contract",
        ),
        // The name says nothing; the content decides.
        ("contract.pdf", INVOICE_TEXT.as_bytes().to_vec(), "invoice"),
    ];
    for (name, bytes, expected) in cases {
        let file_id = app.upload(name, bytes).await;
        let job_id = app.classify(&file_id).await;
        let job = app.wait_job(&job_id).await;
        assert_eq!(job["status"], "COMPLETED", "{name}: {job}");
        assert_eq!(job["result"]["type"], expected, "{name}: {job}");
        let confidence = job["result"]["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{job}");
        assert!(
            job["result"]["reasoning"].as_str().unwrap().contains('\''),
            "reasoning names evidence: {job}"
        );
        assert_eq!(job["file_input"], file_id.as_str());
        assert_eq!(job["document_input_type"], "file_id");
    }
});

store_test!(unrelated_text_gets_no_type, &[], |app| {
    let file_id = app
        .upload(
            "poem.txt",
            b"Autumn leaves drift over the quiet pond while geese fly south.".to_vec(),
        )
        .await;
    let job = app.wait_job(&app.classify(&file_id).await).await;
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["result"]["type"], Value::Null, "{job}");
    assert!(job["result"]["confidence"].as_f64().unwrap() < 0.3, "{job}");
});

store_test!(bad_documents_fail_with_a_message, &[], |app| {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.pdf", Vec::new(), "empty"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage".to_vec(), "PDF"),
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "MULTIMODAL",
        ),
        ("blank.pdf", pdf_with_pages(&[&[]]), "no text layer"),
        (
            "binary.bin",
            vec![0u8, 159, 146, 150, 0, 1, 2, 3, 200, 201],
            "Unsupported",
        ),
    ];
    for (name, bytes, needle) in cases {
        let file_id = app.upload(name, bytes).await;
        let job = app.wait_job(&app.classify(&file_id).await).await;
        assert_eq!(job["status"], "FAILED", "{name}: {job}");
        let message = job["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{name}: {message:?} should mention {needle:?}"
        );
        assert_eq!(job["result"], Value::Null);
    }
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the server keeps serving");
});

store_test!(page_selection_is_applied, &[], |app| {
    let pdf = pdf_with_pages(&[
        &["A poem about the sea and the sky"],
        &[
            "INVOICE No. 7",
            "Total due: 10 EUR",
            "Payment by bank transfer",
        ],
        &["Another poem about the mountains"],
    ]);
    let file_id = app.upload("mixed.pdf", pdf).await;
    let create = |target: &str| json!({"file_input": file_id, "configuration": {"rules": rules(), "parsing_configuration": {"target_pages": target}}});
    let job: Value = app.create_job(create("2")).await.json().await.unwrap();
    let job = app.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["type"], "invoice", "{job}");
    let job: Value = app.create_job(create("1,3")).await.json().await.unwrap();
    let job = app.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(
        job["result"]["type"],
        Value::Null,
        "pages 1 and 3 hold no invoice: {job}"
    );
    let job: Value = app.create_job(create("2-5")).await.json().await.unwrap();
    let job = app.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "FAILED");
    assert!(
        job["error_message"].as_str().unwrap().contains("page 5"),
        "{job}"
    );

    let usage: Value = app
        .client
        .get(app.url(&format!(
            "/api/v2/classify/{}?expand=usage",
            job["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(usage.get("usage").is_some(), "{usage}");
});

store_test!(invalid_requests_are_refused_with_field_errors, &[], |app| {
    let file_id = app
        .upload("invoice.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let good_rule = json!({"type": "invoice", "description": "a bill requesting payment"});
    let with_rules =
        |rules: Value| json!({"file_input": file_id, "configuration": {"rules": rules}});
    let with_parsing = |parsing: Value| json!({"file_input": file_id, "configuration": {"rules": [good_rule.clone()], "parsing_configuration": parsing}});
    let cases: Vec<(Value, u16, &str)> = vec![
        (with_rules(json!([])), 422, "At least one rule"),
        (
            with_rules(json!([{"type": "invoice", "description": "short"}])),
            422,
            "10 to 500",
        ),
        (
            with_rules(json!([{"type": "x".repeat(51), "description": "long enough description"}])),
            422,
            "1 to 50",
        ),
        (
            with_rules(json!([{"type": "a/b", "description": "long enough description"}])),
            422,
            "letters, digits",
        ),
        (
            with_rules(json!([good_rule.clone(), good_rule.clone()])),
            422,
            "Duplicate",
        ),
        (with_rules(json!("not a list")), 422, "invalid type"),
        (with_parsing(json!({"target_pages": "0"})), 422, "page 0"),
        (
            with_parsing(json!({"target_pages": "3-1"})),
            422,
            "reversed",
        ),
        (
            with_parsing(json!({"target_pages": "abc"})),
            422,
            "not a list",
        ),
        (with_parsing(json!({"max_pages": 0})), 422, "max_pages"),
        (
            json!({"file_input": file_id}),
            400,
            "configuration is required",
        ),
        (
            json!({"file_input": file_id, "configuration": {"rules": [good_rule.clone()]}, "configuration_id": "cfg-1"}),
            400,
            "not both",
        ),
        (
            json!({"configuration": {"rules": [good_rule.clone()]}}),
            400,
            "document is required",
        ),
        (
            json!({"file_input": file_id, "file_id": file_id, "configuration": {"rules": [good_rule.clone()]}}),
            400,
            "only one",
        ),
        (
            json!({"file_input": "dfl-missing", "configuration": {"rules": [good_rule.clone()]}}),
            404,
            "not found",
        ),
    ];
    for (body, status, needle) in cases {
        let response = app.create_job(body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let text = response.text().await.unwrap();
        let parsed: Value = serde_json::from_str(&text).expect("JSON error body");
        assert!(parsed.get("detail").is_some(), "{text}");
        assert!(
            text.contains(needle),
            "{body} → {text} should mention {needle:?}"
        );
        if status == 422 {
            assert!(
                parsed["detail"][0]["loc"].is_array(),
                "422 detail is FastAPI's list shape: {text}"
            );
        }
    }
    let broken_json = app
        .client
        .post(app.url("/api/v2/classify"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(broken_json.status(), 422);
    let unknown = app
        .client
        .get(app.url("/api/v2/classify/cls-nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
});

store_test!(list_pages_filters_and_refuses_forged_tokens, &[], |app| {
    let file_id = app
        .upload("invoice.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.classify(&file_id).await);
    }
    for id in &ids {
        app.wait_job(id).await;
    }
    let mut seen = Vec::new();
    let mut url = app.url("/api/v2/classify?page_size=2&status=COMPLETED&created_at_on_or_after=2020-01-01T00%3A00%3A00Z");
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
        match page["next_page_token"].as_str() {
            Some(token) => url = app.url(&format!("/api/v2/classify?page_size=2&status=COMPLETED&created_at_on_or_after=2020-01-01T00%3A00%3A00Z&page_token={token}")),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every job once, newest first");

    let two: Value = app
        .client
        .get(app.url(&format!(
            "/api/v2/classify?job_ids={}&job_ids={}",
            ids[0], ids[3]
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(two["items"].as_array().unwrap().len(), 2);
    let none: Value = app
        .client
        .get(app.url("/api/v2/classify?status=FAILED"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let future: Value = app
        .client
        .get(app.url("/api/v2/classify?created_at_on_or_after=2999-01-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(future["items"].as_array().unwrap().len(), 0);

    for (query, status) in [
        ("page_token=forged", 400),
        ("page_token=eyJrZXkiOjEsImlkIjoiYSJ9.AAAA", 400),
        ("status=DONE", 422),
        ("page_size=0", 422),
        ("created_at_on_or_after=yesterday", 422),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/v2/classify?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{query}");
    }
});

store_test!(same_transaction_id_returns_the_original_job, &[], |app| {
    let file_id = app
        .upload("invoice.txt", INVOICE_TEXT.as_bytes().to_vec())
        .await;
    let body = json!({"file_input": file_id, "configuration": {"rules": rules()}, "transaction_id": "tx-1"});
    let first: Value = app.create_job(body.clone()).await.json().await.unwrap();
    let other_rules = json!({"file_input": file_id, "configuration": {"rules": [{"type": "memo", "description": "an internal memo between staff"}]}, "transaction_id": "tx-1"});
    let second: Value = app.create_job(other_rules).await.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        second["configuration"], first["configuration"],
        "the original body wins"
    );
    assert_eq!(second["transaction_id"], "tx-1");
    let all: Value = app
        .client
        .get(app.url("/api/v2/classify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
});

store_test!(
    cancel_and_delete_follow_the_state_rules,
    &["--workers", "0"],
    |app| {
        let file_id = app
            .upload("invoice.txt", INVOICE_TEXT.as_bytes().to_vec())
            .await;
        let job_id = app.classify(&file_id).await;
        // Bodiless with a JSON content type, as the Python SDK sends it.
        let delete_pending = app
            .client
            .delete(app.url(&format!("/api/v2/classify/{job_id}")))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(delete_pending.status(), 409);
        assert_eq!(delete_pending.headers()["x-should-retry"], "false");
        let cancelled = app
            .client
            .post(app.url(&format!("/api/v2/classify/{job_id}/cancel")))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(cancelled.status(), 200);
        let cancelled: Value = cancelled.json().await.unwrap();
        assert_eq!(cancelled["status"], "CANCELLED");
        let again = app
            .client
            .post(app.url(&format!("/api/v2/classify/{job_id}/cancel")))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409);
        assert_eq!(again.headers()["x-should-retry"], "false");
        let deleted = app
            .client
            .delete(app.url(&format!("/api/v2/classify/{job_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        let deleted: Value = deleted.json().await.unwrap();
        assert_eq!(deleted["id"], job_id.as_str());
        assert_eq!(deleted["project_id"], "prj-default");
        let gone = app
            .client
            .get(app.url(&format!("/api/v2/classify/{job_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);
    }
);

store_test!(
    a_cancelled_running_job_stays_cancelled,
    &["--fixtures", "tests/fixtures/slow.json"],
    |app| {
        let file_id = app
            .upload("slow-invoice.txt", INVOICE_TEXT.as_bytes().to_vec())
            .await;
        let job_id = app.classify(&file_id).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.get_job(&job_id).await["status"] != "RUNNING" {
            assert!(std::time::Instant::now() < deadline, "job never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cancelled: Value = app
            .client
            .post(app.url(&format!("/api/v2/classify/{job_id}/cancel")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(cancelled["status"], "CANCELLED");
        // The scripted delay (1.5 s) ends; the worker must not overwrite the cancellation.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let job = app.get_job(&job_id).await;
        assert_eq!(job["status"], "CANCELLED", "{job}");
        assert_eq!(job["result"], Value::Null);
    }
);
