//! The result cache: a model's answer is kept under a key made of everything that decides it,
//! so that asking the same question again (a re-run, a retried upload, another replica) costs
//! no model call. Only answers the model gave are kept — never failures, never scripted
//! outcomes — and a job answered from the cache says so in its reasoning and its usage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use crate::classifier::config::ClassifyConfiguration;
use crate::classifier::{Classification, ModelUsage};
use crate::document::{Document, PageSelection};
use crate::store::{micros_to_rfc3339, CachedResult, TaskOutcome};

/// What the document is, for the key: the uploaded file's hash, or for a parse job's text a
/// hash of that text (its pages depend on the parse job's own options).
pub(super) fn content(file_sha256: Option<&str>, parsed: Option<&Document>) -> Option<String> {
    match (parsed, file_sha256) {
        (Some(document), _) => {
            let text = serde_json::to_string(&document.pages).ok()?;
            Some(format!("text:{}", hex::encode(Sha256::digest(text))))
        }
        (None, Some(sha256)) if !sha256.is_empty() => Some(format!("file:{sha256}")),
        _ => None,
    }
}

/// The key of one question. The project is part of it so that a hit never tells one tenant
/// what another asked; `model` is the backend's identity (endpoint, model, prompt, budget).
pub(super) fn key(
    project_id: &str,
    content: &str,
    configuration: &ClassifyConfiguration,
    selection: &PageSelection,
    model: &str,
) -> String {
    let question = json!({
        "project": project_id,
        "content": content,
        "rules": configuration.rules,
        "mode": configuration.mode,
        "pages": {"ranges": selection.ranges, "max_pages": selection.max_pages},
        "lang": configuration.parsing_configuration.as_ref().and_then(|p| p.lang.as_deref()),
        "model": model,
    });
    hex::encode(Sha256::digest(question.to_string()))
}

/// A job's outcome from a cached answer: the same classification, a reasoning that says where
/// it came from, and usage with no model tokens. `None` when the entry is unreadable.
pub(super) fn outcome(hit: CachedResult) -> Option<TaskOutcome> {
    let mut classification: Classification = serde_json::from_str(&hit.result).ok()?;
    let first: ModelUsage = serde_json::from_str(&hit.usage).unwrap_or_default();
    classification.reasoning.push_str(&format!(
        " (From the result cache: the same document, rules, mode, pages and model were answered at {}; no model call was made.)",
        micros_to_rfc3339(hit.created_at)
    ));
    let usage = ModelUsage {
        trimmed: first.trimmed,
        confidence_source: first.confidence_source,
        cached: true,
        ..ModelUsage::default()
    };
    Some(TaskOutcome::Completed {
        result: serde_json::to_string(&classification).ok()?,
        page_count: hit.page_count,
        usage: serde_json::to_string(&usage).ok()?,
    })
}

/// One lock per question being answered in this process: identical jobs running at once (a
/// batch that repeats a document) ask the model once — the others wait, then find the answer in
/// the cache. Replicas do not share these locks, so twins on two replicas may both ask.
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl InFlight {
    pub(super) async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Locks nobody holds or waits for are gone; forget their keys.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Rule;

    fn configuration(rule: &str, mode: &str) -> ClassifyConfiguration {
        ClassifyConfiguration {
            rules: vec![Rule {
                label: "invoice".into(),
                description: rule.into(),
            }],
            mode: mode.into(),
            parsing_configuration: None,
        }
    }

    #[test]
    fn every_part_of_the_question_changes_the_key() {
        let all = PageSelection::parse(None, None).unwrap();
        let first = PageSelection::parse(Some("1"), None).unwrap();
        let base = key("p", "file:a", &configuration("a bill", "FAST"), &all, "m");
        assert_eq!(
            base,
            key("p", "file:a", &configuration("a bill", "FAST"), &all, "m")
        );
        let variants = [
            key("q", "file:a", &configuration("a bill", "FAST"), &all, "m"),
            key("p", "file:b", &configuration("a bill", "FAST"), &all, "m"),
            key(
                "p",
                "file:a",
                &configuration("a receipt", "FAST"),
                &all,
                "m",
            ),
            key(
                "p",
                "file:a",
                &configuration("a bill", "MULTIMODAL"),
                &all,
                "m",
            ),
            key("p", "file:a", &configuration("a bill", "FAST"), &first, "m"),
            key("p", "file:a", &configuration("a bill", "FAST"), &all, "n"),
        ];
        for variant in variants {
            assert_ne!(base, variant);
        }
    }
}
