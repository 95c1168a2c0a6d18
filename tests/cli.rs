//! `classifyd classify`: the pipeline without a server, one JSON line per file.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

use serde_json::Value;

#[test]
fn classifies_each_file_and_reports_failures_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        serde_json::to_vec(&common::server::rules()).unwrap(),
    )
    .unwrap();
    let invoice = dir.path().join("invoice.pdf");
    std::fs::write(&invoice, common::pdf::invoice_pdf()).unwrap();
    let contract = dir.path().join("contract.txt");
    std::fs::write(&contract, common::pdf::CONTRACT_TEXT).unwrap();
    let broken = dir.path().join("broken.pdf");
    std::fs::write(&broken, b"%PDF-1.7 truncated").unwrap();

    let output = Command::new(common::server::classifyd_bin())
        .arg("classify")
        .arg("--rules")
        .arg(&rules)
        .args([&invoice, &contract, &broken])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "a failed file makes the exit code 2"
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one line per file");
    assert_eq!(lines[0]["type"], "invoice", "{}", lines[0]);
    assert_eq!(lines[0]["page_count"], 1);
    assert_eq!(lines[1]["type"], "contract", "{}", lines[1]);
    assert!(
        lines[1]["reasoning"]
            .as_str()
            .unwrap()
            .contains("agreement"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]["error"].as_str().unwrap().contains("PDF"),
        "{}",
        lines[2]
    );

    let target_pages = dir.path().join("config.json");
    std::fs::write(
        &target_pages,
        serde_json::json!({"rules": common::server::rules(), "parsing_configuration": {"target_pages": "2"}}).to_string(),
    )
    .unwrap();
    let output = Command::new(common::server::classifyd_bin())
        .arg("classify")
        .arg("--rules")
        .arg(&target_pages)
        .arg(&invoice)
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(line["error"].as_str().unwrap().contains("page 2"), "{line}");
}

#[test]
fn a_bad_rules_file_is_an_error_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, b"{not json").unwrap();
    let output = Command::new(common::server::classifyd_bin())
        .arg("classify")
        .arg("--rules")
        .arg(&rules)
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rules file"));
}

/// `--mode MULTIMODAL` sends the pages as images to the vision model; FAST cannot read an
/// image, and MULTIMODAL without a model backend is refused before any file is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_multimodal_sends_images_to_the_model() {
    use common::fake_model::{FakeModel, Reply};

    let model = FakeModel::start(|_, _| Reply::answer(Some("invoice"), 0.9)).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        serde_json::to_vec(&common::server::rules()).unwrap(),
    )
    .unwrap();
    let image = dir.path().join("scan.png");
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
        .unwrap();
    std::fs::write(&image, png).unwrap();
    let url = model.url.clone();
    let run = move |mode: &'static str, backend: &'static str| {
        let (rules, image, url) = (rules.clone(), image.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(common::server::classifyd_bin())
                .env_remove("CLASSIFYD_CLASSIFIER")
                .args(["classify", "--mode", mode, "--classifier", backend])
                .args(["--openai-base-url", &url, "--model", "fake-vision"])
                .arg("--rules")
                .arg(&rules)
                .arg(&image)
                .output()
                .unwrap()
        })
    };

    let output = run("multimodal", "openai").await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["type"], "invoice", "{line}");
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let parts = requests[0].body["messages"][1]["content"].to_string();
    assert!(parts.contains("data:image/png;base64,"), "{parts}");

    let output = run("FAST", "openai").await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        line["error"].as_str().unwrap().contains("MULTIMODAL"),
        "{line}"
    );
    assert_eq!(model.requests().len(), 1, "FAST sends an image nowhere");

    let output = run("MULTIMODAL", "local").await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLASSIFYD_CLASSIFIER=openai"), "{stderr}");
}
