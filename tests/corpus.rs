//! The shared corpus of real and hostile PDFs (`../shared/corpus`): every file goes through
//! sandboxed extraction without taking the process down, and the local classifier's accuracy
//! on the labelled documents is measured. Skips (one line) when the corpus is absent, except
//! in CI where its absence is an error. The inputs fuzzing found (`tests/fixtures/fuzz/`, in
//! the repository) go through the same extraction.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use classifyd::classifier::local::LocalClassifier;
use classifyd::classifier::{PageText, Rule};
use classifyd::document::sandbox::Extractor;
use classifyd::document::{DocumentError, PageSelection};
use classifyd::settings::Limits;

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.join("labels.csv").exists() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the shared corpus is missing at {} (required in CI)",
            dir.display()
        );
    }
    eprintln!("skipping corpus tests: no corpus at {}", dir.display());
    None
}

fn labels(dir: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("labels.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.splitn(3, ',');
            Some((fields.next()?.to_string(), fields.next()?.to_string()))
        })
        .collect()
}

fn extractor() -> Extractor {
    Extractor::new(
        common::server::classifyd_bin(),
        Limits {
            extract_timeout_seconds: 20,
            extract_memory_mb: 1024,
            ..Limits::default()
        },
    )
}

/// Every input `cargo fuzz` found (fuzz/README.md) stays a clean outcome: extracted, or a
/// clear error, never a crashed, timed-out or out-of-memory child. Specific expectations live in the unit
/// tests of the module that was fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fuzzing_regression_input_extracts_or_fails_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fuzzing regression inputs in {dir:?}");
    let extractor = extractor();
    for path in &files {
        match extractor.extract_file(path).await {
            Ok(document) => assert!(!document.pages.is_empty(), "{}", path.display()),
            Err(
                error @ (DocumentError::ParserCrashed(_)
                | DocumentError::Timeout(_)
                | DocumentError::OutOfMemory(_)),
            ) => {
                panic!("{}: {error}", path.display())
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.len() > 15 && message.ends_with('.'),
                    "{}: unclear error {message:?}",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_file_extracts_or_fails_cleanly() {
    let Some(dir) = corpus_dir() else { return };
    let extractor = extractor();
    let mut files: Vec<PathBuf> = labels(&dir)
        .into_iter()
        .map(|(file, _)| dir.join(file))
        .collect();
    files.sort();
    let mut ok = 0;
    let mut failed = BTreeMap::new();
    for path in &files {
        let started = Instant::now();
        let outcome = extractor.extract_file(path).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(25),
            "{} took {elapsed:?}",
            path.display()
        );
        match outcome {
            Ok(document) => {
                assert!(!document.pages.is_empty(), "{}", path.display());
                ok += 1;
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.len() > 15 && message.ends_with('.'),
                    "{}: unclear error {message:?}",
                    path.display()
                );
                failed.insert(
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    message,
                );
            }
        }
    }
    println!(
        "corpus extraction: {ok} ok, {} failed cleanly, of {}",
        failed.len(),
        files.len()
    );
    for (file, message) in &failed {
        println!("  {file}: {message}");
    }
    let malformed = files
        .iter()
        .filter(|p| p.to_string_lossy().contains("malformed/"))
        .count();
    assert!(
        ok >= files.len() - malformed,
        "every real document must extract (failures: {failed:?})"
    );
}

fn corpus_rules() -> Vec<Rule> {
    let rule = |label: &str, description: &str| Rule {
        label: label.into(),
        description: description.into(),
    };
    vec![
        rule("invoice", "a bill from a seller requesting payment, with an invoice number, line items, VAT and a total amount due"),
        rule("receipt", "a proof of payment already made, such as a shop or hotel receipt showing the amount paid"),
        rule("purchase_order", "a buyer's order to a supplier listing the goods to deliver, quantities and prices"),
        rule("bank_statement", "an account statement from a bank listing transactions, balances and interest for a period"),
        rule("pay_stub", "an employee's payslip with gross salary, deductions and net pay for a pay period"),
        rule("utility_bill", "a bill for electricity, gas, water, internet or telephone service for a billing period"),
        rule("contract", "a legal agreement between parties with terms, obligations and signatures"),
        rule("resume", "a curriculum vitae describing a person's work experience, education and skills"),
        rule("scientific_paper", "a research article with an abstract, introduction, methods, results and references"),
        rule("tax_form", "an official tax return or tax form with numbered boxes, such as IRS forms 1040, W-2 or 1099"),
        rule("medical_lab_report", "a medical laboratory report of blood test results with reference ranges"),
        rule("insurance_claim", "a claim submitted to an insurer for a loss or damage, with policy number and incident details"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_classifier_accuracy_on_the_labelled_corpus() {
    let Some(dir) = corpus_dir() else { return };
    let extractor = extractor();
    let classifier = LocalClassifier::default();
    let rules = corpus_rules();
    let (mut correct, mut total) = (0, 0);
    let mut rows = Vec::new();
    for (file, label) in labels(&dir) {
        if label == "malformed" {
            continue;
        }
        let document = match extractor.extract_file(&dir.join(&file)).await {
            Ok(document) => document,
            Err(error) => {
                rows.push(format!(
                    "  {file}: expected {label}, extraction failed: {error}"
                ));
                total += 1;
                continue;
            }
        };
        let pages: Vec<PageText> = match document.select(&PageSelection::default()) {
            Ok(selected) => selected
                .into_iter()
                .map(|(number, text)| PageText {
                    number,
                    text: text.to_string(),
                    image: None,
                })
                .collect(),
            Err(DocumentError::NoText) => {
                rows.push(format!(
                    "  {file}: expected {label}, no text layer (needs MULTIMODAL)"
                ));
                total += 1;
                continue;
            }
            Err(error) => panic!("{file}: {error}"),
        };
        let result = classifier.classify(&rules, &pages);
        let got = result.label.clone().unwrap_or_else(|| "other".into());
        let hit = got == label;
        correct += usize::from(hit);
        total += 1;
        rows.push(format!(
            "  {} {file}: expected {label}, got {got} ({:.2})",
            if hit { "ok " } else { "MISS" },
            result.confidence
        ));
    }
    let accuracy = correct as f64 / total as f64;
    println!(
        "local classifier on the corpus: {correct}/{total} = {:.0}%",
        accuracy * 100.0
    );
    for row in &rows {
        println!("{row}");
    }
    // Floor from the measured figure (see BENCHMARKS.md), minus a margin for corpus growth.
    assert!(
        accuracy >= 0.6,
        "accuracy {accuracy:.2} fell below the floor"
    );
}

/// Characters of a chat request's messages (text content and text parts).
fn message_chars(body: &serde_json::Value) -> usize {
    let Some(messages) = body["messages"].as_array() else {
        return 0;
    };
    messages
        .iter()
        .map(|message| match &message["content"] {
            serde_json::Value::String(text) => text.chars().count(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part["text"].as_str())
                .map(|text| text.chars().count())
                .sum(),
            _ => 0,
        })
        .sum()
}

/// Prompts are no longer than they need to be: every labelled corpus document goes through the
/// pipeline to the fake model with the default token budget, and the prompt of each request is
/// measured as its messages' characters / 4 (the budget's own measure; GPT tokenizers average
/// about 4.2 characters per token on English). Each prompt must stay within the budget plus the
/// rules and the page headers. The figures are in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_tokens_per_classification_on_the_corpus() {
    use classifyd::classifier::scripted::DocumentFacts;
    use classifyd::classifier::Classifier;
    use classifyd::pipeline::Pipeline;
    use common::fake_model::{FakeModel, Reply};

    let Some(dir) = corpus_dir() else { return };
    let model = FakeModel::start(|_, _| Reply::answer(None, 0.5)).await;
    let settings = common::server::settings(&[
        "--classifier",
        "openai",
        "--openai-base-url",
        &model.url,
        "--model",
        "fake-model",
    ]);
    let budget = settings.classifier.model.token_budget;
    let classifier = Classifier::from_settings(&settings.classifier).unwrap();
    let pipeline = Pipeline::new(extractor(), classifier, None);
    let rules = corpus_rules();
    let mut prompts = Vec::new();
    let mut instructions = 0;
    for (file, label) in labels(&dir) {
        if label == "malformed" {
            continue;
        }
        let facts = DocumentFacts {
            file_name: &file,
            file_id: &file,
            sha256: "",
            project_id: "corpus",
        };
        let asked = model.requests().len();
        let outcome = pipeline
            .classify_file(
                &dir.join(&file),
                &facts,
                &rules,
                &PageSelection::default(),
                false,
            )
            .await;
        let requests = model.requests();
        match outcome {
            Ok(output) => {
                assert_eq!(requests.len(), asked + 1, "{file}: one request");
                let body = &requests[asked].body;
                let tokens = message_chars(body).div_ceil(4);
                let system = message_chars(&serde_json::json!({"messages": [body["messages"][0]]}));
                // The budget covers the pages' text; the rules and a header per page come on top.
                let bound = budget + system.div_ceil(4) + 8 * output.pages_used;
                assert!(
                    tokens <= bound,
                    "{file}: {tokens} prompt tokens, more than the bound {bound}"
                );
                instructions = system.div_ceil(4);
                prompts.push((file, tokens, output.usage.trimmed));
            }
            // Documents without a text layer make no request (they need MULTIMODAL).
            Err(error) => assert_eq!(requests.len(), asked, "{file}: {error}"),
        }
    }
    assert!(!prompts.is_empty(), "no corpus document reached the model");
    let total: usize = prompts.iter().map(|(_, tokens, _)| tokens).sum();
    let max = prompts.iter().map(|(_, tokens, _)| *tokens).max().unwrap();
    let trimmed = prompts.iter().filter(|(_, _, trimmed)| *trimmed).count();
    let mut sorted: Vec<usize> = prompts.iter().map(|(_, tokens, _)| *tokens).collect();
    sorted.sort_unstable();
    println!(
        "prompt tokens per classification (chars/4, budget {budget}): {} documents, mean {}, median {}, max {max}, of which {instructions} the rules and instructions; {trimmed} trimmed to the budget",
        prompts.len(),
        total / prompts.len(),
        sorted[sorted.len() / 2],
    );
    for (file, tokens, trimmed) in &prompts {
        println!(
            "  {file}: {tokens}{}",
            if *trimmed { " (trimmed)" } else { "" }
        );
    }
}
