use serde_json::Value;

use crate::common::pdf::INVOICE_TEXT;
use crate::common::server::rules;
use crate::store_test;

store_test!(
    keys_map_to_projects_and_projects_are_isolated,
    &["--api-keys", "key-a=prj-a,key-b=prj-b"],
    |app| {
        let no_key = app
            .upload_as(None, "a.txt", INVOICE_TEXT.as_bytes().to_vec())
            .await;
        assert_eq!(no_key.status(), 401);
        let wrong = app
            .upload_as(Some("wrong"), "a.txt", INVOICE_TEXT.as_bytes().to_vec())
            .await;
        assert_eq!(wrong.status(), 401);
        let body: Value = wrong.json().await.unwrap();
        assert!(body["detail"].is_string());

        let uploaded = app
            .upload_as(Some("key-a"), "a.txt", INVOICE_TEXT.as_bytes().to_vec())
            .await;
        assert_eq!(uploaded.status(), 200);
        let file: Value = uploaded.json().await.unwrap();
        assert_eq!(file["project_id"], "prj-a");
        let file_id = file["id"].as_str().unwrap();

        let as_b = |path: String| app.client.get(app.url(&path)).bearer_auth("key-b");
        assert_eq!(
            as_b(format!("/api/v1/beta/files/{file_id}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let create_b = app
            .client
            .post(app.url("/api/v2/classify"))
            .bearer_auth("key-b")
            .json(&serde_json::json!({"file_input": file_id, "configuration": {"rules": rules()}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            create_b.status(),
            404,
            "another project's file cannot be classified"
        );

        let job: Value = app
            .client
            .post(app.url("/api/v2/classify"))
            .bearer_auth("key-a")
            .json(&serde_json::json!({"file_input": file_id, "configuration": {"rules": rules()}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job_id = job["id"].as_str().unwrap();
        assert_eq!(job["project_id"], "prj-a");
        assert_eq!(
            as_b(format!("/api/v2/classify/{job_id}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let listed: Value = as_b("/api/v2/classify".into())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 0);
        let cancel_b = app
            .client
            .post(app.url(&format!("/api/v2/classify/{job_id}/cancel")))
            .bearer_auth("key-b")
            .send()
            .await
            .unwrap();
        assert_eq!(cancel_b.status(), 404);
        let foreign_project = app
            .client
            .get(app.url("/api/v2/classify?project_id=prj-a"))
            .bearer_auth("key-b")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign_project.status(), 403);
        let own_project = app
            .client
            .get(app.url("/api/v2/classify?project_id=prj-a"))
            .bearer_auth("key-a")
            .send()
            .await
            .unwrap();
        assert_eq!(own_project.status(), 200);
    }
);
