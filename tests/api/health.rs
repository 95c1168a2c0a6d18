use serde_json::Value;

use crate::common::server::{StoreKind, TestApp};

#[tokio::test]
async fn health_ready_and_unknown_routes_answer_in_json() {
    let app = TestApp::spawn(StoreKind::Sqlite, &[]).await.unwrap();
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        ready.headers().contains_key("x-request-id"),
        "every response carries a request id"
    );

    let missing = app
        .client
        .get(app.url("/api/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["detail"], "Not Found");

    let wrong_method = app
        .client
        .put(app.url("/api/v2/classify"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["detail"], "Method Not Allowed");
}
