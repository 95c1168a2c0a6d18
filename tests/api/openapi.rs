//! The served OpenAPI document is the repository's `openapi.yaml`, byte for byte, and the
//! `/docs` page lists every path in it.

use crate::common::server::{StoreKind, TestApp};

#[tokio::test]
async fn served_document_is_the_repository_file() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repository root");

    let served = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert!(served.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/yaml"));
    assert_eq!(
        served.text().await.unwrap(),
        file,
        "served document drifted"
    );

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = docs.text().await.unwrap();
    assert!(
        !page.contains("<script"),
        "the page works offline, without scripts"
    );
    for path in file
        .lines()
        .filter_map(|line| line.strip_prefix("  /"))
        .map(|rest| format!("<code>/{}</code>", rest.trim_end_matches(':')))
    {
        assert!(page.contains(&path), "{path} missing from /docs");
    }
}
