//! The classification pipeline — document → pages → classifier — shared by the worker, the
//! one-shot CLI and (later) the synchronous endpoints, so all of them answer alike.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::classifier::scripted::{DocumentFacts, Fixtures, ScriptedOutcome};
use crate::classifier::{
    Answer, Classification, Classifier, ClassifierError, ModelUsage, PageText, Rule,
};
use crate::document::render::{image_media_type, PageImage, Renderer};
use crate::document::sandbox::Extractor;
use crate::document::{Document, DocumentError, DocumentKind, PageSelection};
use crate::monitoring;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// A fixture asked for this failure.
    #[error("{0}")]
    Scripted(String),
    #[error("Mode MULTIMODAL needs a vision model: run the server with CLASSIFYD_CLASSIFIER=openai (and CLASSIFYD_VISION_MODEL if the text model cannot read images), or use mode FAST.")]
    NoVision,
}

/// What classifying one document produced.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    pub classification: Classification,
    /// Pages in the document.
    pub page_count: usize,
    /// Pages that were read for the answer.
    pub pages_used: usize,
    /// What the answer cost in model tokens.
    pub usage: ModelUsage,
}

/// What classifying each page of a document on its own produced.
#[derive(Debug, Clone)]
pub struct PagesOutput {
    /// One entry per page, in page order (index 0 = first page).
    pub pages: Vec<PageOutcome>,
}

#[derive(Debug, Clone)]
pub struct PageOutcome {
    pub classification: Classification,
    /// A label for a page no rule fits, taken from the page's own first line.
    pub suggested_label: Option<String>,
}

#[derive(Clone)]
pub struct Pipeline {
    extractor: Extractor,
    classifier: Classifier,
    fixtures: Option<Fixtures>,
    /// Page images for MULTIMODAL mode; without it that mode is refused.
    renderer: Option<Renderer>,
}

impl Pipeline {
    pub fn new(extractor: Extractor, classifier: Classifier, fixtures: Option<Fixtures>) -> Self {
        Self {
            extractor,
            classifier,
            fixtures,
            renderer: None,
        }
    }

    /// Enables MULTIMODAL mode (with a backend that sees images).
    pub fn with_renderer(mut self, renderer: Renderer) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Whether jobs in mode MULTIMODAL can run here.
    pub fn multimodal(&self) -> bool {
        self.renderer.is_some() && self.classifier.sees_images()
    }

    /// What decides the backend's answer besides the document and the question, for the
    /// result cache; `None` when answers are not cached (the local backend).
    pub fn cache_identity(&self, multimodal: bool) -> Option<String> {
        let identity = self.classifier.cache_identity(multimodal)?;
        Some(match (&self.renderer, multimodal) {
            (Some(renderer), true) => {
                format!("{identity} vision_max_pages={}", renderer.max_pages())
            }
            _ => identity,
        })
    }

    /// Whether a fixture scripts this document's outcome (such outcomes are never cached).
    pub fn is_scripted(&self, facts: &DocumentFacts<'_>, rules: &[Rule]) -> bool {
        self.fixtures
            .as_ref()
            .is_some_and(|f| f.outcome_for(facts, rules).is_some())
    }

    /// Stops the extraction children (at shutdown).
    pub fn shutdown(&self) {
        self.extractor.shutdown();
    }

    /// The fixture matching the document, after its delay; its `fail` ends the work here.
    async fn scripted_outcome(
        &self,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
    ) -> Result<Option<ScriptedOutcome>, PipelineError> {
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
        Ok(scripted)
    }

    /// Extracts the document's text, timed for `/metrics`.
    async fn extract(&self, path: &Path) -> Result<Document, DocumentError> {
        let started = Instant::now();
        let document = self.extractor.extract_file(path).await;
        monitoring::record_extraction(document.is_ok(), started.elapsed());
        document
    }

    pub async fn classify_file(
        &self,
        path: &Path,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
        selection: &PageSelection,
        multimodal: bool,
    ) -> Result<PipelineOutput, PipelineError> {
        let scripted = self.scripted_outcome(facts, rules).await?;
        if multimodal {
            return self
                .classify_multimodal(path, scripted, rules, selection)
                .await;
        }
        let document = self.extract(path).await?;
        self.classify_extracted(&document, scripted, rules, selection)
            .await
    }

    /// Classifies text extracted earlier (a parse job's pages) without reading the file again.
    pub async fn classify_text(
        &self,
        document: &Document,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
        selection: &PageSelection,
    ) -> Result<PipelineOutput, PipelineError> {
        let scripted = self.scripted_outcome(facts, rules).await?;
        self.classify_extracted(document, scripted, rules, selection)
            .await
    }

    /// The selected pages' text with their 1-based numbers (a parse job's result).
    pub async fn extract_pages(
        &self,
        path: &Path,
        selection: &PageSelection,
    ) -> Result<Vec<(usize, String)>, PipelineError> {
        let document = self.extract(path).await?;
        let selected = document.select(selection)?;
        Ok(selected
            .into_iter()
            .map(|(number, text)| (number, text.to_string()))
            .collect())
    }

    async fn classify_extracted(
        &self,
        document: &Document,
        scripted: Option<ScriptedOutcome>,
        rules: &[Rule],
        selection: &PageSelection,
    ) -> Result<PipelineOutput, PipelineError> {
        let selected = document.select(selection)?;
        let pages_used = selected.len();
        let blank: Vec<usize> = selected
            .iter()
            .filter(|(_, text)| text.trim().is_empty())
            .map(|(number, _)| *number)
            .collect();
        let mut answer = match scripted {
            Some(ScriptedOutcome {
                result: Some(result),
                ..
            }) => Answer {
                classification: result,
                usage: ModelUsage::default(),
            },
            _ => {
                let pages = selected
                    .into_iter()
                    .filter(|(_, text)| !text.trim().is_empty())
                    .map(|(number, text)| PageText {
                        number,
                        text: text.to_string(),
                        image: None,
                    })
                    .collect();
                self.classifier.classify(rules, pages).await?
            }
        };
        if !blank.is_empty() {
            answer
                .classification
                .reasoning
                .push_str(&blank_pages_note(&blank));
        }
        Ok(PipelineOutput {
            classification: answer.classification,
            page_count: document.pages.len(),
            pages_used,
            usage: answer.usage,
        })
    }

    /// MULTIMODAL: the selected pages as images (PDF pages rendered, PNG/JPEG uploads as they
    /// are) together with whatever text they have, for a vision model.
    async fn classify_multimodal(
        &self,
        path: &Path,
        scripted: Option<ScriptedOutcome>,
        rules: &[Rule],
        selection: &PageSelection,
    ) -> Result<PipelineOutput, PipelineError> {
        let mut head = [0u8; 16];
        let read = {
            use tokio::io::AsyncReadExt;
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| DocumentError::Unsupported(format!("unreadable file ({e})")))?;
            file.read(&mut head).await.unwrap_or(0)
        };
        let (page_count, pages) = if let Some(media_type) = image_media_type(&head[..read]) {
            let numbers = selection.resolve(1).map_err(DocumentError::PageSelection)?;
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| DocumentError::Unsupported(format!("unreadable file ({e})")))?;
            let image = PageImage {
                media_type,
                bytes: Arc::new(bytes),
            };
            let pages = numbers
                .into_iter()
                .map(|number| PageText {
                    number,
                    text: String::new(),
                    image: Some(image.clone()),
                })
                .collect::<Vec<_>>();
            (1, pages)
        } else {
            let document = self.extract(path).await.map_err(|e| match e {
                DocumentError::Image(kind) => DocumentError::Unsupported(format!(
                    "a {kind} image; mode MULTIMODAL reads PNG and JPEG images, so convert it to one of those"
                )),
                other => other,
            })?;
            let numbers = selection
                .resolve(document.pages.len())
                .map_err(DocumentError::PageSelection)?;
            let mut images = vec![None; numbers.len()];
            if let (DocumentKind::Pdf, Some(renderer)) = (document.kind, &self.renderer) {
                if scripted.as_ref().and_then(|s| s.result.as_ref()).is_none() {
                    let first: Vec<usize> =
                        numbers.iter().copied().take(renderer.max_pages()).collect();
                    let rendered = renderer.render_pdf_pages(path, &first).await?;
                    for (slot, image) in images.iter_mut().zip(rendered) {
                        *slot = Some(image);
                    }
                }
            }
            let pages: Vec<PageText> = numbers
                .into_iter()
                .zip(images)
                .map(|(number, image)| PageText {
                    number,
                    text: document.pages[number - 1].clone(),
                    image,
                })
                .collect();
            if pages
                .iter()
                .all(|p| p.image.is_none() && p.text.trim().is_empty())
            {
                return Err(DocumentError::NoText.into());
            }
            (document.pages.len(), pages)
        };
        let pages_used = pages.len();
        let answer = match scripted {
            Some(ScriptedOutcome {
                result: Some(result),
                ..
            }) => Answer {
                classification: result,
                usage: ModelUsage::default(),
            },
            _ if !self.multimodal() => return Err(PipelineError::NoVision),
            _ => self.classifier.classify(rules, pages).await?,
        };
        Ok(PipelineOutput {
            classification: answer.classification,
            page_count,
            pages_used,
            usage: answer.usage,
        })
    }

    /// Classifies every page of a document separately against the rules, with at most
    /// `concurrency` pages in the classifier at once. Each page is judged on its own text only;
    /// a page without text gets no label. A matching fixture's per-page answers (or its
    /// `result`, for pages it does not name) replace the backend's.
    pub async fn classify_pages(
        &self,
        path: &Path,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
        concurrency: usize,
    ) -> Result<PagesOutput, PipelineError> {
        let scripted = self.scripted_outcome(facts, rules).await?;
        let document = self.extract(path).await?;
        if scripted.is_none() && document.pages.iter().all(|page| page.trim().is_empty()) {
            return Err(DocumentError::NoText.into());
        }
        let scripted = &scripted;
        let pages = stream::iter(document.pages.into_iter().enumerate())
            .map(|(index, text)| async move {
                if let Some(result) = scripted.as_ref().and_then(|s| s.page_result(index)) {
                    return Ok(PageOutcome {
                        classification: result.clone(),
                        suggested_label: first_line_label(&text),
                    });
                }
                if text.trim().is_empty() {
                    return Ok(PageOutcome {
                        classification: Classification {
                            label: None,
                            confidence: 0.0,
                            reasoning: "The page has no text (blank, scanned or image-only)."
                                .into(),
                        },
                        suggested_label: Some("blank page".into()),
                    });
                }
                let suggested_label = first_line_label(&text);
                let page = PageText {
                    number: index + 1,
                    text,
                    image: None,
                };
                let answer = self.classifier.classify(rules, vec![page]).await?;
                Ok::<_, PipelineError>(PageOutcome {
                    classification: answer.classification,
                    suggested_label,
                })
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(PagesOutput { pages })
    }
}

/// Says which selected pages were skipped for lack of text, so a half-scanned document's
/// answer is not mistaken for a reading of every page.
fn blank_pages_note(pages: &[usize]) -> String {
    let list: Vec<String> = pages.iter().map(usize::to_string).collect();
    let (noun, verb, past, pronoun) = if pages.len() == 1 {
        ("Page", "has", "was", "it")
    } else {
        ("Pages", "have", "were", "them")
    };
    format!(
        " {noun} {} {verb} no text layer (scanned or image-only) and {past} not read; mode MULTIMODAL would read {pronoun}.",
        list.join(", ")
    )
}

/// The page's first non-empty line, lower-cased and cut to a few words: usually its title
/// ("INVOICE No. 42" → "invoice no. 42"), which names the kind of page well enough as a hint.
fn first_line_label(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let words: Vec<&str> = line.split_whitespace().take(4).collect();
    let label: String = words.join(" ").to_lowercase().chars().take(50).collect();
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::{blank_pages_note, first_line_label};

    #[test]
    fn blank_pages_are_named() {
        assert_eq!(
            blank_pages_note(&[2]),
            " Page 2 has no text layer (scanned or image-only) and was not read; mode MULTIMODAL would read it."
        );
        assert!(blank_pages_note(&[1, 3]).starts_with(" Pages 1, 3 have"));
    }

    #[test]
    fn suggested_label_is_the_first_line_shortened() {
        assert_eq!(
            first_line_label("\n  SERVICE AGREEMENT between the parties\nmore"),
            Some("service agreement between the".into())
        );
        assert_eq!(first_line_label("  \n "), None);
    }
}
