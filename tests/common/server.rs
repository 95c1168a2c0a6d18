//! The server under test, on a random port, against SQLite or a fresh PostgreSQL database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use sqlx::Connection;

use classifyd::settings::Settings;
use classifyd::startup::Application;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Parser)]
struct SettingsArgs {
    #[command(flatten)]
    settings: Settings,
}

/// Where the classifyd binary built by cargo lives (it runs sandboxed extraction).
pub fn classifyd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_classifyd"))
}

fn admin_url() -> String {
    std::env::var("CLASSIFYD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database URL for one test: an SQLite file in `data_dir`, or a new PostgreSQL database.
/// `None` means PostgreSQL is unreachable and this is not CI: the caller skips.
pub async fn database_url(kind: StoreKind, data_dir: &Path) -> Option<String> {
    match kind {
        StoreKind::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("test.db").display()
        )),
        StoreKind::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = admin_url();
            let mut conn = match sqlx::AnyConnection::connect(&admin).await {
                Ok(conn) => conn,
                Err(error) => {
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!("PostgreSQL at {admin} is unreachable in CI: {error}");
                    }
                    eprintln!("skipping the PostgreSQL variant: {admin} unreachable ({error})");
                    return None;
                }
            };
            let name = format!("classifyd_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin
                .rsplit_once('/')
                .map(|(base, _)| base)
                .unwrap_or(&admin);
            Some(format!("{base}/{name}"))
        }
    }
}

pub fn settings(args: &[&str]) -> Settings {
    let mut argv = vec!["classifyd"];
    argv.extend_from_slice(args);
    SettingsArgs::try_parse_from(argv)
        .expect("test settings parse")
        .settings
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    /// Starts the server in this process. `extra` adds settings flags.
    pub async fn spawn(kind: StoreKind, extra: &[&str]) -> Option<Self> {
        let data_dir = tempfile::tempdir().unwrap();
        let database_url = database_url(kind, data_dir.path()).await?;
        let data = data_dir.path().display().to_string();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--database-url",
            &database_url,
            "--poll-interval-ms",
            "50",
        ];
        if !extra.contains(&"--api-keys") {
            args.extend_from_slice(&["--api-keys", ""]);
        }
        args.extend_from_slice(extra);
        let app = Application::build(settings(&args), Some(classifyd_bin()))
            .await
            .expect("server builds");
        let port = app.port();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Some(Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            data_dir,
            database_url,
            shutdown: Some(stop),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn upload_as(
        &self,
        key: Option<&str>,
        name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "classify")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        let mut request = self
            .client
            .post(self.url("/api/v1/beta/files"))
            .multipart(form);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    /// Uploads and returns the file id.
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> String {
        let response = self.upload_as(None, name, bytes).await;
        assert_eq!(response.status(), 200, "upload failed");
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn create_job(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v2/classify"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a job on `file_id` with the standard invoice/contract rules; returns its id.
    pub async fn classify(&self, file_id: &str) -> String {
        let response = self
            .create_job(json!({"file_input": file_id, "configuration": {"rules": rules()}}))
            .await;
        assert_eq!(response.status(), 200);
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["status"], "PENDING");
        job["id"].as_str().unwrap().to_string()
    }

    pub async fn get_job(&self, job_id: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/v2/classify/{job_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until the job is COMPLETED, FAILED or CANCELLED.
    pub async fn wait_job(&self, job_id: &str) -> Value {
        wait_terminal(&self.client, &self.base, job_id).await
    }
}

pub async fn wait_terminal(client: &reqwest::Client, base: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = client
            .get(format!("{base}/api/v2/classify/{job_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ["COMPLETED", "FAILED", "CANCELLED"].contains(&job["status"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} did not finish: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn rules() -> Value {
    json!([
        {"type": "invoice", "description": "a bill requesting payment, with invoice number, line items and a total due"},
        {"type": "contract", "description": "a legal agreement between parties with terms, obligations and signatures"}
    ])
}

/// Runs a test body against both stores.
#[macro_export]
macro_rules! store_test {
    ($name:ident, $extra:expr, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn scenario($app: $crate::common::server::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::server::TestApp::spawn($crate::common::server::StoreKind::Sqlite, $extra).await.unwrap();
                scenario(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::server::TestApp::spawn($crate::common::server::StoreKind::Postgres, $extra).await {
                    scenario(app).await;
                }
            }
        }
    };
}

/// A `classifyd serve` child process (for signals and for several replicas on one database).
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts `classifyd serve` on a random port with `args` and waits until it listens.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_logging(args, envs, std::process::Stdio::inherit())
    }

    /// Like `spawn`, with the server's log (stderr) going to `log`.
    pub fn spawn_logging(
        args: &[&str],
        envs: &[(&str, &str)],
        log: impl Into<std::process::Stdio>,
    ) -> Self {
        let port_file =
            std::env::temp_dir().join(format!("classifyd-port-{}", uuid::Uuid::new_v4().simple()));
        let mut command = std::process::Command::new(classifyd_bin());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--port-file")
            .arg(&port_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        // Open unless the test configures keys (the developer's environment must not leak in).
        if !args.contains(&"--api-keys")
            && !envs.iter().any(|(name, _)| *name == "CLASSIFYD_API_KEYS")
        {
            command.args(["--api-keys", ""]);
        }
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start classifyd");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                if !port.is_empty() {
                    let _ = std::fs::remove_file(&port_file);
                    return Self {
                        child,
                        base: format!("http://127.0.0.1:{}", port.trim()),
                    };
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("classifyd exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "classifyd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (what docker stop and Kubernetes send).
    pub fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    }

    /// Waits for the process to exit on its own; panics past `limit` (it would hang forever).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "classifyd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A direct connection to a test database, to check what the API does not show.
pub async fn connect_db(database_url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(database_url)
        .await
        .expect("connect to the test database")
}
