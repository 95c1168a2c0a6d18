//! Real PDFs made in the test, so a fresh clone needs no corpus.

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

/// A PDF with one page per entry; each page shows its lines in Helvetica.
pub fn pdf_with_pages(pages: &[&[&str]]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for lines in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("TL", vec![16.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
        ];
        for line in lines.iter() {
            operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
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
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

pub fn invoice_pdf() -> Vec<u8> {
    pdf_with_pages(&[&[
        "ACME Supplies Ltd.",
        "INVOICE No. 2024-0042",
        "Bill to: Example Corp",
        "Item  Qty  Unit price  Amount",
        "Paper A4  10  5.00  50.00",
        "Total due: 50.00 EUR",
        "Payment within 30 days. Please quote the invoice number.",
    ]])
}

pub fn contract_pdf() -> Vec<u8> {
    pdf_with_pages(&[&[
        "SERVICE AGREEMENT",
        "This agreement is made between the parties ACME Ltd and Beta GmbH.",
        "1. Terms. The contractor shall deliver the services.",
        "2. Obligations of the parties are set out below.",
        "Signatures: ____________ ____________",
    ]])
}

pub const INVOICE_TEXT: &str = "INVOICE No. 2024-001\nBill to: Example Corp\nLine items: consulting 10 h\nTotal due: 1000 EUR\nPayment within 30 days\n";
pub const CONTRACT_TEXT: &str = "SERVICE AGREEMENT between the parties ACME and Beta.\nTerms and obligations of each party.\nSignatures of both parties below.\n";
