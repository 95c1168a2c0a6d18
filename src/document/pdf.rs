//! PDF text. `pdf-extract` gives the better text (spacing, reading order, ToUnicode); where it
//! fails or panics on a page, lopdf's own extractor reads that page instead.

use std::collections::HashMap;
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
    // Counted before the passes below, which read every page: a document over the limit is
    // refused without that work.
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
    resolve_indirect_filters(&mut doc);
    name_fonts_given_as_strings(&mut doc);
    // Font programs and tables are untrusted input too: a parser panic there costs the fonts
    // their text, not the document.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        super::to_unicode::add_missing(&mut doc)
    }));
    let pages: Vec<lopdf::ObjectId> = doc.get_pages().into_values().collect();
    for &page_id in &pages {
        draw_annotation_appearances(&mut doc, page_id);
    }
    let _ = catch_unwind(AssertUnwindSafe(|| super::forms::place(&mut doc, &pages)));
    Ok(page_numbers
        .iter()
        .map(|&number| page_text(&doc, number))
        .collect())
}

/// Some producers (SAP's, for one) write a stream's /Filter or /DecodeParms as a reference to
/// an array. Both libraries read only a direct name or array there and treat such a stream
/// as undecodable, which leaves the page empty; the references are replaced by what they
/// point at.
fn resolve_indirect_filters(doc: &mut PdfDocument) {
    let mut resolved = Vec::new();
    for (&id, object) in &doc.objects {
        let lopdf::Object::Stream(stream) = object else {
            continue;
        };
        for key in [&b"Filter"[..], b"DecodeParms"] {
            if let Ok(lopdf::Object::Reference(target)) = stream.dict.get(key) {
                if let Some(value) = doc.objects.get(target) {
                    resolved.push((id, key, value.clone()));
                }
            }
        }
    }
    for (id, key, value) in resolved {
        if let Some(lopdf::Object::Stream(stream)) = doc.objects.get_mut(&id) {
            stream.dict.set(key, value);
        }
    }
}

/// Some producers (iText 5, for one) write a font's /BaseFont as a string, often UTF-16 with
/// stray NULs, where a name belongs. pdf-extract panics on it and the page fell back on
/// lopdf, whose text is not clipped to the page; the string becomes the name it meant.
fn name_fonts_given_as_strings(doc: &mut PdfDocument) {
    use lopdf::Object;
    for object in doc.objects.values_mut() {
        let Object::Dictionary(dict) = object else {
            continue;
        };
        if dict.get(b"Type").and_then(Object::as_name).ok() != Some(b"Font") {
            continue;
        }
        let Ok(Object::String(bytes, _)) = dict.get(b"BaseFont") else {
            continue;
        };
        let text = match bytes.strip_prefix(&[0xFE, 0xFF]) {
            Some(utf16) => String::from_utf16_lossy(
                &utf16
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect::<Vec<u16>>(),
            ),
            None => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        let name: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect();
        dict.set("BaseFont", Object::Name(name.into_bytes()));
    }
}

/// Annotations drawn per page at most; a page with more is hostile or a map.
const MAX_ANNOTATIONS: usize = 500;

/// Filled-in form fields and other annotations show their text through appearance streams
/// outside the page's content, which pdf-extract never reads; pdftotext shows them, and a
/// filled form's values are often what tells documents apart. Each visible annotation's
/// normal appearance is drawn at its place by appending `Do` operations to the page.
/// Appearances that draw other forms are left out: pdf-extract follows `Do` without a depth
/// limit, and a form drawing itself would recurse until the stack overflows.
fn draw_annotation_appearances(doc: &mut PdfDocument, page_id: lopdf::ObjectId) {
    use lopdf::Object;
    let resolve = |object: &Object| -> Option<Object> {
        doc.dereference(object)
            .ok()
            .map(|(_, resolved)| resolved.clone())
    };
    let number = |object: &Object| {
        object
            .as_float()
            .ok()
            .or_else(|| object.as_i64().ok().map(|n| n as f32))
    };
    let Ok(page) = doc.get_dictionary(page_id) else {
        return;
    };
    let Some(Object::Array(annotations)) = page.get(b"Annots").ok().and_then(resolve) else {
        return;
    };
    let mut forms = Vec::new();
    for annotation in annotations.iter().take(MAX_ANNOTATIONS) {
        let Some(Object::Dictionary(annotation)) = resolve(annotation) else {
            continue;
        };
        let flags = annotation.get(b"F").and_then(Object::as_i64).unwrap_or(0);
        if flags & (2 | 32) != 0 {
            continue; // Hidden or NoView.
        }
        let Some(Object::Dictionary(appearance)) = annotation.get(b"AP").ok().and_then(resolve)
        else {
            continue;
        };
        let Ok(form_id) = appearance.get(b"N").and_then(Object::as_reference) else {
            continue; // Absent, or one appearance per state (check boxes): no text.
        };
        let Ok(form) = doc.get_object(form_id).and_then(Object::as_stream) else {
            continue;
        };
        let content = form
            .decompressed_content()
            .unwrap_or_else(|_| form.content.clone());
        let draws_forms = lopdf::content::Content::decode(&content).map_or(true, |parsed| {
            parsed.operations.iter().any(|op| op.operator == "Do")
        });
        if draws_forms {
            continue;
        }
        let corner = |key: &[u8]| -> Option<(f32, f32)> {
            let Some(Object::Array(values)) = annotation.get(key).ok().and_then(resolve) else {
                return None;
            };
            let v: Vec<f32> = values.iter().filter_map(number).collect();
            (v.len() == 4).then(|| (v[0].min(v[2]), v[1].min(v[3])))
        };
        let Some((x, y)) = corner(b"Rect") else {
            continue;
        };
        let (bx, by) = match form.dict.get(b"BBox").ok().and_then(resolve) {
            Some(Object::Array(values)) => {
                let v: Vec<f32> = values.iter().filter_map(number).collect();
                if v.len() == 4 {
                    (v[0].min(v[2]), v[1].min(v[3]))
                } else {
                    (0.0, 0.0)
                }
            }
            _ => (0.0, 0.0),
        };
        forms.push((form_id, x - bx, y - by));
    }
    if forms.is_empty() {
        return;
    }
    // The page's own resources, inherited ones copied in, with the forms added by name.
    let mut node = Some(page_id);
    let mut resources = lopdf::Dictionary::new();
    for _ in 0..64 {
        let Some(dict) = node.and_then(|id| doc.get_dictionary(id).ok()) else {
            break;
        };
        if let Some(Object::Dictionary(found)) = dict.get(b"Resources").ok().and_then(resolve) {
            resources = found;
            break;
        }
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    let mut xobjects = match resources.get(b"XObject").ok().and_then(resolve) {
        Some(Object::Dictionary(xobjects)) => xobjects,
        _ => lopdf::Dictionary::new(),
    };
    let mut operations = String::new();
    for (index, (form_id, dx, dy)) in forms.into_iter().enumerate() {
        let name = format!("ClassifydAnnotation{index}");
        xobjects.set(name.as_bytes(), Object::Reference(form_id));
        operations.push_str(&format!("q 1 0 0 1 {dx} {dy} cm /{name} Do Q\n"));
    }
    resources.set("XObject", Object::Dictionary(xobjects));
    if let Ok(page) = doc.get_object_mut(page_id).and_then(Object::as_dict_mut) {
        page.set("Resources", Object::Dictionary(resources));
    }
    let _ = doc.add_page_contents(page_id, operations.into_bytes());
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
        let mut output = TextLayout {
            visible: visible_area(doc, number),
            ..TextLayout::default()
        };
        pdf_extract::output_doc_page(doc, &mut output, number).map(|()| output.text)
    }));
    let primary = match primary {
        Ok(Ok(text)) => normalise(&text),
        _ => String::new(),
    };
    if readable(&primary) >= 0.5 {
        return primary;
    }
    // Empty, or mostly characters pdf-extract could not map to Unicode: lopdf may do better.
    let fallback = catch_unwind(AssertUnwindSafe(|| doc.extract_text(&[number])))
        .ok()
        .and_then(Result::ok)
        .map(|text| normalise(&text))
        .unwrap_or_default();
    let best = if letters(&fallback) > letters(&primary) {
        fallback
    } else {
        primary
    };
    if !best.trim().is_empty() {
        return best;
    }
    catch_unwind(AssertUnwindSafe(|| shown_strings(doc, number)))
        .map(|text| normalise(&text))
        .unwrap_or_default()
}

/// The part of the page a reader shows, in default user space (x0, y0, x1, y1): the crop box
/// (by default the media box) clipped to the media box, each inherited through the page tree
/// as readers do. `None` when the page gives neither.
fn visible_area(doc: &PdfDocument, number: u32) -> Option<(f64, f64, f64, f64)> {
    use lopdf::Object;
    let page_id = *doc.get_pages().get(&number)?;
    let inherited = |key: &[u8]| -> Option<(f64, f64, f64, f64)> {
        let mut node = Some(page_id);
        for _ in 0..64 {
            let dict = doc.get_dictionary(node?).ok()?;
            if let Ok(value) = dict.get(key) {
                let Ok((_, Object::Array(values))) = doc.dereference(value) else {
                    return None;
                };
                let v: Vec<f64> = values
                    .iter()
                    .filter_map(|value| {
                        let (_, value) = doc.dereference(value).ok()?;
                        value
                            .as_float()
                            .map(f64::from)
                            .ok()
                            .or_else(|| value.as_i64().ok().map(|n| n as f64))
                    })
                    .collect();
                return (v.len() == 4).then(|| {
                    (
                        v[0].min(v[2]),
                        v[1].min(v[3]),
                        v[0].max(v[2]),
                        v[1].max(v[3]),
                    )
                });
            }
            node = dict.get(b"Parent").and_then(Object::as_reference).ok();
        }
        None
    };
    let media = inherited(b"MediaBox");
    match (inherited(b"CropBox"), media) {
        (Some(crop), Some(media)) => Some((
            crop.0.max(media.0),
            crop.1.max(media.1),
            crop.2.min(media.2),
            crop.3.min(media.3),
        )),
        (crop, media) => crop.or(media),
    }
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

/// Share of a text's visible characters that are real characters rather than U+FFFD (what
/// pdf-extract writes for glyphs it cannot map to Unicode); 0 for an empty text.
fn readable(text: &str) -> f64 {
    let visible = text.chars().filter(|c| !c.is_whitespace()).count();
    if visible == 0 {
        return 0.0;
    }
    let unknown = text
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER)
        .count();
    1.0 - unknown as f64 / visible as f64
}

fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphanumeric()).count()
}

/// pdf-extract's glyph stream laid out as lines of words. Like its `PlainTextOutput`, but in
/// the text's own direction, so rotated pages (landscape tables, where the plain output's
/// font size is the square root of a negative number and every gap test fails) keep their
/// spaces and line breaks, and a string drawn left of where the previous one ended starts a
/// new word instead of gluing onto it.
#[derive(Default)]
struct TextLayout {
    text: String,
    /// Where the previous glyph ended, in page space (y down); `None` before the first.
    last_end: Option<(f64, f64)>,
    /// Whether the next glyph starts a shown string (gaps are judged only there, since
    /// letter spacing inside a string is not a word break).
    string_start: bool,
    /// The page's visible area (see [`visible_area`]); glyphs drawn outside it are not read,
    /// as no reader shows them (pdftotext drops them too). Pages cut out of one larger sheet
    /// (pdfjs-09 in the corpus) carry the whole sheet's text.
    visible: Option<(f64, f64, f64, f64)>,
    /// The run of glyphs since the last separator the layout wrote.
    run: Option<Run>,
    /// Each run kept so far on the page: its text, and where it started and at what size.
    drawn: HashMap<String, Vec<(f64, f64, f64)>>,
}

/// A run of glyphs laid out together: its text (and the separator before it) starts at byte
/// `mark` of the page's text; `origin` and `size` are its first glyph's, `direction` its
/// baseline's.
struct Run {
    mark: usize,
    origin: (f64, f64),
    size: f64,
    direction: (f64, f64),
}

impl TextLayout {
    /// Ends the current run, dropping it when the same text was already drawn at the same
    /// place (within a tenth of the font size along the baseline and a fifth across it): fake
    /// bold and shadowed text draw each word twice, slightly offset (plumber-02 in the
    /// corpus), and some producers draw a whole block twice (pdfjs-09's footer). pdftotext
    /// removes such duplicates by the same rule, a word at a time. Runs are compared, not
    /// glyphs: a single glyph drawn again near itself is as often a real letter where
    /// pdf-extract's positions are off.
    fn finish_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let text = self.text[run.mark..].trim_start().to_string();
        if text.is_empty() {
            return;
        }
        let (dx, dy) = run.direction;
        let (x, y) = run.origin;
        let origins = self.drawn.entry(text).or_default();
        let duplicate = origins.iter().any(|&(ox, oy, size)| {
            let along = ((x - ox) * dx + (y - oy) * dy).abs();
            let across = ((y - oy) * dx - (x - ox) * dy).abs();
            (size - run.size).abs() < 0.1 * size && along < 0.1 * size && across < 0.2 * size
        });
        if duplicate {
            self.text.truncate(run.mark);
        } else {
            origins.push((x, y, run.size));
        }
    }

    fn start_run(&mut self, origin: (f64, f64), size: f64, direction: (f64, f64)) {
        self.finish_run();
        self.run = Some(Run {
            mark: self.text.len(),
            origin,
            size,
            direction,
        });
    }
}

impl pdf_extract::OutputDev for TextLayout {
    fn begin_page(
        &mut self,
        _page: u32,
        _media_box: &pdf_extract::MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), pdf_extract::OutputError> {
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.finish_run();
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &pdf_extract::Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), pdf_extract::OutputError> {
        // Page space with y pointing down, as the plain output uses.
        let (x, y) = (trm.m31, -trm.m32);
        let (bx, by) = (trm.m11, -trm.m12);
        let length = bx.hypot(by);
        let (dx, dy) = if length > 0.0 {
            (bx / length, by / length)
        } else {
            (1.0, 0.0)
        };
        let size = ((trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt() * font_size).max(1e-6);
        if let Some((x0, y0, x1, y1)) = self.visible {
            // The glyph's origin, with a glyph's size of slack for glyphs that straddle an edge.
            let (ux, uy) = (trm.m31, trm.m32);
            if ux < x0 - size || ux > x1 + size || uy < y0 - size || uy > y1 + size {
                return Ok(());
            }
        }
        if let (true, Some((ex, ey))) = (self.string_start, self.last_end) {
            // Along the baseline and across it, relative to where the previous glyph ended.
            let along = (x - ex) * dx + (y - ey) * dy;
            let across = ((y - ey) * dx - (x - ex) * dy).abs();
            if across > size * 1.5 || (along < 0.0 && across > size * 0.5) {
                self.start_run((x, y), size, (dx, dy));
                self.text.push('\n');
            } else if along > size * 0.1 || along < -size {
                self.start_run((x, y), size, (dx, dy));
                self.text.push(' ');
            }
        }
        if self.run.is_none() {
            self.start_run((x, y), size, (dx, dy));
        }
        self.text.push_str(char);
        self.string_start = false;
        let advance = width * size;
        self.last_end = Some((x + dx * advance, y + dy * advance));
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.string_start = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), pdf_extract::OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), pdf_extract::OutputError> {
        Ok(())
    }
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

    /// A one-page PDF (Helvetica as /F1) whose content stream, stored with `stream_dict`, is
    /// `operations`.
    fn one_page(operations: Vec<Operation>, stream_dict: lopdf::Dictionary) -> lopdf::Document {
        let mut doc = lopdf::Document::with_version("1.4");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let content = Content { operations }.encode().unwrap();
        let content_id = doc.add_object(Stream::new(stream_dict, content));
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
        doc
    }

    /// Strings shown with text matrices `[a b c d e f]`, in order.
    fn shown(strings: &[([f32; 6], &str)]) -> Vec<Operation> {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
        ];
        for (matrix, text) in strings {
            operations.push(Operation::new(
                "Tm",
                matrix.iter().map(|&v| Object::Real(v)).collect(),
            ));
            operations.push(Operation::new("Tj", vec![Object::string_literal(*text)]));
        }
        operations.push(Operation::new("ET", vec![]));
        operations
    }

    fn save(mut doc: lopdf::Document) -> Vec<u8> {
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    /// A one-page PDF showing `text`, RC4-encrypted with `user_password` and an empty file
    /// identifier, saved without the /ID entry (as some producers write them).
    fn encrypted_without_id(text: &str, user_password: &str) -> Vec<u8> {
        let mut doc = one_page(
            shown(&[([1., 0., 0., 1., 72., 720.], text)]),
            dictionary! {},
        );
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
        let bytes = save(doc);
        assert!(super::super::find(&bytes, b"/ID").is_none());
        bytes
    }

    /// A landscape table drawn rotated by 90°: pdf-extract's plain output ran every cell of
    /// such a page together (plumber-07 in the corpus); words and rows stay apart.
    #[test]
    fn rotated_text_keeps_its_words_and_lines() {
        let rotated = |x: f32, y: f32| [0., 1., -1., 0., x, y];
        let operations = shown(&[
            (rotated(300., 100.), "DOCUMENT"),
            (rotated(300., 250.), "AMOUNT"),
            (rotated(280., 100.), "BAIN"),
            (rotated(280., 250.), "37,499.96"),
        ]);
        let pages = extract_pages(&save(one_page(operations, dictionary! {})), 10).unwrap();
        assert_eq!(pages, vec!["DOCUMENT AMOUNT\nBAIN 37,499.96\n".to_string()]);
    }

    /// A string drawn left of where the previous one ended, on the same line, is a word of
    /// its own (table cells written right to left), not glued onto the previous one.
    #[test]
    fn a_string_drawn_back_on_the_line_is_a_new_word() {
        let at = |x: f32| [1., 0., 0., 1., x, 700.];
        let operations = shown(&[(at(300.), "Total"), (at(72.), "Invoice")]);
        let pages = extract_pages(&save(one_page(operations, dictionary! {})), 10).unwrap();
        assert_eq!(pages, vec!["Total Invoice\n".to_string()]);
    }

    /// Fake bold draws a string twice, half a point apart (plumber-02 in the corpus): it is
    /// read once. The same text drawn elsewhere, a line below or further along the line,
    /// is read again.
    #[test]
    fn text_drawn_again_on_top_of_itself_is_read_once() {
        let at = |x: f32, y: f32| [1., 0., 0., 1., x, y];
        let operations = shown(&[
            (at(72., 700.), "Bold heading"),
            (at(72.5, 700.), "Bold heading"),
            (at(72., 680.), "Bold heading"),
            (at(300., 680.), "Bold heading"),
        ]);
        let pages = extract_pages(&save(one_page(operations, dictionary! {})), 10).unwrap();
        assert_eq!(
            pages,
            vec!["Bold heading\nBold heading Bold heading\n".to_string()]
        );
    }

    /// A document with more pages than the limit is refused, saying both numbers.
    #[test]
    fn a_document_over_the_page_limit_is_refused() {
        let mut doc = one_page(
            shown(&[([1., 0., 0., 1., 72., 700.], "Page")]),
            dictionary! {},
        );
        let page_id = *doc.get_pages().values().next().unwrap();
        let page = doc.get_object(page_id).unwrap().clone();
        let pages_id = doc
            .catalog()
            .unwrap()
            .get(b"Pages")
            .unwrap()
            .as_reference()
            .unwrap();
        let kids: Vec<Object> = std::iter::once(page_id)
            .chain((0..2).map(|_| doc.add_object(page.clone())))
            .map(Object::Reference)
            .collect();
        let pages = doc.get_object_mut(pages_id).unwrap().as_dict_mut().unwrap();
        pages.set("Kids", kids);
        pages.set("Count", 3);
        let bytes = save(doc);
        assert_eq!(
            extract_pages(&bytes, 2).unwrap_err(),
            DocumentError::TooManyPages { pages: 3, limit: 2 }
        );
        assert_eq!(extract_pages(&bytes, 3).unwrap().len(), 3);
    }

    /// `doc`'s first page given /CropBox `[x0 y0 x1 y1]`.
    fn crop(doc: &mut lopdf::Document, crop_box: [i64; 4]) {
        let page_id = *doc.get_pages().values().next().unwrap();
        let page = doc.get_object_mut(page_id).unwrap().as_dict_mut().unwrap();
        page.set(
            "CropBox",
            crop_box
                .iter()
                .map(|&v| Object::Integer(v))
                .collect::<Vec<_>>(),
        );
    }

    /// Text drawn outside the page's crop box is not shown by any reader, nor read here
    /// (pdfjs-09 in the corpus: three pages cut out of one sheet, each carrying all of it).
    #[test]
    fn text_outside_the_crop_box_is_not_read() {
        let at = |x: f32, y: f32| [1., 0., 0., 1., x, y];
        let operations = shown(&[
            (at(72., 720.), "Shown"),
            (at(400., 720.), "RightOfTheCrop"),
            (at(72., 300.), "BelowTheCrop"),
            (at(72., 700.), "Also shown"),
        ]);
        let mut doc = one_page(operations, dictionary! {});
        crop(&mut doc, [0, 400, 306, 792]);
        let pages = extract_pages(&save(doc), 10).unwrap();
        assert_eq!(pages, vec!["Shown\nAlso shown\n".to_string()]);
    }

    /// pdf-extract draws a form XObject at the form's own coordinates; each use of a form is
    /// placed where it is drawn, so one drawn inside the crop box is read and one drawn
    /// outside it is not.
    #[test]
    fn a_form_is_read_where_it_is_drawn() {
        let mut operations = shown(&[([1., 0., 0., 1., 72., 700.], "Page text")]);
        for y in [500, 100] {
            operations.extend([
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into(), y.into()],
                ),
                Operation::new("Do", vec![Object::Name(b"Fm1".to_vec())]),
                Operation::new("Q", vec![]),
            ]);
        }
        let mut doc = one_page(operations, dictionary! {});
        crop(&mut doc, [0, 400, 612, 792]);
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let form_id = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 612.into(), 40.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            },
            b"BT /F1 12 Tf 72 20 Td (Form text) Tj ET".to_vec(),
        ));
        let page_id = *doc.get_pages().values().next().unwrap();
        let page = doc.get_object_mut(page_id).unwrap().as_dict_mut().unwrap();
        let resources = page.get_mut(b"Resources").unwrap().as_dict_mut().unwrap();
        resources.set("XObject", dictionary! { "Fm1" => form_id });
        let pages = extract_pages(&save(doc), 10).unwrap();
        assert_eq!(pages, vec!["Page text\nForm text\n".to_string()]);
    }

    /// A font whose /BaseFont is a string (UTF-16 with NULs, as iText 5 wrote pdfjs-09's) made
    /// pdf-extract panic, and lopdf's fallback read the whole sheet past the crop box; the
    /// string is taken as the name it stands for.
    #[test]
    fn a_font_named_by_a_string_is_read() {
        let at = |x: f32, y: f32| [1., 0., 0., 1., x, y];
        let operations = shown(&[(at(72., 720.), "Shown"), (at(400., 720.), "Cropped")]);
        let mut doc = one_page(operations, dictionary! {});
        crop(&mut doc, [0, 400, 306, 792]);
        let name: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Helvetica\0".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        let font_id = doc
            .objects
            .iter()
            .find(|(_, object)| object.as_dict().is_ok_and(|d| d.has(b"BaseFont")))
            .map(|(&id, _)| id)
            .unwrap();
        let font = doc.get_object_mut(font_id).unwrap().as_dict_mut().unwrap();
        font.set(
            "BaseFont",
            Object::String(name, lopdf::StringFormat::Hexadecimal),
        );
        let pages = extract_pages(&save(doc), 10).unwrap();
        assert_eq!(pages, vec!["Shown\n".to_string()]);
    }

    /// A content stream whose /Filter is a reference to `[/FlateDecode]` (as SAP writes them;
    /// miner-01 in the corpus) is decoded, not taken for an empty page.
    #[test]
    fn an_indirect_stream_filter_is_followed() {
        let operations = shown(&[([1., 0., 0., 1., 72., 720.], "Factuur 2024-001")]);
        let mut doc = one_page(operations, dictionary! {});
        let filter_id = doc.add_object(vec![Object::Name(b"FlateDecode".to_vec())]);
        let content_id = doc
            .page_iter()
            .next()
            .map(|page| doc.get_page_contents(page)[0])
            .unwrap();
        let stream = doc
            .get_object_mut(content_id)
            .unwrap()
            .as_stream_mut()
            .unwrap();
        let mut packed =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut packed, &stream.content).unwrap();
        stream.set_content(packed.finish().unwrap());
        stream.dict.set("Filter", filter_id);
        let pages = extract_pages(&save(doc), 10).unwrap();
        assert_eq!(pages, vec!["Factuur 2024-001\n".to_string()]);
    }

    /// Filled-in form fields (pdfjs-08 in the corpus: the whole certificate is field values)
    /// are read from their appearance streams; hidden ones are not, and an appearance that
    /// draws itself is skipped instead of recursing.
    #[test]
    fn form_field_values_are_read_from_their_appearances() {
        let mut doc = one_page(
            shown(&[([1., 0., 0., 1., 72., 720.], "Certificate of insurance")]),
            dictionary! {},
        );
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let mut appearance = |text: &str, flags: i64, extra: &str| {
            let content = format!("{extra} BT /F1 10 Tf 2 4 Td ({text}) Tj ET");
            let form_id = doc.add_object(Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Form",
                    "BBox" => vec![0.into(), 0.into(), 200.into(), 20.into()],
                    "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
                },
                content.into_bytes(),
            ));
            doc.add_object(dictionary! {
                "Type" => "Annot", "Subtype" => "Widget", "F" => flags,
                "Rect" => vec![72.into(), 600.into(), 272.into(), 620.into()],
                "AP" => dictionary! { "N" => form_id },
            })
        };
        let visible = appearance("Jane Doe, policy 4711", 4, "");
        let hidden = appearance("HIDDEN VALUE", 2, "");
        let looping = appearance("LOOPING VALUE", 4, "/Self Do");
        let Ok(Object::Dictionary(looping_dict)) = doc.get_object(looping).cloned() else {
            unreachable!()
        };
        let form_id = looping_dict
            .get(b"AP")
            .unwrap()
            .as_dict()
            .unwrap()
            .get(b"N")
            .unwrap();
        let form_id = form_id.as_reference().unwrap();
        let form = doc
            .get_object_mut(form_id)
            .unwrap()
            .as_stream_mut()
            .unwrap();
        let resources = form
            .dict
            .get_mut(b"Resources")
            .unwrap()
            .as_dict_mut()
            .unwrap();
        resources.set("XObject", dictionary! { "Self" => form_id });
        let page_id = *doc.get_pages().values().next().unwrap();
        let page = doc.get_object_mut(page_id).unwrap().as_dict_mut().unwrap();
        page.set(
            "Annots",
            vec![visible.into(), hidden.into(), looping.into()],
        );
        let pages = extract_pages(&save(doc), 10).unwrap();
        assert_eq!(
            pages,
            vec!["Certificate of insurance\nJane Doe, policy 4711\n".to_string()]
        );
    }

    #[test]
    fn unmapped_glyphs_make_a_page_unreadable() {
        assert_eq!(super::readable(""), 0.0);
        assert_eq!(super::readable("Invoice 7"), 1.0);
        assert!(super::readable("\u{FFFD}\u{FFFD}\u{FFFD} a\n") < 0.5);
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
