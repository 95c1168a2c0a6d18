//! The worker pool: tokio tasks that claim queued tasks, run the pipeline, and record the
//! outcome. A lease renewed while the task runs makes a crashed worker's task reappear for
//! another; a lost lease (cancelled job, lease taken over) stops the work without a write.
//! On shutdown the loops stop claiming, running tasks get a grace period to finish, and the
//! ones still running after it are released to the queue for another replica.

mod cache;
mod parse;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::blob::{BlobError, BlobStore};
use crate::classifier::config::ClassifyConfiguration;
use crate::classifier::scripted::DocumentFacts;
use crate::document::{Document, PageSelection};
use crate::monitoring::{self, TaskEnd};
use crate::pipeline::Pipeline;
use crate::settings::WorkerSettings;
use crate::store::{ClaimedTask, Store, TaskOutcome};

#[derive(Clone)]
pub struct Worker {
    store: Store,
    blobs: BlobStore,
    pipeline: Arc<Pipeline>,
    settings: WorkerSettings,
    /// Identical questions being answered in this process (see [`cache::InFlight`]).
    in_flight: Arc<cache::InFlight>,
}

impl Worker {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        pipeline: Arc<Pipeline>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            store,
            blobs,
            pipeline,
            settings,
            in_flight: Arc::default(),
        }
    }

    /// Starts `settings.workers` loops; they stop when `shutdown` becomes true.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.settings.workers)
            .map(|n| {
                let worker = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(
                    async move { worker.run(shutdown).await }
                        .instrument(tracing::info_span!("worker", n)),
                )
            })
            .collect()
    }

    async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        while !*shutdown.borrow() {
            match self.store.claim_task(self.lease_micros()).await {
                Ok(Some(task)) => {
                    let span = tracing::info_span!("task", task = %task.id, job = %task.job_id);
                    self.process(task, shutdown.clone()).instrument(span).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not claim a task; retrying"),
            }
            tokio::select! {
                _ = self.store.task_queued.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn lease_micros(&self) -> i64 {
        (self.settings.lease_seconds.max(1) * 1_000_000) as i64
    }

    async fn process(&self, task: ClaimedTask, shutdown: watch::Receiver<bool>) {
        let started = Instant::now();
        if task.attempts > i64::from(self.settings.max_attempts) {
            let message = format!(
                "Classification was interrupted {} times (the server stopped while working on this document); giving up.",
                task.attempts - 1
            );
            self.finish(
                &task,
                started,
                TaskOutcome::Failed {
                    message,
                    page_count: None,
                },
            )
            .await;
            return;
        }
        let work = self.classify(&task);
        let keep_lease = self.keep_lease(&task);
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = keep_lease => {
                tracing::info!("lease lost (job cancelled or taken over); dropping the work");
                return;
            }
            () = self.grace_over(shutdown) => {
                match self.store.release_task(&task).await {
                    Ok(()) => {
                        monitoring::record_task(TaskEnd::Released, started.elapsed());
                        tracing::info!("shutdown grace period over; task released to the queue");
                    }
                    Err(error) => tracing::warn!(%error, "could not release the task; it runs again when its lease expires"),
                }
                return;
            }
        };
        if let Some(outcome) = outcome {
            self.finish(&task, started, outcome).await;
        }
    }

    /// Resolves `shutdown_grace_seconds` after shutdown begins; never if it does not.
    async fn grace_over(&self, mut shutdown: watch::Receiver<bool>) {
        if shutdown.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(self.settings.shutdown_grace_seconds)).await;
    }

    /// Renews the lease until it is lost; never returns while the lease holds.
    async fn keep_lease(&self, task: &ClaimedTask) {
        let every = Duration::from_micros((self.lease_micros() / 3) as u64);
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew_lease(task, self.lease_micros()).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => tracing::warn!(%error, "lease renewal failed; will retry"),
            }
        }
    }

    /// Runs the pipeline; `None` means there is nothing to record (the job is gone).
    async fn classify(&self, task: &ClaimedTask) -> Option<TaskOutcome> {
        let (job, file) = match &task.inputs {
            Some(inputs) => (Ok(Some(inputs.job.clone())), Ok(inputs.file.clone())),
            // Both rows at once: two round trips in the time of one.
            None => tokio::join!(
                self.store.get_job_by_id(&task.job_id),
                self.store.get_file_by_id(&task.file_id)
            ),
        };
        let job = match job {
            Ok(Some(job)) => job,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "could not load the job; the lease will expire and it will run again");
                return None;
            }
        };
        if job.status == "CANCELLED" {
            return None;
        }
        if job.api == "parse" {
            return self.parse(task, &job).await;
        }
        let failed = |message: String| {
            Some(TaskOutcome::Failed {
                message,
                page_count: None,
            })
        };
        let configuration: ClassifyConfiguration = match serde_json::from_str(&job.configuration) {
            Ok(configuration) => configuration,
            Err(e) => return failed(format!("The job's stored configuration is unreadable: {e}")),
        };
        let selection = match configuration.page_selection() {
            Ok(selection) => selection,
            Err(message) => return failed(message),
        };
        let parsed = if job.document_input_type == "parse_job_id" {
            match self.parsed_document(task, &job).await {
                Ok(document) => Some(document),
                Err(outcome) => return outcome,
            }
        } else {
            None
        };
        let file = match file {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(%error, "could not load the file record");
                return None;
            }
        };
        // A parse job's text no longer needs its file: only scripted outcomes read the facts.
        let facts = match &file {
            Some(file) => DocumentFacts {
                file_name: &file.name,
                file_id: &file.id,
                sha256: &file.sha256,
                project_id: &file.project_id,
            },
            None => DocumentFacts {
                file_name: "",
                file_id: &task.file_id,
                sha256: "",
                project_id: &job.project_id,
            },
        };
        let multimodal = configuration.mode == "MULTIMODAL";
        let cache_key = self.cache_key(
            &job.project_id,
            &configuration,
            &selection,
            &facts,
            parsed.as_ref(),
            multimodal,
        );
        // Held until the answer is in the cache, so that a twin job waits for it.
        let _in_flight = match &cache_key {
            Some(key) => Some(self.in_flight.lock(key).await),
            None => None,
        };
        if let Some(key) = &cache_key {
            let hit = match self.store.cached_result(key).await {
                Ok(hit) => hit.and_then(cache::outcome),
                Err(error) => {
                    tracing::warn!(%error, "could not read the result cache; asking the model");
                    None
                }
            };
            monitoring::record_result_cache(hit.is_some());
            if hit.is_some() {
                tracing::info!("answered from the result cache");
                return hit;
            }
        }
        let timeout = Duration::from_secs(self.settings.task_timeout_seconds);
        let rules = &configuration.rules;
        let run = match (&parsed, &file) {
            (Some(document), _) => {
                tokio::time::timeout(
                    timeout,
                    self.pipeline
                        .classify_text(document, &facts, rules, &selection),
                )
                .await
            }
            (None, Some(file)) => {
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
                tokio::time::timeout(
                    timeout,
                    self.pipeline
                        .classify_file(blob.path(), &facts, rules, &selection, multimodal),
                )
                .await
            }
            (None, None) => {
                return failed(format!(
                    "The file {} was deleted before it could be classified.",
                    task.file_id
                ))
            }
        };
        match run {
            Err(_) => failed(format!(
                "Classification took longer than the limit of {} s (CLASSIFYD_TASK_TIMEOUT_SECONDS).",
                self.settings.task_timeout_seconds
            )),
            Ok(Ok(output)) => {
                let result = serde_json::to_string(&output.classification).unwrap_or_default();
                let page_count = output.pages_used as i64;
                let usage = serde_json::to_string(&output.usage).unwrap_or_default();
                // Only what the model answered is kept (a scripted outcome makes no model call).
                if let (Some(key), true) = (&cache_key, output.usage.model_calls > 0) {
                    if let Err(error) = self.store.cache_result(key, &result, page_count, &usage).await {
                        tracing::warn!(%error, "could not write the result cache");
                    }
                }
                Some(TaskOutcome::Completed {
                    result,
                    page_count,
                    usage,
                })
            }
            Ok(Err(error)) => failed(error.to_string()),
        }
    }

    /// The result cache's key for this job, or `None` when its answer is not cached: the cache
    /// is off, the backend is free, a fixture scripts the outcome, or the content is unknown.
    fn cache_key(
        &self,
        project_id: &str,
        configuration: &ClassifyConfiguration,
        selection: &PageSelection,
        facts: &DocumentFacts<'_>,
        parsed: Option<&Document>,
        multimodal: bool,
    ) -> Option<String> {
        if !self.settings.result_cache || self.pipeline.is_scripted(facts, &configuration.rules) {
            return None;
        }
        let model = self.pipeline.cache_identity(multimodal)?;
        let content = cache::content(Some(facts.sha256), parsed)?;
        Some(cache::key(
            project_id,
            &content,
            configuration,
            selection,
            &model,
        ))
    }

    async fn finish(&self, task: &ClaimedTask, started: Instant, outcome: TaskOutcome) {
        match self.store.finish_task(task, &outcome).await {
            Ok(true) => {
                let (status, end) = match outcome {
                    TaskOutcome::Completed { .. } => ("COMPLETED", TaskEnd::Completed),
                    TaskOutcome::Failed { .. } => ("FAILED", TaskEnd::Failed),
                };
                monitoring::record_task(end, started.elapsed());
                tracing::info!(status, "task finished");
            }
            Ok(false) => tracing::info!("task outcome discarded: the lease was no longer ours"),
            Err(error) => {
                tracing::warn!(%error, "could not record the outcome; the task will run again")
            }
        }
    }
}
