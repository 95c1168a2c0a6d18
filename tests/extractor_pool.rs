//! The pool of sandboxed extraction children: documents reuse children, concurrent documents
//! get their own answers, and a child killed by a hostile document fails that document alone.
//! One test function, because it counts this process's children.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use classifyd::document::sandbox::Extractor;
use classifyd::document::DocumentError;
use classifyd::settings::Limits;
use common::pdf::pdf_with_pages;
use futures_util::future::join_all;
use lopdf::{dictionary, Document, Object, Stream};

/// A well-formed PDF whose only content stream inflates to `decoded_bytes` zeros.
fn flate_bomb_pdf(decoded_bytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![0u8; 1024 * 1024];
    for _ in 0..decoded_bytes / block.len() {
        encoder.write_all(&block).unwrap();
    }
    let packed = encoder.finish().unwrap();
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content =
        Stream::new(dictionary! { "Filter" => "FlateDecode" }, packed).with_compression(false);
    let content_id = doc.add_object(content);
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// Live `classifyd` children of this test process.
fn extractor_children() -> usize {
    let pids: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    pids.iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.contains("(classifyd)") && !stat.contains(") Z "))
        })
        .count()
}

fn write_marked_pdfs(dir: &Path, count: usize) -> Vec<(PathBuf, String)> {
    (0..count)
        .map(|i| {
            let marker = format!("marker{i}word");
            let path = dir.join(format!("doc-{i}.pdf"));
            let line = format!("Document {marker} page one");
            std::fs::write(&path, pdf_with_pages(&[&[line.as_str()]])).unwrap();
            (path, marker)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_reused_answers_stay_apart_and_crashes_stay_alone() {
    let dir = tempfile::tempdir().unwrap();
    let documents = write_marked_pdfs(dir.path(), 8);
    let extractor = Extractor::new(
        common::server::classifyd_bin(),
        Limits {
            extract_timeout_seconds: 30,
            // Room for the debug binary itself, not for inflating the bomb below.
            extract_memory_mb: 640,
            max_stream_bytes: 4 * 1024 * 1024 * 1024,
            ..Limits::default()
        },
    );

    // Sequential documents are served by one child.
    for (path, marker) in &documents {
        let document = extractor.extract_file(path).await.unwrap();
        assert!(document.pages[0].contains(marker.as_str()), "{document:?}");
    }
    assert_eq!(extractor_children(), 1, "one child served every document");

    // Concurrent documents each get their own text back.
    let rounds = join_all((0..32).map(|i| {
        let extractor = extractor.clone();
        let (path, marker) = documents[i % documents.len()].clone();
        async move {
            let document = extractor.extract_file(&path).await.unwrap();
            assert!(
                document.pages[0].contains(marker.as_str()),
                "{} got {:?}",
                path.display(),
                document.pages
            );
        }
    }))
    .await;
    assert_eq!(rounds.len(), 32);
    // Children beyond the idle cap were killed on return; give the kernel a moment to end them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while extractor_children() > 8 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(extractor_children() <= 8, "idle children are capped");

    // A document that exhausts the child's memory fails with the limit's name; the documents
    // around it, before and after, are untouched.
    let bomb = dir.path().join("bomb.pdf");
    std::fs::write(&bomb, flate_bomb_pdf(1024 * 1024 * 1024)).unwrap();
    let outcomes = join_all(
        [&documents[0].0, &bomb, &documents[1].0]
            .into_iter()
            .map(|path| extractor.extract_file(path)),
    )
    .await;
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    match &outcomes[1] {
        Err(DocumentError::OutOfMemory(640)) => {}
        other => panic!("the bomb should fail naming the memory limit, got {other:?}"),
    }
    let after = extractor.extract_file(&documents[2].0).await.unwrap();
    assert!(after.pages[0].contains(&documents[2].1));
}
