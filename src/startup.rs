//! Wiring: settings → store, blob store, pipeline, workers and the HTTP server.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::api::auth::Auth;
use crate::api::{self, AppState, Signer};
use crate::blob::BlobStore;
use crate::classifier::scripted::Fixtures;
use crate::classifier::Classifier;
use crate::document::render::Renderer;
use crate::document::sandbox::Extractor;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::store::Store;
use crate::webhook::Deliverer;
use crate::worker::Worker;

/// What shutdown may take past the grace period: releasing the leases of unfinished tasks,
/// answering the requests cut off, closing the database. `run_until` gives up waiting after it.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// A built server: listening, migrated, workers not yet started.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    worker: Worker,
    deliverer: Deliverer,
    /// Holds the ephemeral data directory until the server stops.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Application {
    /// `extractor_program` is the `classifyd` binary that runs sandboxed extraction
    /// (default: the current executable).
    pub async fn build(
        mut settings: Settings,
        extractor_program: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let temp_dir = if settings.ephemeral {
            let dir = tempfile::Builder::new().prefix("classifyd-").tempdir()?;
            settings.data_dir = dir.path().to_path_buf();
            Some(dir)
        } else {
            None
        };
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;

        let keys = settings.parsed_api_keys()?;
        let auth = Auth::new(keys, settings.default_project.clone());
        if auth.is_open() {
            tracing::warn!("no API keys configured (CLASSIFYD_API_KEYS): the API is open to anyone who can reach it");
        }

        let store = Store::connect(
            &settings.database_url_or_default(),
            settings.db_max_connections,
        )
        .await
        .context("cannot connect to the database")?;
        store.migrate().await.context("database migration failed")?;

        let blobs = BlobStore::from_url(
            settings.blob_url.as_deref(),
            &settings.data_dir.join("blobs"),
        )
        .await
        .context("cannot set up the blob store")?;
        tracing::info!(blobs = ?blobs, "blob store");
        let secret = match &settings.secret {
            Some(secret) => secret.clone(),
            None => {
                let candidate = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                store.secret("signing", &candidate).await?
            }
        };

        let program = match extractor_program {
            Some(program) => program,
            None => std::env::current_exe()?,
        };
        let extractor = Extractor::new(program.clone(), settings.limits.clone());
        let renderer = Renderer::new(
            program,
            settings.limits.clone(),
            settings.classifier.model.vision_max_pages,
        );
        // Extraction children start in the background, off the path to `/ready`.
        let warm = extractor.clone();
        let children = settings.worker.workers;
        tokio::spawn(async move { warm.prewarm(children) });
        let fixtures = settings
            .classifier
            .fixtures
            .as_deref()
            .map(Fixtures::load)
            .transpose()?;
        if let Some(path) = &settings.classifier.fixtures {
            tracing::info!(path = %path.display(), "scripted outcomes enabled");
        }
        let faults = match (&fixtures, settings.classifier.enable_faults) {
            (Some(fixtures), true) => {
                tracing::warn!("API FAULT INJECTION IS ENABLED (CLASSIFYD_ENABLE_FAULTS): requests matching the fixtures' api_faults get scripted errors. Never run production like this.");
                Some(fixtures.clone())
            }
            (None, true) => {
                anyhow::bail!("CLASSIFYD_ENABLE_FAULTS needs a fixtures file (CLASSIFYD_FIXTURES)")
            }
            (Some(fixtures), false) if fixtures.has_api_faults() => {
                tracing::warn!("the fixtures file declares api_faults, but fault injection is disabled (CLASSIFYD_ENABLE_FAULTS=false): they are ignored");
                None
            }
            _ => None,
        };
        let classifier = Classifier::from_settings(&settings.classifier)?;
        let pipeline =
            Arc::new(Pipeline::new(extractor, classifier, fixtures).with_renderer(renderer));
        let worker = Worker::new(
            store.clone(),
            blobs.clone(),
            pipeline.clone(),
            settings.worker.clone(),
        );

        let deliverer = Deliverer::new(
            store.clone(),
            settings.outbound.policy(),
            settings.webhooks.clone(),
            std::time::Duration::from_millis(settings.worker.poll_interval_ms),
        );

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        if let Some(port_file) = &settings.port_file {
            // Write then rename, so a reader never sees a half-written port.
            let temp = port_file.with_extension("tmp");
            std::fs::write(&temp, port.to_string())?;
            std::fs::rename(&temp, port_file)?;
        }

        let state = AppState {
            store,
            blobs,
            auth: Arc::new(auth),
            signer: Signer::new(secret.as_bytes()),
            settings: Arc::new(settings),
            faults,
            pipeline,
            metrics: crate::monitoring::install(),
            cut_off: CancellationToken::new(),
        };
        Ok(Self {
            listener,
            state,
            worker,
            deliverer,
            _temp_dir: temp_dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` resolves. Then, at once, the listener stops accepting and the
    /// workers stop claiming. Requests and tasks in flight get the grace period
    /// (`CLASSIFYD_SHUTDOWN_GRACE_SECONDS`): requests still running after it are answered 503,
    /// tasks still running are released to the queue (see `worker`). Every wait is bounded:
    /// whatever has not ended `SHUTDOWN_MARGIN` after the grace period is abandoned and the
    /// result is an error, so the process exits anyway.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopping) = watch::channel(false);
        let mut workers = self.worker.spawn(stopping.clone());
        workers.extend(self.deliverer.spawn(stopping.clone()));
        let store = self.state.store.clone();
        let listener_stop = stopping.clone();
        workers.push(tokio::spawn(async move {
            store.listen_for_tasks(listener_stop).await
        }));
        tracing::info!(address = %self.listener.local_addr()?, "classifyd listening");
        let app = api::router(self.state.clone());
        let mut server_stop = stopping.clone();
        let mut server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|stopping| *stopping).await;
                })
                .into_future(),
        );
        let served = tokio::select! {
            () = shutdown => None,
            served = &mut server => Some(served),
        };
        let grace = Duration::from_secs(self.state.settings.worker.shutdown_grace_seconds);
        let grace_over = Instant::now() + grace;
        let deadline = grace_over + SHUTDOWN_MARGIN;
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "stopping: no new connections or tasks; running ones get the grace period"
        );
        let _ = stop.send(true);
        let cut_off = self.state.cut_off.clone();
        let cutter = tokio::spawn(async move {
            tokio::time::sleep_until(grace_over).await;
            cut_off.cancel();
        });
        let mut overran = Vec::new();
        let served = match served {
            Some(served) => Some(served),
            None => match timeout_at(deadline, &mut server).await {
                Ok(served) => Some(served),
                Err(_) => {
                    server.abort();
                    overran.push("HTTP connections");
                    None
                }
            },
        };
        cutter.abort();
        let unfinished = finish_by(deadline, workers).await;
        if unfinished > 0 {
            overran.push("workers");
        }
        self.state.pipeline.shutdown();
        if timeout_at(deadline, self.state.store.close())
            .await
            .is_err()
        {
            overran.push("closing the database");
        }
        if let Some(served) = served {
            served??;
        }
        if !overran.is_empty() {
            anyhow::bail!(
                "shutdown overran the grace period of {} s + {} s; abandoned: {}",
                grace.as_secs(),
                SHUTDOWN_MARGIN.as_secs(),
                overran.join(", ")
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Waits for the tasks until `deadline`, then aborts the rest; returns how many were aborted.
async fn finish_by(deadline: Instant, tasks: Vec<tokio::task::JoinHandle<()>>) -> usize {
    let mut unfinished = 0;
    for mut task in tasks {
        if timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            unfinished += 1;
        }
    }
    unfinished
}
