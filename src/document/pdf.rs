//! PDF text. `pdf-extract` gives the better text (spacing, reading order, ToUnicode); where it
//! fails or panics on a page, lopdf's own extractor reads that page instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::Document as PdfDocument;

use super::DocumentError;

pub(super) fn extract_pages(bytes: &[u8], max_pages: usize) -> Result<Vec<String>, DocumentError> {
    let mut doc = load(bytes)?;
    if doc.trailer.get(b"Encrypt").is_ok() && !doc.was_encrypted() {
        // lopdf tried the empty user password and it failed: without the real password the
        // objects stay unread and the document would look page-less.
        if doc.trailer.get(b"ID").is_ok() {
            return Err(DocumentError::Encrypted);
        }
        // The key is derived from the trailer's /ID, which lopdf requires; readers that open
        // such files (poppler, qpdf, pdfminer) take a missing /ID as an empty one.
        doc = with_empty_file_id(bytes)
            .and_then(|patched| load(&patched).ok())
            .filter(PdfDocument::was_encrypted)
            .ok_or(DocumentError::EncryptedWithoutId)?;
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

fn load(bytes: &[u8]) -> Result<PdfDocument, DocumentError> {
    match catch_unwind(AssertUnwindSafe(|| PdfDocument::load_mem(bytes))) {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(lopdf::Error::InvalidPassword)) => Err(DocumentError::Encrypted),
        Ok(Err(e)) => Err(DocumentError::InvalidPdf(describe(&e))),
        Err(_) => Err(DocumentError::InvalidPdf(
            "the parser could not read its structure".into(),
        )),
    }
}

/// The file with `/ID [<> <>]` written into its trailer dictionary: the one after the last
/// cross-reference table, or the last cross-reference stream's dictionary. `None` when the
/// file does not say where that is. Nothing the file's offsets point at moves: the last
/// cross-reference section starts before the insertion and every object before it.
fn with_empty_file_id(bytes: &[u8]) -> Option<Vec<u8>> {
    let keyword = bytes.windows(9).rposition(|w| w == b"startxref")?;
    let digits: String = bytes[keyword + 9..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    let section: usize = digits.parse().ok().filter(|&at| at < keyword)?;
    let open = section + super::find(&bytes[section..keyword], b"<<")? + 2;
    let mut patched = Vec::with_capacity(bytes.len() + 12);
    patched.extend_from_slice(&bytes[..open]);
    patched.extend_from_slice(b"/ID [<> <>]");
    patched.extend_from_slice(&bytes[open..]);
    Some(patched)
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
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, EncryptionState, EncryptionVersion, Object, Permissions, Stream};

    use super::extract_pages;
    use crate::document::DocumentError;

    /// A one-page PDF showing `text`, RC4-encrypted with `user_password` and an empty file
    /// identifier, saved without the /ID entry (as some producers write them).
    fn encrypted_without_id(text: &str, user_password: &str) -> Vec<u8> {
        let mut doc = lopdf::Document::with_version("1.4");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let empty = || Object::String(Vec::new(), lopdf::StringFormat::Hexadecimal);
        doc.trailer.set("ID", vec![empty(), empty()]);
        let state = EncryptionState::try_from(EncryptionVersion::V2 {
            document: &doc,
            owner_password: "owner",
            user_password,
            key_length: 128,
            permissions: Permissions::all(),
        })
        .unwrap();
        doc.encrypt(&state).unwrap();
        doc.trailer.remove(b"ID");
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        assert!(super::super::find(&bytes, b"/ID").is_none());
        bytes
    }

    /// lopdf derives the key from the trailer's /ID and gives up without one; such a file
    /// with an empty user password opens as other readers open it (the corpus's
    /// miner-encrypted-no-id.pdf is one, with scanned pages).
    #[test]
    fn an_encrypted_pdf_without_a_file_identifier_opens() {
        let bytes = encrypted_without_id("INVOICE No. 7 Total due 10 EUR", "");
        let pages = extract_pages(&bytes, 10).unwrap();
        assert_eq!(pages, vec!["INVOICE No. 7 Total due 10 EUR\n".to_string()]);
    }

    #[test]
    fn an_encrypted_pdf_without_a_file_identifier_that_needs_a_password_says_so() {
        let bytes = encrypted_without_id("INVOICE No. 7", "secret");
        let error = extract_pages(&bytes, 10).unwrap_err();
        assert_eq!(error, DocumentError::EncryptedWithoutId);
        let message = error.to_string();
        assert!(
            message.contains("/ID") && message.contains("password"),
            "{message}"
        );
    }

    /// A crash class fuzzing found (fixture rebuilt by hand): pdf-extract panics on a page
    /// whose font object is missing, and lopdf gives up on it too; the page's text is still read.
    #[test]
    fn a_page_with_a_missing_font_object_keeps_its_text() {
        let bytes = include_bytes!("../../tests/fixtures/fuzz/pdf-extract-missing-object.pdf");
        let pages = extract_pages(bytes, 10).unwrap();
        assert_eq!(pages, vec!["INVOICE No. 7 Total due 10 EUR\n".to_string()]);
    }
}
