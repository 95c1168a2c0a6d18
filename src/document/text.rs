//! Plain text, Markdown and HTML.

use super::{DocumentError, DocumentKind};

pub(super) fn detect(bytes: &[u8]) -> Result<DocumentKind, DocumentError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Latin-1 and friends: accept when the bytes are mostly printable.
        let printable = bytes
            .iter()
            .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace() || **b >= 0xA0)
            .count();
        if printable * 100 >= bytes.len() * 95 {
            return Ok(DocumentKind::Text);
        }
        return Err(DocumentError::Unsupported(
            "binary data that is neither a PDF nor text".into(),
        ));
    };
    if text.contains('\0') {
        return Err(DocumentError::Unsupported(
            "binary data that is neither a PDF nor text".into(),
        ));
    }
    let head: String = text
        .trim_start()
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        return Ok(DocumentKind::Html);
    }
    let markdown_markers = text
        .lines()
        .take(200)
        .filter(|line| {
            line.starts_with('#')
                || line.starts_with("- ")
                || line.starts_with("* ")
                || line.starts_with('|')
        })
        .count();
    if markdown_markers > 0 {
        return Ok(DocumentKind::Markdown);
    }
    let csv_like = text
        .lines()
        .take(20)
        .filter(|l| l.matches(',').count() >= 3)
        .count();
    if csv_like >= 5 && text.lines().take(20).count() == csv_like {
        return Err(DocumentError::Unsupported(
            "CSV (spreadsheets are not classified)".into(),
        ));
    }
    Ok(DocumentKind::Text)
}

/// Pages of a text file: form feeds separate pages, as `pdftotext` writes them.
pub(super) fn pages(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.len() > 1 && pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

/// Visible text of an HTML page: tags, scripts and styles removed, entities for the common
/// characters decoded.
pub(super) fn html_visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        if lower[i..].starts_with("<script") || lower[i..].starts_with("<style") {
            let close = if lower[i..].starts_with("<script") {
                "</script"
            } else {
                "</style"
            };
            i = lower[i..]
                .find(close)
                .map_or(html.len(), |end| i + end + close.len());
            continue;
        }
        if html.as_bytes()[i] == b'<' {
            i = html[i..].find('>').map_or(html.len(), |end| i + end + 1);
            out.push(' ');
            continue;
        }
        let next = html[i..].find('<').map_or(html.len(), |n| i + n);
        out.push_str(&html[i..next]);
        i = next;
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}
