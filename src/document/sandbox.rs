//! Runs PDF extraction in child processes (`classifyd extract`) with an address-space limit, a
//! CPU-time limit per document and a wall-clock timeout. A parser that overflows its stack,
//! exhausts memory or spins forever kills only its child; the job fails with a message naming
//! the limit.
//!
//! Starting a process per document cost more than parsing most documents (see BENCHMARKS.md),
//! so children are pooled: each serves one document at a time over its stdin/stdout (request:
//! the file's path; answer: the outcome as JSON, both length-prefixed) and goes back to the pool
//! afterwards. A child that crashes, times out, answers garbage or grows large is killed and
//! never reused; a fresh one is started when needed.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};

use super::{extract_in_process, parses_in_child, Document, DocumentError, ParseLimits};
use crate::settings::Limits;

/// Idle children kept for reuse; more run at once when more documents do.
const MAX_IDLE: usize = 8;
/// A child is replaced after this many documents, bounding any slow leak in a parser.
const MAX_DOCUMENTS_PER_CHILD: u32 = 1000;
/// A child whose resident memory stays above this after a document is replaced, so one large
/// document does not keep its memory held in the pool.
const MAX_IDLE_RSS: u64 = 128 * 1024 * 1024;
/// The largest answer accepted from a child.
const MAX_ANSWER_BYTES: u32 = 256 * 1024 * 1024;
/// The tail of a child's stderr kept to explain its death.
const DIAGNOSTICS_BYTES: usize = 64 * 1024;

/// Extracts documents, isolating untrusted parsers in pooled child processes.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The `classifyd` binary that provides the `extract` sub-command.
    program: PathBuf,
    limits: Limits,
    idle: Arc<Mutex<Vec<Child>>>,
    /// Set at shutdown: children are no longer pooled, so none outlives the server.
    closed: Arc<AtomicBool>,
}

/// What the child answers for one document.
pub type ChildOutcome = Result<Document, DocumentError>;

#[derive(Debug)]
struct Child {
    process: tokio::process::Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The tail of the child's stderr, filled by a task that drains it.
    diagnostics: Arc<Mutex<Vec<u8>>>,
    drain: tokio::task::JoinHandle<()>,
    served: u32,
}

impl Extractor {
    pub fn new(program: PathBuf, limits: Limits) -> Self {
        Self {
            program,
            limits,
            idle: Arc::new(Mutex::new(Vec::new())),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Kills the idle children and stops pooling; a child busy with a document is killed when
    /// its work is dropped (`kill_on_drop`) or goes when it finishes.
    pub fn shutdown(&self) {
        let idle = self
            .idle
            .lock()
            .map(|mut idle| {
                self.closed.store(true, Ordering::SeqCst);
                std::mem::take(&mut *idle)
            })
            .unwrap_or_default();
        for mut child in idle {
            let _ = child.process.start_kill();
        }
    }

    /// An extractor that re-runs the current executable, which must be `classifyd`.
    pub fn current_exe(limits: Limits) -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, limits))
    }

    /// Starts up to `children` idle children ahead of the first documents.
    pub fn prewarm(&self, children: usize) {
        for _ in 0..children.min(MAX_IDLE) {
            match self.spawn() {
                Ok(child) => self.give_back(child),
                Err(error) => {
                    tracing::warn!(%error, "could not start an extractor child");
                    return;
                }
            }
        }
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
        let path = std::path::absolute(path)
            .map_err(|e| DocumentError::Unsupported(format!("unreadable file ({e})")))?;
        let mut child = match self.take_idle() {
            Some(child) => child,
            None => self.spawn().map_err(|e| {
                DocumentError::ParserCrashed(format!("could not start the extractor: {e}"))
            })?,
        };
        let timeout = Duration::from_secs(self.limits.extract_timeout_seconds);
        let answer = match tokio::time::timeout(timeout, child.exchange(&path)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(self.explain_death(child).await),
            Err(_) => {
                let _ = child.process.kill().await;
                return Err(DocumentError::Timeout(self.limits.extract_timeout_seconds));
            }
        };
        let outcome: ChildOutcome = serde_json::from_slice(&answer).map_err(|e| {
            DocumentError::ParserCrashed(format!("unreadable extractor output: {e}"))
        })?;
        child.served += 1;
        if child.served < MAX_DOCUMENTS_PER_CHILD && resident_bytes(child.pid) < MAX_IDLE_RSS {
            self.give_back(child);
        }
        outcome
    }

    fn take_idle(&self) -> Option<Child> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, child: Child) {
        if let Ok(mut idle) = self.idle.lock() {
            // Checked under the lock, so no child is pooled after `shutdown` emptied the pool.
            if idle.len() < MAX_IDLE && !self.closed.load(Ordering::SeqCst) {
                idle.push(child);
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let memory_bytes = self.limits.extract_memory_mb.saturating_mul(1024 * 1024);
        let cpu_seconds = self.cpu_seconds();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("extract")
            .args(ParseLimits::from(&self.limits).to_args())
            .arg("--cpu-seconds")
            .arg(cpu_seconds.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: setrlimit is async-signal-safe and touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, memory_bytes, memory_bytes)?;
                // The child lowers the soft limit to `cpu_seconds` past its usage before each
                // document, so every document gets the full budget however many came before.
                set_limit(libc::RLIMIT_CPU, cpu_seconds, libc::RLIM_INFINITY)?;
                set_limit(libc::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let mut process = command.spawn()?;
        let pid = process.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(mut stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(std::io::Error::other("the extractor's pipes are missing"));
        };
        let diagnostics = Arc::new(Mutex::new(Vec::new()));
        let sink = diagnostics.clone();
        let drain = tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buffer).await {
                if let Ok(mut tail) = sink.lock() {
                    tail.extend_from_slice(&buffer[..n]);
                    let excess = tail.len().saturating_sub(DIAGNOSTICS_BYTES);
                    tail.drain(..excess);
                }
            }
        });
        Ok(Child {
            process,
            pid,
            stdin,
            stdout,
            diagnostics,
            drain,
            served: 0,
        })
    }

    fn cpu_seconds(&self) -> u64 {
        self.limits.extract_timeout_seconds.saturating_add(1)
    }

    /// The child stopped answering mid-document: reap it and say which limit (if any) it hit.
    async fn explain_death(&self, mut child: Child) -> DocumentError {
        let status = match tokio::time::timeout(Duration::from_secs(5), child.process.wait()).await
        {
            Ok(Ok(status)) => status,
            _ => {
                let _ = child.process.kill().await;
                return DocumentError::ParserCrashed("the extractor stopped answering".into());
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut child.drain).await;
        let diagnostics = child
            .diagnostics
            .lock()
            .map(|tail| String::from_utf8_lossy(&tail).into_owned())
            .unwrap_or_default();
        self.explain_failure(status, &diagnostics)
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

impl Child {
    /// Sends one request and reads its answer. An error means the child is gone or broken.
    async fn exchange(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        if let Ok(mut tail) = self.diagnostics.lock() {
            tail.clear();
        }
        let request = path.as_os_str().as_bytes();
        let length = u32::try_from(request.len()).map_err(std::io::Error::other)?;
        self.stdin.write_all(&length.to_le_bytes()).await?;
        self.stdin.write_all(request).await?;
        self.stdin.flush().await?;
        let length = self.stdout.read_u32_le().await?;
        if length > MAX_ANSWER_BYTES {
            return Err(std::io::Error::other("oversized answer"));
        }
        let mut answer = vec![0u8; length as usize];
        self.stdout.read_exact(&mut answer).await?;
        Ok(answer)
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

pub(super) fn set_limit(
    resource: libc::__rlimit_resource_t,
    soft: libc::rlim_t,
    hard: libc::rlim_t,
) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: plain system call on a stack value.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Resident memory of a process from `/proc` (0 when unknown).
fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Body of `classifyd extract`: serves documents one at a time until stdin closes. Runs in the
/// child, with no async runtime and no logging.
pub fn run_child(limits: &ParseLimits, cpu_seconds: u64) -> anyhow::Result<()> {
    // Answers go to the original stdout; fd 1 itself now points to /dev/null, so nothing a
    // parser prints can corrupt the protocol.
    // SAFETY: dup/dup2 on descriptors this process owns.
    let mut answers = unsafe {
        let answers = libc::dup(1);
        if answers < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        if libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(answers)
    };
    // Parser panics are caught and become error messages; their backtraces are noise.
    std::panic::set_hook(Box::new(|_| {}));
    let mut requests = std::io::stdin().lock();
    loop {
        let mut length = [0u8; 4];
        match requests.read_exact(&mut length) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let mut path = vec![0u8; u32::from_le_bytes(length) as usize];
        requests.read_exact(&mut path)?;
        renew_cpu_budget(cpu_seconds)?;
        let outcome: ChildOutcome = match std::fs::read(Path::new(OsStr::from_bytes(&path))) {
            Ok(bytes) => extract_in_process(&bytes, limits),
            Err(e) => Err(DocumentError::Unsupported(format!("unreadable file ({e})"))),
        };
        let json = serde_json::to_vec(&outcome)?;
        answers.write_all(&(json.len() as u32).to_le_bytes())?;
        answers.write_all(&json)?;
        answers.flush()?;
    }
}

/// Sets the CPU soft limit to `cpu_seconds` beyond what this process has used so far.
fn renew_cpu_budget(cpu_seconds: u64) -> std::io::Result<()> {
    // SAFETY: getrusage fills the zeroed struct we own.
    let used = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) as u64 + 1
    };
    set_limit(libc::RLIMIT_CPU, used + cpu_seconds, libc::RLIM_INFINITY)
}
