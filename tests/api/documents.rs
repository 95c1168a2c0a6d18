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
