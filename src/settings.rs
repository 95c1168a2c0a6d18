//! Settings: every knob is an environment variable with a matching command-line flag, so the
//! same binary is configured the same way under docker compose, systemd or a CI job.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Server settings (`classifyd serve`). Defaults run with no database server, no key and no network.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (see --port-file).
    #[arg(long, env = "CLASSIFYD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Write the bound port here once listening (useful with port 0).
    #[arg(long, env = "CLASSIFYD_PORT_FILE")]
    pub port_file: Option<PathBuf>,

    /// Directory for the embedded SQLite database and the local blob store.
    #[arg(long, env = "CLASSIFYD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Use a fresh temporary data directory, removed at exit (tests and CI).
    #[arg(long, env = "CLASSIFYD_EPHEMERAL", default_value_t = false)]
    pub ephemeral: bool,

    /// Where uploaded files live: empty for `<data dir>/blobs`, or `s3://bucket/prefix` for an
    /// S3-compatible store configured by the usual `AWS_*` variables.
    #[arg(long, env = "CLASSIFYD_BLOB_URL")]
    pub blob_url: Option<String>,

    /// `postgres://…` or `sqlite://…`; default: an SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Maximum database connections in the pool.
    #[arg(long, env = "CLASSIFYD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// API keys as `key=project_id` pairs separated by commas. Empty: open access (development).
    #[arg(
        long,
        env = "CLASSIFYD_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub api_keys: String,

    /// Project used when auth is open and a request names none.
    #[arg(long, env = "CLASSIFYD_DEFAULT_PROJECT", default_value = "prj-default")]
    pub default_project: String,

    /// Base URL clients reach this server at, used in signed download links
    /// (default: taken from the request's Host header).
    #[arg(long, env = "CLASSIFYD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Secret for page tokens and download links; default: generated once and kept in the database.
    #[arg(long, env = "CLASSIFYD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    #[command(flatten)]
    pub worker: WorkerSettings,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub classifier: ClassifierSettings,

    #[command(flatten)]
    pub outbound: OutboundSettings,

    #[command(flatten)]
    pub webhooks: WebhookSettings,

    /// Log format: `text` or `json`.
    #[arg(long, env = "CLASSIFYD_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

#[derive(Args, Debug, Clone)]
pub struct WorkerSettings {
    /// Tasks processed concurrently by this process (0 disables the worker: API only).
    #[arg(long, env = "CLASSIFYD_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// How long a claimed task stays leased without renewal before another worker may take it.
    #[arg(long, env = "CLASSIFYD_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,

    /// Idle workers look for work at least this often (they are also woken on create).
    #[arg(long, env = "CLASSIFYD_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,

    /// Attempts before a task that keeps being interrupted ends FAILED.
    #[arg(long, env = "CLASSIFYD_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Wall-clock limit for classifying one document (extraction + model).
    #[arg(long, env = "CLASSIFYD_TASK_TIMEOUT_SECONDS", default_value_t = 300)]
    pub task_timeout_seconds: u64,

    /// On SIGTERM, running tasks get this long to finish; the rest go back to the queue at once
    /// for another replica. The default fits inside docker's 10 s stop timeout.
    #[arg(long, env = "CLASSIFYD_SHUTDOWN_GRACE_SECONDS", default_value_t = 8)]
    pub shutdown_grace_seconds: u64,

    /// Keep model answers in the database and answer the same question (document content,
    /// rules, mode, pages, model) from there instead of paying for it again.
    #[arg(long, env = "CLASSIFYD_RESULT_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub result_cache: bool,
}

/// Bounds on untrusted input; every one of them is named in the error a user sees.
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Largest accepted upload, in bytes (413 past it).
    #[arg(long, env = "CLASSIFYD_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Documents with more pages fail with a message naming this limit.
    #[arg(long, env = "CLASSIFYD_MAX_PAGES", default_value_t = 2000)]
    pub max_pages: usize,

    /// Wall-clock limit for extracting one document's text (the parser runs in a child process).
    #[arg(long, env = "CLASSIFYD_EXTRACT_TIMEOUT_SECONDS", default_value_t = 60)]
    pub extract_timeout_seconds: u64,

    /// Address-space limit for the extraction child process, in MiB.
    #[arg(long, env = "CLASSIFYD_EXTRACT_MEMORY_MB", default_value_t = 2048)]
    pub extract_memory_mb: u64,

    /// Deepest nesting of PDF arrays and dictionaries accepted; deeper files are refused before
    /// any parser sees them (parsers recurse and can overflow their stack).
    #[arg(long, env = "CLASSIFYD_MAX_NESTING_DEPTH", default_value_t = 256)]
    pub max_nesting_depth: usize,

    /// Largest decoded size of one compressed PDF stream, in bytes (decompression bombs).
    #[arg(long, env = "CLASSIFYD_MAX_STREAM_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_stream_bytes: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ClassifierSettings {
    /// Classifier backend: `local` (offline, lexical) or `openai` (any OpenAI-compatible chat
    /// endpoint).
    #[arg(
        long = "classifier",
        env = "CLASSIFYD_CLASSIFIER",
        default_value = "local"
    )]
    pub backend: String,

    #[command(flatten)]
    pub model: ModelSettings,

    /// Scripted outcomes (JSON file) applied before the backend; see the README.
    #[arg(long, env = "CLASSIFYD_FIXTURES")]
    pub fixtures: Option<PathBuf>,

    /// Let the fixtures file's `api_faults` answer matching requests with errors. For test
    /// servers only; the start-up log says loudly when it is on.
    #[arg(long, env = "CLASSIFYD_ENABLE_FAULTS", default_value_t = false)]
    pub enable_faults: bool,

    /// Pages classified at once by one page-level request (`/v1/ade/classify`).
    #[arg(long, env = "CLASSIFYD_PAGE_CONCURRENCY", default_value_t = 8)]
    pub page_concurrency: usize,
}

/// The `openai` backend: where the model is, how long to wait for it and how hard to push it.
#[derive(Args, Debug, Clone)]
pub struct ModelSettings {
    /// Base URL of the OpenAI-compatible API, up to and including `/v1`
    /// (default: `OPENAI_BASE_URL`, else `https://api.openai.com/v1`).
    #[arg(long, env = "CLASSIFYD_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// API key sent as a bearer token (default: `OPENAI_API_KEY`; none for local servers).
    #[arg(long, env = "CLASSIFYD_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// Model name for text classification (FAST mode).
    #[arg(long, env = "CLASSIFYD_MODEL", default_value = "gpt-4o-mini")]
    pub model: String,

    /// Model for MULTIMODAL mode (page images); default: the text model.
    #[arg(long, env = "CLASSIFYD_VISION_MODEL")]
    pub vision_model: Option<String>,

    /// Pages sent as images per document in MULTIMODAL mode (the first selected ones; the
    /// rest go as text only).
    #[arg(long, env = "CLASSIFYD_VISION_MAX_PAGES", default_value_t = 8)]
    pub vision_max_pages: usize,

    /// Timeout of one request to the model.
    #[arg(long, env = "CLASSIFYD_MODEL_TIMEOUT_SECONDS", default_value_t = 60)]
    pub model_timeout_seconds: u64,

    /// Most requests in flight to the model at once; halved on 429, regained step by step.
    #[arg(long, env = "CLASSIFYD_MODEL_CONCURRENCY", default_value_t = 8)]
    pub model_concurrency: usize,

    /// Retries of one model request after 429, 5xx, timeouts and unreadable answers.
    #[arg(long, env = "CLASSIFYD_MODEL_MAX_RETRIES", default_value_t = 4)]
    pub model_max_retries: u32,

    /// First retry delay; it doubles per retry, with jitter (`Retry-After` wins when longer).
    #[arg(long, env = "CLASSIFYD_MODEL_RETRY_BASE_MS", default_value_t = 500)]
    pub model_retry_base_ms: u64,

    /// Most document tokens (about 4 characters each) sent per classification; longer
    /// documents keep the beginning of each selected page, the first pages the most.
    #[arg(long, env = "CLASSIFYD_TOKEN_BUDGET", default_value_t = 8000)]
    pub token_budget: usize,

    /// Append every model exchange to this JSON-lines file, to be replayed later with
    /// `CLASSIFYD_MODEL_REPLAY`. The API key is never written.
    #[arg(long, env = "CLASSIFYD_MODEL_RECORD")]
    pub model_record: Option<PathBuf>,

    /// Answer model requests from a file written with `CLASSIFYD_MODEL_RECORD`, without
    /// contacting the endpoint (no network, no key); a request not in it fails the job.
    #[arg(long, env = "CLASSIFYD_MODEL_REPLAY")]
    pub model_replay: Option<PathBuf>,
}

/// Requests this server makes to user-supplied URLs (document URLs, webhooks).
#[derive(Args, Debug, Clone)]
pub struct OutboundSettings {
    /// Allow URLs that resolve to loopback, private or link-local addresses (tests, trusted
    /// networks). Off by default: such URLs are refused (SSRF).
    #[arg(long, env = "CLASSIFYD_ALLOW_PRIVATE_URLS", default_value_t = false)]
    pub allow_private_urls: bool,

    /// Timeout of one outbound request.
    #[arg(long, env = "CLASSIFYD_OUTBOUND_TIMEOUT_SECONDS", default_value_t = 30)]
    pub outbound_timeout_seconds: u64,

    /// Redirects followed when fetching a document URL.
    #[arg(long, env = "CLASSIFYD_MAX_REDIRECTS", default_value_t = 5)]
    pub max_redirects: usize,
}

/// Retries of webhook deliveries (the outbox survives restarts, so these span them).
#[derive(Args, Debug, Clone)]
pub struct WebhookSettings {
    /// Attempts to deliver one webhook event before it is given up.
    #[arg(long, env = "CLASSIFYD_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: u32,

    /// Delay before the first retry of a failed delivery, in milliseconds; it doubles with
    /// every further attempt, up to an hour.
    #[arg(long, env = "CLASSIFYD_WEBHOOK_RETRY_BASE_MS", default_value_t = 2000)]
    pub webhook_retry_base_ms: u64,

    /// Settled deliveries (delivered, or given up) are deleted from the outbox this many
    /// seconds after their last attempt, so it does not grow forever; 0 keeps them.
    #[arg(
        long,
        env = "CLASSIFYD_WEBHOOK_RETENTION_SECONDS",
        default_value_t = 604_800
    )]
    pub webhook_retention_seconds: u64,
}

impl OutboundSettings {
    pub fn policy(&self) -> crate::outbound::Outbound {
        crate::outbound::Outbound {
            allow_private: self.allow_private_urls,
            timeout: std::time::Duration::from_secs(self.outbound_timeout_seconds),
            max_redirects: self.max_redirects,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_pages: 2000,
            extract_timeout_seconds: 60,
            extract_memory_mb: 2048,
            max_nesting_depth: 256,
            max_stream_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Settings {
    /// Parses `key=project` pairs; an error names the malformed entry.
    pub fn parsed_api_keys(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.api_keys
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((key, project)) if !key.trim().is_empty() && !project.trim().is_empty() => {
                    Ok((key.trim().to_string(), project.trim().to_string()))
                }
                _ => anyhow::bail!(
                    "CLASSIFYD_API_KEYS entry {:?} is not of the form key=project_id",
                    mask(entry)
                ),
            })
            .collect()
    }

    pub fn database_url_or_default(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("classifyd.db").display()
            )
        })
    }
}

fn mask(entry: &str) -> String {
    let visible: String = entry.chars().take(3).collect();
    format!("{visible}…")
}
