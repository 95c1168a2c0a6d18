//! The classification pipeline — document → pages → classifier — shared by the worker, the
//! one-shot CLI and (later) the synchronous endpoints, so all of them answer alike.

use std::path::Path;
use std::time::Duration;

use crate::classifier::scripted::{DocumentFacts, Fixtures, ScriptedOutcome};
use crate::classifier::{Classification, Classifier, ClassifierError, PageText, Rule};
use crate::document::sandbox::Extractor;
use crate::document::{DocumentError, PageSelection};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// A fixture asked for this failure.
    #[error("{0}")]
    Scripted(String),
}

/// What classifying one document produced.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    pub classification: Classification,
    /// Pages in the document.
    pub page_count: usize,
    /// Pages that were read for the answer.
    pub pages_used: usize,
}

#[derive(Clone)]
pub struct Pipeline {
    extractor: Extractor,
    classifier: Classifier,
    fixtures: Option<Fixtures>,
}

impl Pipeline {
    pub fn new(extractor: Extractor, classifier: Classifier, fixtures: Option<Fixtures>) -> Self {
        Self {
            extractor,
            classifier,
            fixtures,
        }
    }

    pub async fn classify_file(
        &self,
        path: &Path,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
        selection: &PageSelection,
    ) -> Result<PipelineOutput, PipelineError> {
        let scripted = self
            .fixtures
            .as_ref()
            .and_then(|f| f.outcome_for(facts, rules));
        if let Some(outcome) = &scripted {
            if let Some(delay) = outcome.delay_ms {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if let Some(message) = &outcome.fail {
                return Err(PipelineError::Scripted(message.clone()));
            }
        }
        let document = self.extractor.extract_file(path).await?;
        let selected = document.select(selection)?;
        let pages_used = selected.len();
        let classification = match scripted {
            Some(ScriptedOutcome {
                result: Some(result),
                ..
            }) => result,
            _ => {
                let pages = selected
                    .into_iter()
                    .map(|(number, text)| PageText {
                        number,
                        text: text.to_string(),
                    })
                    .collect();
                self.classifier.classify(rules, pages).await?
            }
        };
        Ok(PipelineOutput {
            classification,
            page_count: document.pages.len(),
            pages_used,
        })
    }
}
