//! Pages + rules → `{type | null, confidence, reasoning}`. Backends sit behind one enum so the
//! worker, the CLI and the synchronous endpoints call them alike.

pub mod config;
mod lexicon;
pub mod local;
pub mod openai;
mod recording;
pub mod scripted;

use serde::{Deserialize, Serialize};

use crate::settings::ClassifierSettings;

/// A user's rule: the label to assign and, in natural language, when to assign it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(rename = "type")]
    pub label: String,
    pub description: String,
}

/// The answer stored on a job and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The chosen rule's type, or `None` when no rule fits.
    #[serde(rename = "type")]
    pub label: Option<String>,
    /// In [0, 1].
    pub confidence: f64,
    pub reasoning: String,
}

/// One selected page of text.
#[derive(Debug, Clone)]
pub struct PageText {
    /// 1-based page number in the document.
    pub number: usize,
    pub text: String,
    /// The page as an image (MULTIMODAL mode), for backends that see images.
    pub image: Option<crate::document::render::PageImage>,
}

/// What a classification cost: the model's token counts (zero for the local backend).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Requests sent to the model, retries included.
    pub model_calls: u64,
    /// Whether the document text was cut to fit the token budget.
    pub trimmed: bool,
    /// How the confidence was obtained: `logprobs` or `stated` (model backends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_source: Option<String>,
    /// Whether the answer came from the result cache (no model call; the token counts are 0).
    #[serde(default)]
    pub cached: bool,
}

/// A classification and what it cost.
#[derive(Debug, Clone)]
pub struct Answer {
    pub classification: Classification,
    pub usage: ModelUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("the classifier failed: {0}")]
    Internal(String),
    /// The model endpoint could not give an answer; the message says what it answered.
    #[error("{0}")]
    Model(String),
}

/// The configured backend.
#[derive(Debug, Clone)]
pub enum Classifier {
    Local(local::LocalClassifier),
    OpenAi(openai::OpenAiClassifier),
}

impl Classifier {
    pub fn from_settings(settings: &ClassifierSettings) -> anyhow::Result<Self> {
        match settings.backend.as_str() {
            "local" => {
                anyhow::ensure!(
                    settings.model.model_record.is_none() && settings.model.model_replay.is_none(),
                    "CLASSIFYD_MODEL_RECORD and CLASSIFYD_MODEL_REPLAY record the openai backend's model exchanges; the local classifier has none (set CLASSIFYD_CLASSIFIER=openai)"
                );
                Ok(Self::Local(local::LocalClassifier::default()))
            }
            "openai" => Ok(Self::OpenAi(openai::OpenAiClassifier::new(
                &settings.model,
            )?)),
            other => {
                anyhow::bail!("unknown classifier backend {other:?} (available: local, openai)")
            }
        }
    }

    /// What, besides the document and the question, decides a model's answer (endpoint,
    /// model, prompt, budget), for the result cache; `None` for backends not worth caching
    /// (the local one costs nothing) and while recording or replaying model exchanges (a
    /// recording must see every request, and a replay answers from the recording alone).
    pub fn cache_identity(&self, multimodal: bool) -> Option<String> {
        match self {
            Self::Local(_) => None,
            Self::OpenAi(model) if model.is_taped() => None,
            Self::OpenAi(model) => Some(model.cache_identity(multimodal)),
        }
    }

    /// Whether the backend reads page images (MULTIMODAL mode).
    pub fn sees_images(&self) -> bool {
        matches!(self, Self::OpenAi(_))
    }

    pub async fn classify(
        &self,
        rules: &[Rule],
        pages: Vec<PageText>,
    ) -> Result<Answer, ClassifierError> {
        match self {
            Self::Local(local) => {
                let local = local.clone();
                let rules = rules.to_vec();
                let started = std::time::Instant::now();
                let answer = tokio::task::spawn_blocking(move || local.classify(&rules, &pages))
                    .await
                    .map_err(|e| ClassifierError::Internal(e.to_string()));
                let call = match &answer {
                    Ok(_) => crate::monitoring::ModelCall::Ok {
                        prompt_tokens: 0,
                        completion_tokens: 0,
                    },
                    Err(_) => crate::monitoring::ModelCall::Error { kind: "internal" },
                };
                crate::monitoring::record_model_call("local", started.elapsed(), call);
                Ok(Answer {
                    classification: answer?,
                    usage: ModelUsage::default(),
                })
            }
            Self::OpenAi(model) => model.classify(rules, pages).await,
        }
    }
}
