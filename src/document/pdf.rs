//! PDF text. `pdf-extract` gives the better text (spacing, reading order, ToUnicode); where it
//! fails or panics on a page, lopdf's own extractor reads that page instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::Document as PdfDocument;

use super::DocumentError;

pub(super) fn extract_pages(bytes: &[u8], max_pages: usize) -> Result<Vec<String>, DocumentError> {
    let mut doc = match catch_unwind(AssertUnwindSafe(|| PdfDocument::load_mem(bytes))) {
        Ok(Ok(doc)) => doc,
        Ok(Err(lopdf::Error::InvalidPassword)) => return Err(DocumentError::Encrypted),
        Ok(Err(e)) => return Err(DocumentError::InvalidPdf(describe(&e))),
        Err(_) => {
            return Err(DocumentError::InvalidPdf(
                "the parser could not read its structure".into(),
            ))
        }
    };
    if doc.trailer.get(b"Encrypt").is_ok() && !doc.was_encrypted() {
        // lopdf tried the empty user password and it failed: without the real password the
        // objects stay unread and the document would look page-less.
        return Err(DocumentError::Encrypted);
    }
    if doc.is_encrypted() {
        // lopdf already tried the empty user password while loading; a document that still
        // reports encryption needs a real password.
        match doc.decrypt("") {
            Ok(()) | Err(lopdf::Error::NotEncrypted) => {}
            Err(_) => return Err(DocumentError::Encrypted),
        }
    }
    let page_numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    if page_numbers.is_empty() {
        return Err(DocumentError::InvalidPdf("it has no pages".into()));
    }
    if page_numbers.len() > max_pages {
        return Err(DocumentError::TooManyPages {
            pages: page_numbers.len(),
            limit: max_pages,
        });
    }
    Ok(page_numbers
        .iter()
        .map(|&number| page_text(&doc, number))
        .collect())
}

fn page_text(doc: &PdfDocument, number: u32) -> String {
    let primary = catch_unwind(AssertUnwindSafe(|| {
        let mut text = String::new();
        let mut output = pdf_extract::PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(doc, &mut output, number).map(|()| text)
    }));
    if let Ok(Ok(text)) = primary {
        if !text.trim().is_empty() {
            return normalise(&text);
        }
    }
    let fallback = catch_unwind(AssertUnwindSafe(|| doc.extract_text(&[number])))
        .ok()
        .and_then(Result::ok)
        .map(|text| normalise(&text))
        .unwrap_or_default();
    if !fallback.trim().is_empty() {
        return fallback;
    }
    catch_unwind(AssertUnwindSafe(|| shown_strings(doc, number)))
        .map(|text| normalise(&text))
        .unwrap_or_default()
}

/// Last resort for a page whose fonts are damaged or missing (both extractors give up): the
/// bytes of the strings its text operators show, kept when they are plain printable ASCII,
/// which is what simple fonts usually encode. Better a rough reading than "no text layer".
fn shown_strings(doc: &PdfDocument, number: u32) -> String {
    let Some(&page_id) = doc.get_pages().get(&number) else {
        return String::new();
    };
    let Ok(content) = doc
        .get_page_content(page_id)
        .and_then(|bytes| lopdf::content::Content::decode(&bytes))
    else {
        return String::new();
    };
    let mut text = String::new();
    for operation in &content.operations {
        match operation.operator.as_str() {
            "Tj" | "'" | "\"" | "TJ" => {}
            "Td" | "TD" | "T*" | "Tm" | "ET" => {
                text.push('\n');
                continue;
            }
            _ => continue,
        }
        for operand in &operation.operands {
            let strings: Vec<&lopdf::Object> = match operand {
                lopdf::Object::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for object in strings {
                if let lopdf::Object::String(bytes, _) = object {
                    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                        text.push_str(&String::from_utf8_lossy(bytes));
                    }
                }
            }
        }
        text.push(' ');
    }
    text
}

/// Collapses runs of spaces inside lines and drops blank-line runs, keeping line order.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn describe(error: &lopdf::Error) -> String {
    let text = error.to_string();
    let trimmed = text.trim_end_matches('.');
    if trimmed.is_empty() {
        "unknown structure error".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::extract_pages;

    /// A crash class fuzzing found (fixture rebuilt by hand): pdf-extract panics on a page
    /// whose font object is missing, and lopdf gives up on it too; the page's text is still read.
    #[test]
    fn a_page_with_a_missing_font_object_keeps_its_text() {
        let bytes = include_bytes!("../../tests/fixtures/fuzz/pdf-extract-missing-object.pdf");
        let pages = extract_pages(bytes, 10).unwrap();
        assert_eq!(pages, vec!["INVOICE No. 7 Total due 10 EUR\n".to_string()]);
    }
}
