use serde_json::Value;

use crate::common::server::{connect_db, StoreKind, TestApp};

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

/// Pooled connections are no longer pinged before every use (a round trip per statement),
/// only after a second idle: connections the database terminated while they sat in the pool
/// (a restart while the server was quiet) are replaced, not handed out. No workers, so that
/// nothing but these requests touches the pool.
#[tokio::test]
async fn connections_terminated_while_idle_are_replaced() {
    let Some(app) = TestApp::spawn(StoreKind::Postgres, &["--workers", "0"]).await else {
        return;
    };
    let list_jobs = || async {
        let response = app
            .client
            .get(app.url("/api/v2/classify"))
            .send()
            .await
            .unwrap();
        response.status()
    };
    for _ in 0..8 {
        assert_eq!(list_jobs().await, 200);
    }
    let database = app.database_url.rsplit('/').next().unwrap().to_string();
    let mut admin = connect_db(&app.database_url).await;
    let terminated = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS killed WHERE done",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let terminated: i64 = sqlx::Row::get(&terminated, "n");
    assert!(terminated > 0, "the server held connections to terminate");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for _ in 0..20 {
        assert_eq!(list_jobs().await, 200, "a terminated connection was used");
    }
}
