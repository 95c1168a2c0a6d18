//! Office Open XML: Word (DOCX) text and PowerPoint (PPTX) slides; spreadsheets and other ZIP
//! containers are refused with a message that says what to upload instead. Every part is read
//! with a size bound (a ZIP entry can be a decompression bomb too), and the XML is scanned
//! tag by tag without recursion.

use std::io::{Cursor, Read};

use super::text::decode_entities;
use super::{DocumentError, DocumentKind};

/// Most parts read from one archive: a PPTX with more slides than this is refused by the
/// page limit long before, and a real DOCX has one main part.
const MAX_ENTRIES: usize = 100_000;

type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

fn open(bytes: &[u8]) -> Result<Archive<'_>, DocumentError> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| DocumentError::Unsupported(format!("a damaged ZIP container ({e})")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(DocumentError::Unsupported(format!(
            "a ZIP container with {} entries",
            archive.len()
        )));
    }
    Ok(archive)
}

/// Which Office format a ZIP container holds.
pub(super) fn detect(bytes: &[u8]) -> Result<DocumentKind, DocumentError> {
    let archive = open(bytes)?;
    let has = |name: &str| archive.index_for_name(name).is_some();
    if has("word/document.xml") {
        Ok(DocumentKind::Docx)
    } else if has("ppt/presentation.xml") {
        Ok(DocumentKind::Pptx)
    } else if has("xl/workbook.xml") {
        Err(DocumentError::Unsupported(
            "an Excel workbook (XLSX); spreadsheets are not classified".into(),
        ))
    } else if has("content.xml") && has("mimetype") {
        Err(DocumentError::Unsupported(
            "an OpenDocument file; export it as PDF or DOCX".into(),
        ))
    } else {
        Err(DocumentError::Unsupported(
            "a ZIP archive that is not a Word or PowerPoint document".into(),
        ))
    }
}

/// A DOCX's text; explicit page breaks and Word's last rendered page breaks separate pages.
pub(super) fn docx_pages(bytes: &[u8], max_part_bytes: u64) -> Result<Vec<String>, DocumentError> {
    let mut archive = open(bytes)?;
    let xml = read_part(&mut archive, "word/document.xml", max_part_bytes)?;
    let mut pages = vec![String::new()];
    for item in Tags::new(&xml) {
        let page = pages.last_mut().expect("never empty");
        match item {
            Item::Text(text, "w:t") => page.push_str(&decode_entities(text)),
            Item::Tag("w:tab", _) => page.push('\t'),
            Item::Tag("w:br", attributes) if attributes.contains("w:type=\"page\"") => {
                pages.push(String::new())
            }
            Item::Tag("w:lastRenderedPageBreak", _) => pages.push(String::new()),
            Item::Tag("w:br" | "w:cr", _) | Item::Close("w:p") => page.push('\n'),
            Item::Close("w:tc") => page.push('\t'),
            _ => {}
        }
    }
    Ok(tidy(pages))
}

/// A PPTX's slides in order, one page each.
pub(super) fn pptx_pages(bytes: &[u8], max_part_bytes: u64) -> Result<Vec<String>, DocumentError> {
    let mut archive = open(bytes)?;
    let mut slides: Vec<(u32, String)> = archive
        .file_names()
        .filter_map(|name| {
            let number = name
                .strip_prefix("ppt/slides/slide")?
                .strip_suffix(".xml")?
                .parse()
                .ok()?;
            Some((number, name.to_string()))
        })
        .collect();
    slides.sort_unstable();
    let mut pages = Vec::with_capacity(slides.len());
    for (_, name) in slides {
        let xml = read_part(&mut archive, &name, max_part_bytes)?;
        let mut page = String::new();
        for item in Tags::new(&xml) {
            match item {
                Item::Text(text, "a:t") => page.push_str(&decode_entities(text)),
                Item::Tag("a:br", _) | Item::Close("a:p") => page.push('\n'),
                _ => {}
            }
        }
        pages.push(page);
    }
    if pages.is_empty() {
        return Err(DocumentError::Empty);
    }
    Ok(tidy(pages))
}

fn read_part(archive: &mut Archive<'_>, name: &str, limit: u64) -> Result<String, DocumentError> {
    let entry = archive.by_name(name).map_err(|e| {
        DocumentError::Unsupported(format!("an Office file whose {name} is unreadable ({e})"))
    })?;
    let mut bytes = Vec::new();
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| {
            DocumentError::Unsupported(format!("an Office file whose {name} is damaged ({e})"))
        })?;
    if bytes.len() as u64 > limit {
        return Err(DocumentError::StreamTooLarge {
            limit_mib: limit / (1024 * 1024),
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Trims each page's lines and drops a trailing empty page left by a final break.
fn tidy(mut pages: Vec<String>) -> Vec<String> {
    if pages.len() > 1 && pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
        .into_iter()
        .map(|page| {
            let lines: Vec<&str> = page
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            let mut text = lines.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            text
        })
        .collect()
}

/// One piece of an XML document, in order.
#[derive(Debug, PartialEq)]
enum Item<'a> {
    /// An opening or self-closing tag: name and the raw attribute text.
    Tag(&'a str, &'a str),
    Close(&'a str),
    /// Character data (still escaped) and the name of the element it sits in.
    Text(&'a str, &'a str),
}

/// A flat scan of tags and text: enough for OOXML, where text sits in leaf elements.
struct Tags<'a> {
    xml: &'a str,
    at: usize,
    /// The innermost open element, which text belongs to.
    open: &'a str,
}

impl<'a> Tags<'a> {
    fn new(xml: &'a str) -> Self {
        Self {
            xml,
            at: 0,
            open: "",
        }
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            let rest = &self.xml[self.at..];
            if rest.is_empty() {
                return None;
            }
            if !rest.starts_with('<') {
                let end = rest.find('<').unwrap_or(rest.len());
                self.at += end;
                return Some(Item::Text(&rest[..end], self.open));
            }
            let end = rest.find('>').map_or(rest.len(), |n| n + 1);
            self.at += end;
            let tag = rest[1..end].trim_end_matches('>');
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                self.open = "";
                return Some(Item::Close(name.trim()));
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, attributes) = tag
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((tag, ""));
            self.open = if self_closing { "" } else { name };
            return Some(Item::Tag(name, attributes));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A ZIP with the given (name, content) entries, deflated.
    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(content.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn docx_text_keeps_words_paragraphs_and_page_breaks() {
        let body = r#"<?xml version="1.0"?><w:document><w:body>
            <w:p><w:r><w:t>INVOICE</w:t></w:r><w:r><w:t xml:space="preserve"> No. 7 &amp; co</w:t></w:r></w:p>
            <w:p><w:r><w:t>Total</w:t><w:tab/><w:t>10 EUR</w:t></w:r></w:p>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>two</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            <w:p><w:r><w:br w:type="page"/><w:t>Second page</w:t></w:r></w:p>
            <w:p><w:r><w:instrText>PAGE</w:instrText></w:r></w:p>
            </w:body></w:document>"#;
        let docx = zip_of(&[("word/document.xml", body)]);
        assert_eq!(detect(&docx).unwrap(), DocumentKind::Docx);
        let pages = docx_pages(&docx, 1 << 20).unwrap();
        assert_eq!(
            pages,
            vec![
                "INVOICE No. 7 & co\nTotal\t10 EUR\ncell\ntwo\n".to_string(),
                "Second page\n".to_string()
            ]
        );
    }

    #[test]
    fn pptx_slides_are_pages_in_numeric_order() {
        let slide = |text: &str| {
            format!(
                r#"<p:sld><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r><a:br/><a:r><a:t>more</a:t></a:r></a:p></p:txBody></p:sld>"#
            )
        };
        let (one, two, ten) = (slide("first"), slide("second"), slide("tenth"));
        let pptx = zip_of(&[
            ("ppt/presentation.xml", "<p:presentation/>"),
            ("ppt/slides/slide10.xml", &ten),
            ("ppt/slides/slide2.xml", &two),
            ("ppt/slides/slide1.xml", &one),
        ]);
        assert_eq!(detect(&pptx).unwrap(), DocumentKind::Pptx);
        let pages = pptx_pages(&pptx, 1 << 20).unwrap();
        assert_eq!(
            pages,
            vec!["first\nmore\n", "second\nmore\n", "tenth\nmore\n"]
        );
    }

    #[test]
    fn other_containers_are_refused_with_a_reason() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("xl/workbook.xml", "<workbook/>")], "spreadsheets"),
            (
                &[
                    ("mimetype", "application/vnd.oasis"),
                    ("content.xml", "<x/>"),
                ],
                "OpenDocument",
            ),
            (&[("readme.txt", "hello")], "not a Word or PowerPoint"),
        ];
        for (entries, reason) in cases {
            let error = detect(&zip_of(entries)).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
        let error = detect(b"PK\x03\x04 truncated").unwrap_err().to_string();
        assert!(error.contains("damaged ZIP"), "{error}");
    }

    #[test]
    fn oversized_parts_are_refused() {
        let big = format!("<w:p><w:t>{}</w:t></w:p>", "a".repeat(4096));
        let docx = zip_of(&[("word/document.xml", &big)]);
        assert!(matches!(
            docx_pages(&docx, 1024),
            Err(DocumentError::StreamTooLarge { .. })
        ));
    }
}
