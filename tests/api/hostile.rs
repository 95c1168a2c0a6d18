//! Hostile and broken documents through the whole server: each job ends FAILED (or COMPLETED,
//! when the file is readable after all) with a message a user can act on, and the server keeps
//! serving afterwards.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::server::TestApp;
use crate::store_test;

/// A one-object PDF whose catalog holds an array nested `depth` levels deep.
fn nested_array_pdf(depth: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Deep ".to_vec();
    pdf.extend(std::iter::repeat_n(b'[', depth));
    pdf.extend(std::iter::repeat_n(b']', depth));
    pdf.extend_from_slice(b" >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf
}

/// A PDF whose only content stream inflates to `decoded_bytes` zeros.
fn flate_bomb_pdf(decoded_bytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![0u8; 1024 * 1024];
    for _ in 0..decoded_bytes / block.len() {
        encoder.write_all(&block).unwrap();
    }
    let packed = encoder.finish().unwrap();
    let mut pdf = format!(
        "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
         2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n\
         3 0 obj\n<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>\nendobj\n\
         4 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\n",
        packed.len()
    )
    .into_bytes();
    pdf.extend_from_slice(&packed);
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf
}

async fn classify_to_end(app: &TestApp, name: &str, bytes: Vec<u8>) -> Value {
    let file_id = app.upload(name, bytes).await;
    app.wait_job(&app.classify(&file_id).await).await
}

async fn assert_still_serving(app: &TestApp) {
    for path in ["/health", "/ready"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} after hostile input");
    }
}

store_test!(
    hostile_structures_fail_naming_the_limit,
    &["--max-stream-bytes", "16777216"],
    |app| {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "nested.pdf",
                nested_array_pdf(50_000),
                "CLASSIFYD_MAX_NESTING_DEPTH",
            ),
            (
                "bomb.pdf",
                flate_bomb_pdf(64 * 1024 * 1024),
                "CLASSIFYD_MAX_STREAM_BYTES",
            ),
        ];
        for (name, bytes, needle) in cases {
            let job = classify_to_end(&app, name, bytes).await;
            assert_eq!(job["status"], "FAILED", "{name}: {job}");
            let message = job["error_message"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{name}: {message:?}");
        }
        // Just under the limits, the same shapes are ordinary documents.
        let job = classify_to_end(&app, "shallow.pdf", nested_array_pdf(100)).await;
        assert!(
            !job["error_message"]
                .as_str()
                .unwrap_or_default()
                .contains("CLASSIFYD_MAX_NESTING_DEPTH"),
            "{job}"
        );
        let job = classify_to_end(&app, "zeros.pdf", flate_bomb_pdf(8 * 1024 * 1024)).await;
        assert!(
            !job["error_message"]
                .as_str()
                .unwrap_or_default()
                .contains("CLASSIFYD_MAX_STREAM_BYTES"),
            "{job}"
        );
        assert_still_serving(&app).await;
    }
);

fn malformed_corpus() -> Option<Vec<PathBuf>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/malformed");
    if !dir.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "the malformed corpus is missing at {} (required in CI)",
                dir.display()
            );
        }
        eprintln!("skipping the malformed corpus: no {}", dir.display());
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    Some(files)
}

/// Files whose failure must say this (the rest only need a clear message).
const EXPECTED: &[(&str, &str)] = &[
    ("miner-rc4-40.pdf", "password"),
    ("plumber-password.pdf", "password"),
    ("miner-aes256-r6.pdf", "password"),
    // Encrypted without the /ID its key is derived from; it opens, and its pages are scans.
    ("miner-encrypted-no-id.pdf", "no text layer"),
    (
        "qpdf-issue146-deep-nesting.pdf",
        "CLASSIFYD_MAX_NESTING_DEPTH",
    ),
    (
        "qpdf-issue202-deep-direct.pdf",
        "CLASSIFYD_MAX_NESTING_DEPTH",
    ),
    ("plumber-empty.pdf", "empty"),
    ("qpdf-bad1-not-a-pdf.pdf", "Unsupported"),
];

store_test!(
    every_malformed_corpus_file_ends_with_a_clear_outcome,
    &[],
    |app| {
        let Some(files) = malformed_corpus() else {
            return;
        };
        let mut jobs = Vec::new();
        for path in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let response = app
                .upload_as(None, &name, std::fs::read(path).unwrap())
                .await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            if status != 200 {
                assert!(
                    status.is_client_error() && body["detail"].is_string(),
                    "{name}: upload answered {status} {body}"
                );
                continue;
            }
            let job_id = app.classify(body["id"].as_str().unwrap()).await;
            jobs.push((name, job_id));
        }
        assert!(jobs.len() + 1 >= files.len(), "nearly every file uploads");
        for (name, job_id) in jobs {
            let job = app.wait_job(&job_id).await;
            match job["status"].as_str() {
                Some("COMPLETED") => assert!(job["result"].is_object(), "{name}: {job}"),
                Some("FAILED") => {
                    let message = job["error_message"].as_str().unwrap_or_default();
                    assert!(
                        message.len() > 15 && message.ends_with('.'),
                        "{name}: unclear error {message:?}"
                    );
                    if let Some((_, needle)) = EXPECTED.iter().find(|(file, _)| *file == name) {
                        assert!(message.contains(needle), "{name}: {message:?}");
                    }
                }
                _ => panic!("{name}: {job}"),
            }
        }
        assert_still_serving(&app).await;
    }
);
