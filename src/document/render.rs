//! Page images for MULTIMODAL mode. PDF pages are rasterised with `hayro` (pure Rust, no
//! system library) in a child process (`classifyd render`) under the same memory, CPU and
//! wall-clock limits as text extraction, since a renderer meets the same hostile files.
//! PNG and JPEG uploads are sent as they are.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::sandbox::set_limit;
use super::DocumentError;
use crate::settings::Limits;

/// Longest side of a rendered page, in pixels: enough for vision models to read body text
/// (they downscale larger images anyway) while keeping each request small.
const LONG_SIDE_PX: f32 = 1280.0;

/// An image of one page, as sent to a vision model.
#[derive(Debug, Clone, PartialEq)]
pub struct PageImage {
    /// `image/png` or `image/jpeg`.
    pub media_type: &'static str,
    pub bytes: Arc<Vec<u8>>,
}

impl PageImage {
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.media_type,
            base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice())
        )
    }
}

/// The image formats a vision model takes as they are.
pub fn image_media_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// What the child writes: one base64 PNG per requested page, in order.
type ChildOutcome = Result<Vec<String>, DocumentError>;

/// Renders PDF pages in child processes.
#[derive(Debug, Clone)]
pub struct Renderer {
    /// The `classifyd` binary that provides the `render` sub-command.
    program: PathBuf,
    limits: Limits,
    /// Pages rendered per document (the first selected ones).
    max_pages: usize,
}

impl Renderer {
    pub fn new(program: PathBuf, limits: Limits, max_pages: usize) -> Self {
        Self {
            program,
            limits,
            max_pages: max_pages.max(1),
        }
    }

    pub fn max_pages(&self) -> usize {
        self.max_pages
    }

    /// PNG images of the given 1-based pages of the PDF at `path`.
    pub async fn render_pdf_pages(
        &self,
        path: &Path,
        pages: &[usize],
    ) -> Result<Vec<PageImage>, DocumentError> {
        let output = tempfile::NamedTempFile::new()
            .map_err(|e| DocumentError::ParserCrashed(format!("no temporary file: {e}")))?;
        let memory_bytes = self.limits.extract_memory_mb.saturating_mul(1024 * 1024);
        let cpu_seconds = self.limits.extract_timeout_seconds.saturating_add(1);
        let page_list: Vec<String> = pages.iter().map(usize::to_string).collect();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("render")
            .arg("--input")
            .arg(path)
            .arg("--output")
            .arg(output.path())
            .arg("--pages")
            .arg(page_list.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: setrlimit is async-signal-safe and touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, memory_bytes, memory_bytes)?;
                set_limit(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds)?;
                set_limit(libc::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            DocumentError::ParserCrashed(format!("could not start the page renderer: {e}"))
        })?;
        let timeout = Duration::from_secs(self.limits.extract_timeout_seconds);
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| DocumentError::ParserCrashed(e.to_string()))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(DocumentError::Timeout(self.limits.extract_timeout_seconds));
            }
        };
        if !status.success() {
            return Err(DocumentError::ParserCrashed(format!(
                "the page renderer stopped ({status}); the PDF is probably malformed or too large to render"
            )));
        }
        let json = tokio::fs::read(output.path()).await.map_err(|e| {
            DocumentError::ParserCrashed(format!("no output from the page renderer: {e}"))
        })?;
        let outcome: ChildOutcome = serde_json::from_slice(&json).map_err(|e| {
            DocumentError::ParserCrashed(format!("unreadable page renderer output: {e}"))
        })?;
        outcome?
            .into_iter()
            .map(|png| {
                base64::engine::general_purpose::STANDARD
                    .decode(png)
                    .map(|bytes| PageImage {
                        media_type: "image/png",
                        bytes: Arc::new(bytes),
                    })
                    .map_err(|e| DocumentError::ParserCrashed(format!("bad page image: {e}")))
            })
            .collect()
    }
}

/// Renders 1-based `pages` of a PDF to PNG in this process. Only the sandboxed child calls it.
pub fn render_in_process(bytes: Vec<u8>, pages: &[usize]) -> Result<Vec<Vec<u8>>, DocumentError> {
    use hayro::hayro_interpret::InterpreterSettings;
    use hayro::hayro_syntax::Pdf;
    use hayro::vello_cpu::color::palette::css::WHITE;
    use hayro::{render, RenderCache, RenderSettings};

    let pdf = Pdf::new(bytes).map_err(|e| DocumentError::InvalidPdf(format!("{e:?}")))?;
    let all = pdf.pages();
    let cache = RenderCache::new();
    let interpreter = InterpreterSettings::default();
    pages
        .iter()
        .map(|&number| {
            let page = all.get(number.wrapping_sub(1)).ok_or_else(|| {
                DocumentError::PageSelection(format!(
                    "page {number} does not exist (the document has {} pages)",
                    all.len()
                ))
            })?;
            let (width, height) = page.render_dimensions();
            let scale = (LONG_SIDE_PX / width.max(height).max(1.0)).min(4.0);
            let settings = RenderSettings {
                x_scale: scale,
                y_scale: scale,
                bg_color: WHITE,
                ..Default::default()
            };
            render(page, &cache, &interpreter, &settings)
                .into_png()
                .map_err(|e| DocumentError::ParserCrashed(format!("PNG encoding failed: {e}")))
        })
        .collect()
}

/// Body of `classifyd render`: runs in the child, writes the outcome as JSON.
pub fn run_child(input: &Path, output: &Path, pages: &str) -> anyhow::Result<()> {
    let numbers: Vec<usize> = pages
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let outcome: ChildOutcome = match std::fs::read(input) {
        Ok(bytes) => render_in_process(bytes, &numbers).map(|images| {
            images
                .iter()
                .map(|png| base64::engine::general_purpose::STANDARD.encode(png))
                .collect()
        }),
        Err(e) => Err(DocumentError::Unsupported(format!("unreadable file ({e})"))),
    };
    std::fs::write(output, serde_json::to_vec(&outcome)?)?;
    Ok(())
}
