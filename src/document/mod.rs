//! Bytes in, text per page out. The type is read from the content (magic bytes), never from
//! the file name. Parsing untrusted PDFs happens in a child process ([`sandbox`]) because
//! some hostile files abort a parser in ways no `catch_unwind` can stop.

mod forms;
mod guard;
mod office;
pub mod pages;
mod pdf;
pub mod render;
pub mod sandbox;
mod text;
mod to_unicode;

use serde::{Deserialize, Serialize};

pub use pages::PageSelection;

use crate::settings::Limits;

/// What the content turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Pdf,
    Text,
    Markdown,
    Html,
    /// Word (Office Open XML).
    Docx,
    /// PowerPoint (Office Open XML): one page per slide.
    Pptx,
}

/// A document reduced to its text, one entry per page (index 0 = page 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub kind: DocumentKind,
    pub pages: Vec<String>,
}

/// Why a document could not be read. The message is shown to the user as the job's
/// `error_message`, so it says what to do.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq)]
pub enum DocumentError {
    #[error("The file is empty.")]
    Empty,
    #[error("Unsupported file type: {0}.")]
    Unsupported(String),
    #[error("The file is an image ({0}); images have no text layer: classify it with mode MULTIMODAL (a vision model reads PNG and JPEG).")]
    Image(String),
    #[error("The file is not a readable PDF: {0}.")]
    InvalidPdf(String),
    #[error("The PDF is protected by a password; upload an unencrypted copy.")]
    Encrypted,
    #[error("The PDF is encrypted but has no file identifier (/ID in its trailer), from which the decryption key is derived, so it cannot be opened (it may also need a password); upload an unencrypted copy.")]
    EncryptedWithoutId,
    #[error(
        "The document has {pages} pages, more than the limit of {limit} (CLASSIFYD_MAX_PAGES)."
    )]
    TooManyPages { pages: usize, limit: usize },
    #[error("The document has no text layer on the selected pages (scanned or image-only pages); classify it with mode MULTIMODAL.")]
    NoText,
    #[error("{0}")]
    PageSelection(String),
    #[error("Reading the document took longer than the limit of {0} s (CLASSIFYD_EXTRACT_TIMEOUT_SECONDS).")]
    Timeout(u64),
    #[error("Reading the document needed more memory than the limit of {0} MiB (CLASSIFYD_EXTRACT_MEMORY_MB).")]
    OutOfMemory(u64),
    #[error("The document crashed the PDF parser ({0}); it is probably malformed.")]
    ParserCrashed(String),
    #[error("The PDF nests arrays or dictionaries more than {limit} levels deep (CLASSIFYD_MAX_NESTING_DEPTH); it is malformed or built to crash parsers. Re-save it with a PDF tool and upload the copy.")]
    TooDeep { limit: usize },
    #[error("A compressed stream in the PDF decodes to more than {limit_mib} MiB (CLASSIFYD_MAX_STREAM_BYTES); it is probably a decompression bomb. Re-save it with a PDF tool and upload the copy.")]
    StreamTooLarge { limit_mib: u64 },
}

/// The bounds the extraction child enforces itself; the sandbox adds time and memory limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct ParseLimits {
    /// Documents with more pages fail.
    #[arg(long)]
    pub max_pages: usize,
    /// PDFs nesting arrays/dictionaries deeper fail before parsing.
    #[arg(long)]
    pub max_nesting_depth: usize,
    /// PDFs with a compressed stream decoding to more bytes fail before parsing.
    #[arg(long)]
    pub max_stream_bytes: u64,
}

impl From<&Limits> for ParseLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            max_pages: limits.max_pages,
            max_nesting_depth: limits.max_nesting_depth,
            max_stream_bytes: limits.max_stream_bytes,
        }
    }
}

impl ParseLimits {
    /// The same limits as command-line flags of `classifyd extract`.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--max-pages".into(),
            self.max_pages.to_string(),
            "--max-nesting-depth".into(),
            self.max_nesting_depth.to_string(),
            "--max-stream-bytes".into(),
            self.max_stream_bytes.to_string(),
        ]
    }
}

/// Sniffs the content type from the first bytes.
pub fn detect_kind(bytes: &[u8]) -> Result<DocumentKind, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_some() {
        return Ok(DocumentKind::Pdf);
    }
    if let Some(image) = image_kind(head) {
        return Err(DocumentError::Image(image.to_string()));
    }
    if head.starts_with(b"PK\x03\x04") {
        return office::detect(bytes);
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(DocumentError::Unsupported(
            "a legacy Microsoft Office file (.doc, .ppt, .xls); save it as PDF or DOCX".into(),
        ));
    }
    text::detect(bytes)
}

fn image_kind(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("PNG")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("JPEG")
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some("TIFF")
    } else if head.starts_with(b"GIF8") {
        Some("GIF")
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("WebP")
    } else {
        None
    }
}

/// Whether a file starting with `head` must be parsed in the sandboxed child: PDFs and ZIP
/// containers (Office files) go through parsers that hostile files have crashed; plain text,
/// HTML and refused types are handled safely in-process.
pub fn parses_in_child(head: &[u8]) -> bool {
    find(&head[..head.len().min(1024)], b"%PDF-").is_some() || head.starts_with(b"PK\x03\x04")
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Extracts every page's text in this process. Only the sandboxed child should call this on
/// untrusted PDFs; text formats are safe anywhere.
pub fn extract_in_process(bytes: &[u8], limits: &ParseLimits) -> Result<Document, DocumentError> {
    let max_pages = limits.max_pages;
    let kind = detect_kind(bytes)?;
    let pages = match kind {
        DocumentKind::Pdf => {
            guard::check(
                bytes,
                guard::GuardLimits {
                    max_depth: limits.max_nesting_depth,
                    max_stream_bytes: limits.max_stream_bytes,
                },
            )?;
            pdf::extract_pages(bytes, max_pages)?
        }
        DocumentKind::Text | DocumentKind::Markdown => text::pages(bytes),
        DocumentKind::Html => vec![text::html_visible_text(&String::from_utf8_lossy(bytes))],
        DocumentKind::Docx => office::docx_pages(bytes, limits.max_stream_bytes)?,
        DocumentKind::Pptx => office::pptx_pages(bytes, limits.max_stream_bytes)?,
    };
    if pages.len() > max_pages {
        return Err(DocumentError::TooManyPages {
            pages: pages.len(),
            limit: max_pages,
        });
    }
    Ok(Document { kind, pages })
}

impl Document {
    /// The selected pages' text with their 1-based numbers. Fails if the selection names pages
    /// the document lacks or if none of the selected pages has any text.
    pub fn select(&self, selection: &PageSelection) -> Result<Vec<(usize, &str)>, DocumentError> {
        let numbers = selection
            .resolve(self.pages.len())
            .map_err(DocumentError::PageSelection)?;
        let selected: Vec<(usize, &str)> = numbers
            .into_iter()
            .map(|n| (n, self.pages[n - 1].as_str()))
            .collect();
        if selected.iter().all(|(_, text)| text.trim().is_empty()) {
            return Err(if self.pages.is_empty() {
                DocumentError::Empty
            } else {
                DocumentError::NoText
            });
        }
        Ok(selected)
    }
}
