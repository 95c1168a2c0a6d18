//! The worker's part of parse jobs: extracting a parse job's text, and handing that text to a
//! classify job whose input is the parse job (waiting while the parse job still runs).

use std::time::Duration;

use crate::blob::BlobError;
use crate::document::{Document, DocumentKind, PageSelection};
use crate::store::{ClaimedTask, JobRecord, ParseOptions, ParsedPage, ParsedText, TaskOutcome};

use super::Worker;

/// How long a classify task waits before looking at its unfinished parse job again.
const PARSE_WAIT_MICROS: i64 = 500_000;

fn failed(message: String) -> Option<TaskOutcome> {
    Some(TaskOutcome::Failed {
        message,
        page_count: None,
    })
}

impl Worker {
    /// Runs a parse job: the selected pages' text becomes its result.
    pub(super) async fn parse(&self, task: &ClaimedTask, job: &JobRecord) -> Option<TaskOutcome> {
        let options: ParseOptions = match serde_json::from_str(&job.configuration) {
            Ok(options) => options,
            Err(e) => return failed(format!("The job's stored options are unreadable: {e}")),
        };
        let ranges = options.page_ranges.unwrap_or_default();
        let selection = match PageSelection::parse(ranges.target_pages.as_deref(), ranges.max_pages)
        {
            Ok(selection) => selection,
            Err(message) => return failed(message),
        };
        let file = match self.store.get_file_by_id(&task.file_id).await {
            Ok(Some(file)) => file,
            Ok(None) => {
                return failed(format!(
                    "The file {} was deleted before it could be parsed.",
                    task.file_id
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "could not load the file record");
                return None;
            }
        };
        let blob = match self.blobs.fetch(&file.blob_key).await {
            Ok(blob) => blob,
            Err(BlobError::NotFound(_)) => {
                return failed(format!(
                    "The content of file {} is missing from the blob store.",
                    file.id
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the file from the blob store; the lease will expire and it will run again");
                return None;
            }
        };
        let timeout = Duration::from_secs(self.settings.task_timeout_seconds);
        let extract = self.pipeline.extract_pages(blob.path(), &selection);
        match tokio::time::timeout(timeout, extract).await {
            Err(_) => failed(format!(
                "Parsing took longer than the limit of {} s (CLASSIFYD_TASK_TIMEOUT_SECONDS).",
                self.settings.task_timeout_seconds
            )),
            Ok(Ok(pages)) => {
                let parsed = ParsedText {
                    pages: pages
                        .into_iter()
                        .map(|(page_number, text)| ParsedPage { page_number, text })
                        .collect(),
                };
                Some(TaskOutcome::Completed {
                    page_count: parsed.pages.len() as i64,
                    // Parsing calls no model.
                    usage: "{}".into(),
                    result: serde_json::to_string(&parsed).unwrap_or_default(),
                })
            }
            Ok(Err(error)) => failed(error.to_string()),
        }
    }

    /// The text of a classify job's input parse job, numbered as in the original document
    /// (pages the parse job skipped are empty). `Err(None)`: the parse job is still running and
    /// the task went back to the queue; `Err(Some(_))`: the classify job fails with it.
    pub(super) async fn parsed_document(
        &self,
        task: &ClaimedTask,
        job: &JobRecord,
    ) -> Result<Document, Option<TaskOutcome>> {
        let parse_job_id = job.parse_job_id.as_deref().unwrap_or(&job.file_input);
        let parse_job = match self.store.get_job_by_id(parse_job_id).await {
            Ok(Some(parse_job)) => parse_job,
            Ok(None) => {
                return Err(failed(format!(
                    "The parse job {parse_job_id} was deleted before it could be classified."
                )))
            }
            Err(error) => {
                tracing::warn!(%error, "could not load the parse job");
                return Err(None);
            }
        };
        match parse_job.status.as_str() {
            "COMPLETED" => {}
            "PENDING" | "RUNNING" => {
                if let Err(error) = self.store.defer_task(task, PARSE_WAIT_MICROS).await {
                    tracing::warn!(%error, "could not put the task back to wait for its parse job");
                }
                return Err(None);
            }
            status => {
                return Err(failed(format!(
                    "The parse job {parse_job_id} ended {status}: {}",
                    parse_job
                        .error_message
                        .as_deref()
                        .unwrap_or("no text to classify")
                )))
            }
        }
        let parsed: ParsedText = match parse_job.result.as_deref().map(serde_json::from_str) {
            Some(Ok(parsed)) => parsed,
            _ => {
                return Err(failed(format!(
                    "The parse job {parse_job_id} has no readable text."
                )))
            }
        };
        let page_count = parsed
            .pages
            .iter()
            .map(|p| p.page_number)
            .max()
            .unwrap_or(0);
        let mut pages = vec![String::new(); page_count];
        for page in parsed.pages {
            if let Some(slot) = page
                .page_number
                .checked_sub(1)
                .and_then(|i| pages.get_mut(i))
            {
                *slot = page.text;
            }
        }
        Ok(Document {
            kind: DocumentKind::Text,
            pages,
        })
    }
}
