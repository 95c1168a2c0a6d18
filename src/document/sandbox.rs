//! Runs PDF extraction in a child process (`classifyd extract`) with an address-space limit, a
//! CPU-time limit and a wall-clock timeout. A parser that overflows its stack, exhausts memory
//! or spins forever kills only the child; the job fails with a message naming the limit.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{extract_in_process, parses_in_child, Document, DocumentError, ParseLimits};
use crate::settings::Limits;

/// Extracts documents, isolating untrusted parsers in child processes.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The `classifyd` binary that provides the `extract` sub-command.
    program: PathBuf,
    limits: Limits,
}

/// What the child writes to its output file.
pub type ChildOutcome = Result<Document, DocumentError>;

impl Extractor {
    pub fn new(program: PathBuf, limits: Limits) -> Self {
        Self { program, limits }
    }

    /// An extractor that re-runs the current executable, which must be `classifyd`.
    pub fn current_exe(limits: Limits) -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, limits))
    }

    pub async fn extract_file(&self, path: &Path) -> Result<Document, DocumentError> {
        let mut head = vec![0u8; 1024];
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| DocumentError::Unsupported(format!("unreadable file ({e})")))?;
        let read = read_up_to(&mut file, &mut head).await;
        head.truncate(read);
        if parses_in_child(&head) {
            return self.extract_in_child(path).await;
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| DocumentError::Unsupported(format!("unreadable file ({e})")))?;
        let limits = ParseLimits::from(&self.limits);
        tokio::task::spawn_blocking(move || extract_in_process(&bytes, &limits))
            .await
            .map_err(|e| DocumentError::ParserCrashed(e.to_string()))?
    }

    async fn extract_in_child(&self, path: &Path) -> Result<Document, DocumentError> {
        let output = tempfile::NamedTempFile::new()
            .map_err(|e| DocumentError::ParserCrashed(format!("no temporary file: {e}")))?;
        let memory_bytes = self.limits.extract_memory_mb.saturating_mul(1024 * 1024);
        let cpu_seconds = self.limits.extract_timeout_seconds.saturating_add(1);
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("extract")
            .arg("--input")
            .arg(path)
            .arg("--output")
            .arg(output.path())
            .args(ParseLimits::from(&self.limits).to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: setrlimit is async-signal-safe and touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, memory_bytes)?;
                set_limit(libc::RLIMIT_CPU, cpu_seconds)?;
                set_limit(libc::RLIMIT_CORE, 0)?;
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            DocumentError::ParserCrashed(format!("could not start the extractor: {e}"))
        })?;
        let mut stderr = child.stderr.take();
        let timeout = Duration::from_secs(self.limits.extract_timeout_seconds);
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| DocumentError::ParserCrashed(e.to_string()))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(DocumentError::Timeout(self.limits.extract_timeout_seconds));
            }
        };
        let mut diagnostics = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr
                .take(64 * 1024)
                .read_to_string(&mut diagnostics)
                .await;
        }
        if status.success() {
            let json = tokio::fs::read(output.path()).await.map_err(|e| {
                DocumentError::ParserCrashed(format!("no output from the extractor: {e}"))
            })?;
            let outcome: ChildOutcome = serde_json::from_slice(&json).map_err(|e| {
                DocumentError::ParserCrashed(format!("unreadable extractor output: {e}"))
            })?;
            return outcome;
        }
        Err(self.explain_failure(status, &diagnostics))
    }

    fn explain_failure(
        &self,
        status: std::process::ExitStatus,
        diagnostics: &str,
    ) -> DocumentError {
        let out_of_memory =
            diagnostics.contains("memory allocation") || diagnostics.contains("out of memory");
        match status.signal() {
            Some(libc::SIGXCPU) | Some(libc::SIGKILL) if !out_of_memory => {
                DocumentError::Timeout(self.limits.extract_timeout_seconds)
            }
            _ if out_of_memory => DocumentError::OutOfMemory(self.limits.extract_memory_mb),
            Some(libc::SIGSEGV) | Some(libc::SIGBUS) => {
                DocumentError::ParserCrashed("segmentation fault".into())
            }
            Some(libc::SIGABRT) if diagnostics.contains("stack overflow") => {
                DocumentError::ParserCrashed("stack overflow on deeply nested objects".into())
            }
            Some(signal) => DocumentError::ParserCrashed(format!("signal {signal}")),
            None => {
                DocumentError::ParserCrashed(format!("exit code {}", status.code().unwrap_or(-1)))
            }
        }
    }
}

async fn read_up_to(file: &mut tokio::fs::File, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: plain system call on a stack value.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Body of `classifyd extract`: runs in the child, writes the outcome as JSON.
pub fn run_child(input: &Path, output: &Path, limits: &ParseLimits) -> anyhow::Result<()> {
    let outcome: ChildOutcome = match std::fs::read(input) {
        Ok(bytes) => extract_in_process(&bytes, limits),
        Err(e) => Err(DocumentError::Unsupported(format!("unreadable file ({e})"))),
    };
    std::fs::write(output, serde_json::to_vec(&outcome)?)?;
    Ok(())
}
