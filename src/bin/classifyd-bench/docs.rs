//! Documents and rules the load benchmarks use, generated so a fresh clone needs no corpus.

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};
use serde_json::{json, Value};

/// Four small PDFs of distinct kinds (1–2 pages each), as `(name, bytes)`.
pub fn small_pdfs() -> Vec<(String, Vec<u8>)> {
    let invoice: &[&str] = &[
        "ACME Supplies Ltd.",
        "INVOICE No. 2024-0042",
        "Bill to: Example Corp",
        "Item Qty Unit price Amount",
        "Paper A4 10 5.00 50.00",
        "Total due: 50.00 EUR",
        "Payment within 30 days. Please quote the invoice number.",
    ];
    let contract_1: &[&str] = &[
        "SERVICE AGREEMENT",
        "This agreement is made between the parties ACME Ltd and Beta GmbH.",
        "1. Terms. The contractor shall deliver the services.",
        "2. Obligations of the parties are set out below.",
    ];
    let contract_2: &[&str] = &["3. Termination on 30 days notice.", "Signatures: ________"];
    let receipt: &[&str] = &[
        "Corner Cafe - RECEIPT",
        "2 x Coffee 6.00",
        "1 x Croissant 2.50",
        "Paid by card. Thank you for your purchase!",
    ];
    let letter: &[&str] = &[
        "Dear Ms Smith,",
        "Thank you for your letter of 3 May regarding the delivery.",
        "We will reply in full within two weeks.",
        "Yours sincerely, J. Doe",
    ];
    vec![
        ("invoice.pdf".into(), pdf(&[invoice], 0)),
        ("contract.pdf".into(), pdf(&[contract_1, contract_2], 0)),
        ("receipt.pdf".into(), pdf(&[receipt], 0)),
        ("letter.pdf".into(), pdf(&[letter], 0)),
    ]
}

/// A PDF of about `megabytes` MB: a few text pages plus an uncompressible image on page 1,
/// the usual shape of a large real document. `seed` makes each copy distinct.
pub fn large_pdf(megabytes: usize, seed: u64) -> Vec<u8> {
    let lines: Vec<String> = (0..40)
        .map(|i| format!("Line {i}: invoice total due payment terms item quantity amount"))
        .collect();
    let page: Vec<&str> = lines.iter().map(String::as_str).collect();
    let pages: Vec<&[&str]> = (0..20).map(|_| page.as_slice()).collect();
    let mut bytes = pdf(&pages, megabytes * 1024 * 1024);
    // Distinct content per copy so that no layer can deduplicate the uploads.
    bytes.extend_from_slice(format!("\n% copy {seed}\n").as_bytes());
    bytes
}

fn pdf(pages: &[&[&str]], image_bytes: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let mut xobjects = lopdf::Dictionary::new();
    if image_bytes > 0 {
        let width = 1024i64;
        let height = (image_bytes / 1024).max(1) as i64;
        let image = Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => width, "Height" => height,
                "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
            },
            noise(width as usize * height as usize),
        );
        xobjects.set("Im1", doc.add_object(image));
    }
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
        "XObject" => xobjects,
    });
    let mut kids = Vec::new();
    for (index, lines) in pages.iter().enumerate() {
        let mut operations = Vec::new();
        if index == 0 && image_bytes > 0 {
            operations.extend([
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![
                        200.into(),
                        0.into(),
                        0.into(),
                        200.into(),
                        300.into(),
                        50.into(),
                    ],
                ),
                Operation::new("Do", vec!["Im1".into()]),
                Operation::new("Q", vec![]),
            ]);
        }
        operations.extend([
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("TL", vec![16.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
        ]);
        for line in lines.iter() {
            operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode().expect("content encodes");
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("PDF serialises");
    bytes
}

/// Deterministic pseudo-random bytes (xorshift), cheap to make and impossible to compress.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The rules every benchmark job classifies against.
pub fn rules() -> Value {
    json!([
        {"type": "invoice", "description": "a bill requesting payment, with invoice number, line items and a total due"},
        {"type": "contract", "description": "a legal agreement between parties with terms, obligations and signatures"},
        {"type": "receipt", "description": "proof of a payment already made at a shop or cafe"},
        {"type": "letter", "description": "correspondence addressed to a person, with a greeting and a sign-off"},
    ])
}
