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

/// Elements that start a new line when rendered (other tags, such as `<b>`, join their
/// neighbours, except table cells, which are set apart by a space).
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
    "title",
];

/// Elements whose content is never shown.
const HIDDEN_TAGS: &[&str] = &["script", "style", "template", "noscript", "head"];

/// Visible text of an HTML page: tags, comments, scripts, styles and the head removed, block
/// elements on lines of their own, character references decoded.
pub(super) fn html_visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(html.len(), |end| i + end + 3);
            continue;
        }
        if let Some(hidden) = HIDDEN_TAGS
            .iter()
            .find(|tag| rest.starts_with(&format!("<{tag}")) && tag_name(&rest[1..]) == **tag)
        {
            let close = format!("</{hidden}");
            i = rest.find(&close).map_or(html.len(), |end| {
                let after = i + end + close.len();
                lower[after..]
                    .find('>')
                    .map_or(html.len(), |n| after + n + 1)
            });
            out.push('\n');
            continue;
        }
        if html.as_bytes()[i] == b'<' {
            let name = tag_name(rest[1..].trim_start_matches('/'));
            if BLOCK_TAGS.contains(&name) {
                out.push('\n');
            } else if name == "td" || name == "th" {
                out.push(' ');
            }
            i = html[i..].find('>').map_or(html.len(), |end| i + end + 1);
            continue;
        }
        let next = html[i..].find('<').map_or(html.len(), |n| i + n);
        out.push_str(&decode_entities(&html[i..next]));
        i = next;
    }
    let lines: Vec<String> = out
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect();
    lines.join("\n")
}

/// The element name at the start of a tag's text (after `<` or `</`), lower-case input.
fn tag_name(tag: &str) -> &str {
    let end = tag
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(tag.len());
    &tag[..end]
}

/// Decodes XML/HTML character references: the named ones documents use most, and numeric
/// ones (`&#233;`, `&#xE9;`). Unknown references stay as written.
pub(super) fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((entity(&rest[1..=end])?, end + 2)));
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "euro" => '€',
        "pound" => '£',
        "copy" => '©',
        "reg" => '®',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_visible_text_only() {
        let html = "<!DOCTYPE html><html><head><title>Hidden title</title><style>p{}</style></head>\
            <body><!-- note --><h1>Invoice&nbsp;No.&#160;7</h1><p>Total &amp; tax: 10&euro;</p>\
            <script>var x = '<p>no</p>';</script><div>Caf&eacute; <b>bold</b>&#x21;</div></body></html>";
        assert_eq!(
            html_visible_text(html),
            "Invoice No. 7\nTotal & tax: 10€\nCafé bold!"
        );
    }

    #[test]
    fn entities_decode_or_stay() {
        assert_eq!(decode_entities("a &lt;b&gt; &#65;&#x42;"), "a <b> AB");
        assert_eq!(decode_entities("AT&T &unknown; &"), "AT&T &unknown; &");
        assert_eq!(decode_entities("&#xFFFFFFFF;"), "&#xFFFFFFFF;");
    }
}
