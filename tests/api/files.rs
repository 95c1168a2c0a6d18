use serde_json::Value;

use crate::common::pdf::invoice_pdf;
use crate::common::server::{StoreKind, TestApp};
use crate::store_test;

store_test!(upload_get_list_download_delete, &[], |app| {
    let pdf = invoice_pdf();
    let response = app.upload_as(None, "dir/invoice.pdf", pdf.clone()).await;
    assert_eq!(response.status(), 200);
    let file: Value = response.json().await.unwrap();
    let id = file["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dfl-"), "{file}");
    assert_eq!(file["name"], "invoice.pdf", "path components are dropped");
    assert_eq!(file["file_type"], "pdf");
    assert_eq!(file["purpose"], "classify");
    assert_eq!(file["file_size"], pdf.len());
    assert_eq!(file["project_id"], "prj-default");

    let got: Value = app
        .client
        .get(app.url(&format!("/api/v1/beta/files/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], file["id"]);

    let link: Value = app
        .client
        .get(app.url(&format!("/api/v1/beta/files/{id}/content")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let downloaded = app.client.get(url).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(
        downloaded.bytes().await.unwrap().to_vec(),
        pdf,
        "download returns the uploaded bytes"
    );
    let tampered = app
        .client
        .get(url.replace("signature=", "signature=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403);

    for n in 0..4 {
        app.upload(&format!("note-{n}.txt"), format!("note {n}").into_bytes())
            .await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = app.url("/api/v1/beta/files?page_size=2");
        if let Some(t) = &token {
            url.push_str(&format!("&page_token={t}"));
        }
        let page: Value = app
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every file once: {seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let by_name: Value = app
        .client
        .get(app.url("/api/v1/beta/files?file_name=note-2.txt"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_name["items"].as_array().unwrap().len(), 1);
    let bad_order = app
        .client
        .get(app.url("/api/v1/beta/files?order_by=size"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_order.status(), 422);

    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/beta/files/{id}")))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let gone = app
        .client
        .get(app.url(&format!("/api/v1/beta/files/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("not found"));
});

store_test!(
    bad_uploads_get_clear_4xx,
    &["--max-upload-bytes", "1000"],
    |app| {
        let too_big = app.upload_as(None, "big.txt", vec![b'a'; 5000]).await;
        assert_eq!(too_big.status(), 413);
        let body: Value = too_big.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("upload limit"),
            "{body}"
        );

        let no_purpose = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.txt"),
        );
        let response = app
            .client
            .post(app.url("/api/v1/beta/files"))
            .multipart(no_purpose)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["detail"][0]["loc"],
            serde_json::json!(["body", "purpose"])
        );

        let no_file = reqwest::multipart::Form::new().text("purpose", "classify");
        let response = app
            .client
            .post(app.url("/api/v1/beta/files"))
            .multipart(no_file)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);

        let not_multipart = app
            .client
            .post(app.url("/api/v1/beta/files"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(not_multipart.status(), 422);

        // Field order must not matter (the TypeScript SDK sends the file first).
        let file_first = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt"),
            )
            .text("purpose", "classify");
        let response = app
            .client
            .post(app.url("/api/v1/beta/files"))
            .multipart(file_first)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        let leftovers = std::fs::read_dir(app.data_dir.path().join("blobs/tmp"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != ".ready")
            .count();
        assert_eq!(leftovers, 0, "rejected uploads leave no temporary files");
    }
);

/// A classic (`/api/v1/files`) upload whose body breaks after the file part was stored is
/// refused, and the stored bytes are removed with it (they once stayed behind, unreferenced).
#[tokio::test]
async fn classic_upload_refused_after_the_file_part_leaves_no_bytes() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let body =
        "--b\r\nContent-Disposition: form-data; name=\"upload_file\"; filename=\"a.txt\"\r\n\r\n\
                hello\r\n--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\ncut off";
    let response = app
        .client
        .post(app.url("/api/v1/files"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let detail: serde_json::Value = response.json().await.unwrap();
    assert!(detail["detail"].is_string(), "{detail}");

    let objects = app.data_dir.path().join("blobs/objects");
    let stored: Vec<_> = std::fs::read_dir(&objects)
        .map(|shards| {
            shards
                .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
                .map(|entry| entry.unwrap().path())
                .collect()
        })
        .unwrap_or_default();
    assert!(stored.is_empty(), "bytes left behind: {stored:?}");
}
