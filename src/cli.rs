//! `classifyd classify`: the pipeline without a server, one JSON line per file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::classifier::config::ParsingConfiguration;
use crate::classifier::scripted::{DocumentFacts, Fixtures};
use crate::classifier::{Classifier, Rule};
use crate::document::render::Renderer;
use crate::document::sandbox::Extractor;
use crate::document::PageSelection;
use crate::pipeline::{Pipeline, PipelineError};
use crate::settings::{ClassifierSettings, Limits};

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// JSON file: a list of rules, or {"rules": [...], "parsing_configuration": {...}}.
    #[arg(long)]
    pub rules: PathBuf,

    /// Documents to classify.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// `FAST` reads the text layer; `MULTIMODAL` also sends the pages as images to the vision
    /// model (needs `--classifier openai`) and reads PNG and JPEG files.
    #[arg(long, default_value = "FAST", value_parser = ["FAST", "MULTIMODAL"], ignore_case = true)]
    pub mode: String,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub classifier: ClassifierSettings,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RulesFile {
    List(Vec<Rule>),
    Configuration {
        rules: Vec<Rule>,
        #[serde(default)]
        parsing_configuration: Option<ParsingConfiguration>,
    },
}

/// Returns whether every file was classified.
pub async fn run(args: ClassifyArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("cannot read rules file {}", args.rules.display()))?;
    let (rules, parsing) = match serde_json::from_str(&text)
        .with_context(|| format!("rules file {} is not valid", args.rules.display()))?
    {
        RulesFile::List(rules) => (rules, None),
        RulesFile::Configuration {
            rules,
            parsing_configuration,
        } => (rules, parsing_configuration),
    };
    anyhow::ensure!(!rules.is_empty(), "the rules file has no rules");
    let parsing = parsing.unwrap_or_default();
    let selection = PageSelection::parse(parsing.target_pages.as_deref(), parsing.max_pages)
        .map_err(anyhow::Error::msg)?;
    let fixtures = args
        .classifier
        .fixtures
        .as_deref()
        .map(Fixtures::load)
        .transpose()?;
    let renderer = Renderer::new(
        std::env::current_exe()?,
        args.limits.clone(),
        args.classifier.model.vision_max_pages,
    );
    let pipeline = Pipeline::new(
        Extractor::current_exe(args.limits)?,
        Classifier::from_settings(&args.classifier)?,
        fixtures,
    )
    .with_renderer(renderer);
    let multimodal = args.mode.eq_ignore_ascii_case("MULTIMODAL");
    if multimodal && !pipeline.multimodal() {
        anyhow::bail!("{}", PipelineError::NoVision);
    }
    let mut all_ok = true;
    for path in &args.files {
        let line = match classify_one(&pipeline, path, &rules, &selection, multimodal).await {
            Ok(line) => line,
            Err(error) => {
                all_ok = false;
                json!({"file": path, "error": error})
            }
        };
        println!("{line}");
    }
    Ok(all_ok)
}

async fn classify_one(
    pipeline: &Pipeline,
    path: &Path,
    rules: &[Rule],
    selection: &PageSelection,
    multimodal: bool,
) -> Result<serde_json::Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path_text = path.display().to_string();
    let facts = DocumentFacts {
        file_name: &name,
        file_id: &path_text,
        sha256: &sha256,
        project_id: "cli",
    };
    let output = pipeline
        .classify_file(path, &facts, rules, selection, multimodal)
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "file": path,
        "type": output.classification.label,
        "confidence": output.classification.confidence,
        "reasoning": output.classification.reasoning,
        "page_count": output.page_count,
        "pages_used": output.pages_used,
    }))
}
