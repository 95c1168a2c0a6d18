//! Document formats and partly scanned documents through the whole server.

use crate::common::pdf::pdf_with_pages;
use crate::store_test;

store_test!(pages_without_text_are_named_in_the_reasoning, &[], |app| {
    let pdf = pdf_with_pages(&[
        &[
            "INVOICE No. 7",
            "Total due: 10 EUR",
            "Payment by bank transfer",
        ],
        &[],
    ]);
    let file_id = app.upload("half-scanned.pdf", pdf).await;
    let job = app.wait_job(&app.classify(&file_id).await).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["result"]["type"], "invoice", "{job}");
    let reasoning = job["result"]["reasoning"].as_str().unwrap();
    assert!(
        reasoning.contains("Page 2 has no text layer") && reasoning.contains("MULTIMODAL"),
        "{reasoning}"
    );
});

/// A ZIP with the given (name, content) entries.
fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut writer, content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>"))
        .collect();
    let xml = format!("<?xml version=\"1.0\"?><w:document><w:body>{body}</w:body></w:document>");
    zip_of(&[
        ("[Content_Types].xml", "<Types/>"),
        ("word/document.xml", &xml),
    ])
}

fn pptx(slides: &[&[&str]]) -> Vec<u8> {
    let mut entries = vec![
        ("[Content_Types].xml".to_string(), "<Types/>".to_string()),
        ("ppt/presentation.xml".into(), "<p:presentation/>".into()),
    ];
    for (index, lines) in slides.iter().enumerate() {
        let paragraphs: String = lines
            .iter()
            .map(|l| format!("<a:p><a:r><a:t>{l}</a:t></a:r></a:p>"))
            .collect();
        entries.push((
            format!("ppt/slides/slide{}.xml", index + 1),
            format!("<p:sld><p:txBody>{paragraphs}</p:txBody></p:sld>"),
        ));
    }
    let borrowed: Vec<(&str, &str)> = entries
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    zip_of(&borrowed)
}

store_test!(office_documents_are_read_by_content, &[], |app| {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "letter.docx",
            docx(&[
                "INVOICE No. 2024-001",
                "Bill to: Example Corp",
                "Total due: 1000 EUR &amp; payment within 30 days",
            ]),
            "invoice",
        ),
        // The name says PDF; the content is a Word file.
        (
            "scan.pdf",
            docx(&[
                "SERVICE AGREEMENT between the parties ACME and Beta.",
                "Terms and obligations of each party.",
                "Signatures of both parties below.",
            ]),
            "contract",
        ),
    ];
    for (name, bytes, expected) in cases {
        let file_id = app.upload(name, bytes).await;
        let job = app.wait_job(&app.classify(&file_id).await).await;
        assert_eq!(job["status"], "COMPLETED", "{name}: {job}");
        assert_eq!(job["result"]["type"], expected, "{name}: {job}");
    }

    let deck = pptx(&[
        &["Quarterly poem reading", "Autumn leaves"],
        &[
            "INVOICE No. 7",
            "Total due: 10 EUR",
            "Payment by bank transfer",
        ],
    ]);
    let file_id = app.upload("deck.pptx", deck).await;
    let job: serde_json::Value = app
        .create_job(serde_json::json!({
            "file_input": file_id,
            "configuration": {
                "rules": crate::common::server::rules(),
                "parsing_configuration": {"target_pages": "2"}
            }
        }))
        .await
        .json()
        .await
        .unwrap();
    let job = app.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(
        job["result"]["type"], "invoice",
        "slide 2 is the invoice: {job}"
    );
});

store_test!(spreadsheets_and_other_containers_are_refused, &[], |app| {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "book.xlsx",
            zip_of(&[("xl/workbook.xml", "<workbook/>")]),
            "spreadsheets are not classified",
        ),
        (
            "data.csv",
            "a,b,c,d\n1,2,3,4\n5,6,7,8\n9,10,11,12\n13,14,15,16\n"
                .as_bytes()
                .to_vec(),
            "CSV",
        ),
        (
            "archive.zip",
            zip_of(&[("notes.txt", "hello")]),
            "not a Word or PowerPoint",
        ),
        (
            "legacy.doc",
            vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0],
            "save it as PDF or DOCX",
        ),
    ];
    for (name, bytes, needle) in cases {
        let file_id = app.upload(name, bytes).await;
        let job = app.wait_job(&app.classify(&file_id).await).await;
        assert_eq!(job["status"], "FAILED", "{name}: {job}");
        let message = job["error_message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{name}: {message:?}");
    }
});
