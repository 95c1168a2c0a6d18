//! A `classifyd serve` child process on a random port, and its memory as `/proc` reports it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// `classifyd` next to this executable (both live in the same `target/<profile>/`).
pub fn sibling_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("classifyd")))
        .unwrap_or_else(|| PathBuf::from("classifyd"))
}

pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub base: String,
    /// Time from spawn to `/ready` answering 200.
    pub ready_after: Duration,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with a fresh data directory. `database_url` `None` means the
    /// embedded SQLite default inside that directory. `env` adds or overrides settings.
    pub async fn start(
        bin: &Path,
        database_url: Option<&str>,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("classifyd-bench-")
            .tempdir()?;
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut command = tokio::process::Command::new(bin);
        command
            .arg("serve")
            .env("CLASSIFYD_LISTEN", "127.0.0.1:0")
            .env("CLASSIFYD_PORT_FILE", &port_file)
            .env("CLASSIFYD_DATA_DIR", dir.path().join("data"))
            .env_remove("DATABASE_URL")
            .env_remove("CLASSIFYD_EPHEMERAL")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Self {
            child,
            pid,
            base: String::new(),
            ready_after: Duration::ZERO,
            dir,
        };
        server.base = server.wait_ready(&port_file, started).await?;
        server.ready_after = started.elapsed();
        Ok(server)
    }

    async fn wait_ready(&mut self, port_file: &Path, started: Instant) -> anyhow::Result<String> {
        let client = reqwest::Client::new();
        let deadline = started + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited with {status} before it was ready; its log:\n{}",
                    self.log()
                );
            }
            if let Ok(port) = std::fs::read_to_string(port_file) {
                let base = format!("http://127.0.0.1:{}", port.trim());
                let ready = client.get(format!("{base}/ready")).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return Ok(base);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!(
            "the server was not ready within 60 s; its log:\n{}",
            self.log()
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Current and peak resident memory of the server process itself, in bytes.
    pub fn memory(&self) -> Memory {
        memory_of(self.pid)
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: plain system call; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS.
    pub rss: u64,
    /// VmHWM: the peak RSS over the process's life.
    pub peak: u64,
}

pub fn memory_of(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// Resident memory of `pid` plus its child processes (the sandboxed extractors).
pub fn rss_with_children(pid: u32) -> u64 {
    memory_of(pid).rss + children(pid).iter().map(|&c| memory_of(c).rss).sum::<u64>()
}

/// Direct children of `pid`, from every thread's `children` list.
fn children(pid: u32) -> Vec<u32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Megabytes with one decimal, for reports.
pub fn mb(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}
