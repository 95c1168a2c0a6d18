//! Form XObjects placed where pages draw them. pdf-extract draws a form (a page wrapped in a
//! form, a filled-in field's appearance, a stamp) with a fresh graphics state, ignoring the
//! transformation in force at its `Do` and the form's own /Matrix, so the form's text was laid
//! out at the form's own coordinates: next to unrelated text, and, now that glyphs outside the
//! crop box are dropped, possibly dropped. Each form a page draws is replaced by a copy whose
//! content starts by setting the transformation it is drawn with.

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

/// Form copies made per document at most, and their content bytes: a document drawing more
/// is hostile or huge, and the forms past this keep pdf-extract's own placement.
const MAX_COPIES: usize = 256;
const MAX_COPIED_BYTES: usize = 32 << 20;

/// The copies made so far in a document, and their content bytes.
#[derive(Default)]
struct Made {
    copies: usize,
    bytes: usize,
}

/// Forms drawn inside forms followed this deep at most.
const MAX_DEPTH: usize = 8;

/// A transformation `[a b c d e f]` as PDF writes it (row vectors: x' = a·x + c·y + e).
type Matrix = [f64; 6];

const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `first` then `then`: the matrix `first × then`.
fn multiply(first: &Matrix, then: &Matrix) -> Matrix {
    let [a1, b1, c1, d1, e1, f1] = *first;
    let [a2, b2, c2, d2, e2, f2] = *then;
    [
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    ]
}

fn number(object: &Object) -> Option<f64> {
    match object {
        Object::Integer(n) => Some(*n as f64),
        Object::Real(x) => Some(f64::from(*x)),
        _ => None,
    }
}

fn matrix(operands: &[Object]) -> Option<Matrix> {
    let values: Vec<f64> = operands.iter().filter_map(number).collect();
    <[f64; 6]>::try_from(values).ok()
}

fn resolve<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Object> {
    doc.dereference(object).ok().map(|(_, resolved)| resolved)
}

/// Places the forms drawn by each of `pages` (their content and the forms those draw).
pub(super) fn place(doc: &mut Document, pages: &[ObjectId]) {
    let mut made = Made::default();
    for &page_id in pages {
        if made.copies >= MAX_COPIES {
            break;
        }
        let Some(resources) = page_resources(doc, page_id) else {
            continue;
        };
        if !draws_forms(doc, &resources) {
            continue; // Most pages: nothing to place, and their content is not parsed twice.
        }
        let Ok(content) = doc
            .get_page_content(page_id)
            .and_then(|bytes| Content::decode(&bytes))
        else {
            continue;
        };
        let Some((operations, resources)) =
            placed(doc, content.operations, &IDENTITY, resources, 0, &mut made)
        else {
            continue;
        };
        let Ok(encoded) = (Content { operations }).encode() else {
            continue;
        };
        let content_id = doc.add_object(Stream::new(Dictionary::new(), encoded));
        if let Ok(page) = doc.get_object_mut(page_id).and_then(Object::as_dict_mut) {
            page.set("Contents", content_id);
            page.set("Resources", resources);
        }
    }
}

/// Whether `resources` name a form XObject.
fn draws_forms(doc: &Document, resources: &Dictionary) -> bool {
    let Some(Object::Dictionary(xobjects)) =
        resources.get(b"XObject").ok().and_then(|o| resolve(doc, o))
    else {
        return false;
    };
    xobjects.iter().any(|(_, xobject)| {
        matches!(resolve(doc, xobject), Some(Object::Stream(stream))
            if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form"))
    })
}

/// The page's resources (inherited ones included), copied out of the document.
fn page_resources(doc: &Document, page_id: ObjectId) -> Option<Dictionary> {
    let mut node = Some(page_id);
    for _ in 0..64 {
        let dict = doc.get_dictionary(node?).ok()?;
        if let Ok(value) = dict.get(b"Resources") {
            return resolve(doc, value)?.as_dict().ok().cloned();
        }
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    None
}

/// `operations`, drawn with `ctm` as the transformation in force and `resources` as their
/// resources, with every `Do` of a form replaced by a placed copy of it; the resources that
/// name the copies. `None` when no form is drawn (nothing to change).
fn placed(
    doc: &mut Document,
    mut operations: Vec<Operation>,
    ctm: &Matrix,
    mut resources: Dictionary,
    depth: usize,
    made: &mut Made,
) -> Option<(Vec<Operation>, Dictionary)> {
    let mut xobjects = match resources.get(b"XObject").ok().and_then(|o| resolve(doc, o)) {
        Some(Object::Dictionary(xobjects)) => xobjects.clone(),
        _ => return None,
    };
    let mut changed = false;
    let mut stack = Vec::new();
    let mut current = *ctm;
    for operation in &mut operations {
        match operation.operator.as_str() {
            "q" => stack.push(current),
            "Q" => current = stack.pop().unwrap_or(*ctm),
            "cm" => {
                if let Some(m) = matrix(&operation.operands) {
                    current = multiply(&m, &current);
                }
            }
            "Do" if made.copies < MAX_COPIES => {
                let Some(name) = operation
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .map(<[u8]>::to_vec)
                else {
                    continue;
                };
                let Some(copy) =
                    placed_copy(doc, &xobjects, &name, &current, &resources, depth, made)
                else {
                    continue;
                };
                let copy_name = format!("ClassifydPlaced{}", made.copies);
                xobjects.set(copy_name.as_bytes(), copy);
                operation.operands = vec![Object::Name(copy_name.into_bytes())];
                changed = true;
            }
            _ => {}
        }
    }
    if !changed {
        return None;
    }
    resources.set("XObject", Object::Dictionary(xobjects));
    Some((operations, resources))
}

/// A copy of the form `name` (in `xobjects`) drawn with `ctm` in force: its content set
/// inside `q … Q` after the transformation it is drawn with, and the forms it draws placed in
/// turn. `None` for an image, an unreadable form, or past the depth.
fn placed_copy(
    doc: &mut Document,
    xobjects: &Dictionary,
    name: &[u8],
    ctm: &Matrix,
    caller_resources: &Dictionary,
    depth: usize,
    made: &mut Made,
) -> Option<ObjectId> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let Object::Stream(form) = resolve(doc, xobjects.get(name).ok()?)? else {
        return None;
    };
    if form.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
        return None;
    }
    let form_matrix = form
        .dict
        .get(b"Matrix")
        .ok()
        .and_then(|o| resolve(doc, o))
        .and_then(|o| o.as_array().ok())
        .and_then(|values| matrix(values))
        .unwrap_or(IDENTITY);
    let content = match form.decompressed_content() {
        Ok(content) => content,
        Err(_) if form.dict.get(b"Filter").is_err() => form.content.clone(),
        Err(_) => return None,
    };
    if made.bytes + content.len() > MAX_COPIED_BYTES {
        return None;
    }
    made.bytes += content.len();
    let operations = Content::decode(&content).ok()?.operations;
    // A form without resources of its own uses those of whoever draws it.
    let form_resources = match form
        .dict
        .get(b"Resources")
        .ok()
        .and_then(|o| resolve(doc, o))
    {
        Some(Object::Dictionary(resources)) => resources.clone(),
        _ => caller_resources.clone(),
    };
    let mut dict = form.dict.clone();
    let drawn_with = multiply(&form_matrix, ctm);
    made.copies += 1;
    let (operations, form_resources) = match placed(
        doc,
        operations.clone(),
        &drawn_with,
        form_resources.clone(),
        depth + 1,
        made,
    ) {
        Some(rewritten) => rewritten,
        None => (operations, form_resources),
    };
    let mut placed_operations = vec![
        Operation::new("q", vec![]),
        Operation::new(
            "cm",
            drawn_with.iter().map(|&v| Object::Real(v as f32)).collect(),
        ),
    ];
    placed_operations.extend(operations);
    placed_operations.push(Operation::new("Q", vec![]));
    let encoded = Content {
        operations: placed_operations,
    }
    .encode()
    .ok()?;
    for key in [&b"Matrix"[..], b"Filter", b"DecodeParms", b"Length"] {
        dict.remove(key);
    }
    dict.set("Resources", form_resources);
    Some(doc.add_object(Stream::new(dict, encoded)))
}
