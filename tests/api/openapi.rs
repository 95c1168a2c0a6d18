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

/// Every documented GET and DELETE on an id answers an id that is not UTF-8 once decoded
/// (`%FF`) like any unknown id: a FastAPI-shaped 404, never axum's plain-text 400 (which the
/// classifier v1 routes once gave).
#[tokio::test]
async fn unreadable_path_ids_are_json_not_found() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repository root");
    let mut path = None;
    let mut checked = Vec::new();
    for line in file.lines() {
        if let Some(rest) = line.strip_prefix("  /") {
            path = Some(format!("/{}", rest.trim_end_matches(':')));
            continue;
        }
        let (Some(template), Some(method)) = (
            path.as_deref().filter(|p| p.contains('{')),
            match line {
                "    get:" => Some(reqwest::Method::GET),
                "    delete:" => Some(reqwest::Method::DELETE),
                _ => None,
            },
        ) else {
            continue;
        };
        let concrete: String = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "%FF"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = app
            .client
            .request(method.clone(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {concrete}: not JSON ({e})"));
        assert_eq!(status, 404, "{method} {concrete}: {body}");
        assert!(body["detail"].is_string(), "{method} {concrete}: {body}");
        checked.push(format!("{method} {template}"));
    }
    assert!(
        checked.contains(&"GET /api/v1/classifier/jobs/{job_id}/results".to_string()),
        "{checked:?}"
    );
}
