//! Compares PDF text extractors with poppler's `pdftotext` on a corpus of PDFs.
//!
//! `pdf-compare CORPUS_DIR` runs every extractor on every PDF under the directory (and its
//! `malformed/` subset), each file in a child process of this binary with an address-space
//! limit, a CPU limit and a wall-clock timeout, so a panic, an abort or an OOM counts as a
//! result instead of ending the run. It prints a Markdown table per extractor:
//! files OK / error / panic / crash / timeout, pages per second, and the token F1 of each
//! page's text against `pdftotext`'s text of the same page.
//!
//! Token F1: both texts are lower-cased and cut into tokens (runs of letters or digits; each
//! CJK character is a token of its own, as CJK text has no spaces); precision and recall are
//! over the token multisets. A page both sides leave empty is skipped.

use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod render;

const EXTRACTORS: &[&str] = &[
    "lopdf",
    "pdf-extract",
    "pdf-extract+lopdf",
    "classifyd",
    #[cfg(feature = "oxide")]
    "pdf_oxide",
    #[cfg(feature = "oxide")]
    "pdf_oxide+pdf-extract",
    #[cfg(feature = "oxide")]
    "pdf-extract+lopdf+pdf_oxide",
];
const TIMEOUT: Duration = Duration::from_secs(30);
const MEMORY_BYTES: u64 = 2 << 30;

#[derive(Serialize, Deserialize)]
enum Outcome {
    Ok { pages: Vec<String>, seconds: f64 },
    Error(String),
    Panic(String),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("one") if args.len() == 4 => run_one(&args[2], Path::new(&args[3])),
        Some("show") if args.len() == 4 => show(Path::new(&args[2]), &args[3]),
        Some("render") if args.len() == 3 || args.len() == 4 => {
            let dpi = args.get(3).map_or(Ok(100.0), |d| d.parse::<f32>());
            render::compare(Path::new(&args[2]), dpi.expect("DPI is a number"))
        }
        Some(dir) if args.len() == 2 => compare(Path::new(dir)),
        _ => {
            eprintln!(
                "usage: pdf-compare CORPUS_DIR | render CORPUS_DIR [DPI] | show FILE PAGE   (see run.sh)"
            );
            std::process::exit(2);
        }
    }
}

/// Child: one extractor on one file; the outcome as JSON on stdout.
fn run_one(extractor: &str, path: &Path) {
    let bytes = std::fs::read(path).expect("readable input");
    let started = Instant::now();
    let outcome = match catch_unwind(AssertUnwindSafe(|| extract(extractor, &bytes))) {
        Ok(Ok(pages)) => Outcome::Ok {
            pages,
            seconds: started.elapsed().as_secs_f64(),
        },
        Ok(Err(error)) => Outcome::Error(error),
        Err(panic) => Outcome::Panic(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    };
    println!("{}", serde_json::to_string(&outcome).unwrap());
}

fn extract(extractor: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
    match extractor {
        "lopdf" => {
            let doc = load_lopdf(bytes)?;
            Ok(doc
                .get_pages()
                .keys()
                .map(|&n| doc.extract_text(&[n]).unwrap_or_default())
                .collect())
        }
        "pdf-extract" => {
            let doc = load_lopdf(bytes)?;
            doc.get_pages()
                .keys()
                .map(|&n| pdf_extract_page(&doc, n))
                .collect()
        }
        // classifyd's libraries without its clean-up: pdf-extract per page (its panics caught),
        // lopdf where it fails.
        "pdf-extract+lopdf" => {
            let doc = load_lopdf(bytes)?;
            Ok(doc
                .get_pages()
                .keys()
                .map(
                    |&n| match catch_unwind(AssertUnwindSafe(|| pdf_extract_page(&doc, n))) {
                        Ok(Ok(text)) if !text.trim().is_empty() => text,
                        _ => doc.extract_text(&[n]).unwrap_or_default(),
                    },
                )
                .collect())
        }
        // What the server reads: the same code as the sandboxed `classifyd extract` child
        // (the structural guard, pdf-extract + lopdf fallback, and classifyd's clean-up).
        "classifyd" => {
            let limits = classifyd::document::ParseLimits {
                max_pages: 10_000,
                max_nesting_depth: 256,
                max_stream_bytes: 256 << 20,
            };
            classifyd::document::extract_in_process(bytes, &limits)
                .map(|document| document.pages)
                .map_err(|e| e.to_string())
        }
        "pdf_oxide" => oxide_pages(bytes),
        // The current path, with pdf_oxide only for what it leaves empty.
        "pdf-extract+lopdf+pdf_oxide" => {
            let mut pages =
                match catch_unwind(AssertUnwindSafe(|| extract("pdf-extract+lopdf", bytes))) {
                    Ok(Ok(pages)) => pages,
                    _ => return oxide_pages(bytes),
                };
            if pages.iter().any(|p| p.trim().is_empty()) {
                if let Ok(oxide) = oxide_pages(bytes) {
                    for (page, better) in pages.iter_mut().zip(oxide) {
                        if page.trim().is_empty() {
                            *page = better;
                        }
                    }
                }
            }
            Ok(pages)
        }
        "pdf_oxide+pdf-extract" => {
            let oxide = oxide_pages(bytes);
            let mut pages = match oxide {
                Ok(pages) => pages,
                Err(_) => return extract("pdf-extract+lopdf", bytes),
            };
            if pages.iter().any(|p| p.trim().is_empty()) {
                if let Ok(doc) = load_lopdf(bytes) {
                    for (page, &n) in pages.iter_mut().zip(doc.get_pages().keys()) {
                        if page.trim().is_empty() {
                            let fallback =
                                catch_unwind(AssertUnwindSafe(|| pdf_extract_page(&doc, n)));
                            if let Ok(Ok(text)) = fallback {
                                *page = text;
                            }
                        }
                    }
                }
            }
            Ok(pages)
        }
        other => Err(format!("unknown extractor {other}")),
    }
}

fn load_lopdf(bytes: &[u8]) -> Result<lopdf::Document, String> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if doc.get_pages().is_empty() {
        return Err("no pages".into());
    }
    Ok(doc)
}

fn pdf_extract_page(doc: &lopdf::Document, number: u32) -> Result<String, String> {
    let mut text = String::new();
    let mut output = pdf_extract::PlainTextOutput::new(&mut text);
    pdf_extract::output_doc_page(doc, &mut output, number).map_err(|e| e.to_string())?;
    Ok(text)
}

#[cfg(not(feature = "oxide"))]
fn oxide_pages(_bytes: &[u8]) -> Result<Vec<String>, String> {
    Err("built without the oxide feature".into())
}

#[cfg(feature = "oxide")]
fn oxide_pages(bytes: &[u8]) -> Result<Vec<String>, String> {
    let doc = pdf_oxide::PdfDocument::from_bytes(bytes.to_vec()).map_err(|e| e.to_string())?;
    let count = doc.page_count().map_err(|e| e.to_string())?;
    if count == 0 {
        return Err("no pages".into());
    }
    Ok((0..count)
        .map(|index| doc.extract_text(index).unwrap_or_default())
        .collect())
}

/// What one extractor did with one file, seen from the parent.
enum Seen {
    Ok { pages: Vec<String>, seconds: f64 },
    Error,
    Panic,
    Crash,
    Timeout,
}

fn run_child(extractor: &str, path: &Path) -> Seen {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .arg("one")
        .arg(extractor)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = |resource, value| {
                let rlimit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                libc::setrlimit(resource, &rlimit);
            };
            limit(libc::RLIMIT_AS, MEMORY_BYTES);
            limit(libc::RLIMIT_CPU, TIMEOUT.as_secs() + 1);
            limit(libc::RLIMIT_CORE, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn child");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Seen::Timeout;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap_or_default();
    if status.signal() == Some(libc::SIGXCPU) {
        return Seen::Timeout;
    }
    match serde_json::from_str::<Outcome>(out.trim()) {
        Ok(Outcome::Ok { pages, seconds }) if status.success() => Seen::Ok { pages, seconds },
        Ok(Outcome::Error(_)) => Seen::Error,
        Ok(Outcome::Panic(_)) => Seen::Panic,
        _ => Seen::Crash,
    }
}

/// `pdftotext`'s pages (form feeds separate them) and its wall time.
fn pdftotext(path: &Path) -> Option<(Vec<String>, f64)> {
    let started = Instant::now();
    let output = Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(path)
        .arg("-")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    Some((pages, seconds))
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

fn tokens(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_cjk(c) {
            if !word.is_empty() {
                *counts.entry(std::mem::take(&mut word)).or_default() += 1;
            }
            *counts.entry(c.to_string()).or_default() += 1;
        } else if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            *counts.entry(std::mem::take(&mut word)).or_default() += 1;
        }
    }
    if !word.is_empty() {
        *counts.entry(word).or_default() += 1;
    }
    counts
}

/// Token F1 of `candidate` against `reference`; `None` when both are empty.
fn token_f1(candidate: &str, reference: &str) -> Option<f64> {
    let (c, r) = (tokens(candidate), tokens(reference));
    let (nc, nr): (usize, usize) = (c.values().sum(), r.values().sum());
    if nc == 0 && nr == 0 {
        return None;
    }
    if nc == 0 || nr == 0 {
        return Some(0.0);
    }
    let common: usize = c
        .iter()
        .map(|(token, &n)| n.min(r.get(token).copied().unwrap_or(0)))
        .sum();
    let (precision, recall) = (common as f64 / nc as f64, common as f64 / nr as f64);
    Some(if common == 0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    })
}

#[derive(Default)]
struct Tally {
    ok: usize,
    error: usize,
    panic: usize,
    crash: usize,
    timeout: usize,
    pages: usize,
    seconds: f64,
    f1: Vec<f64>,
    /// Per-file mean F1, for the worst-files list.
    per_file: Vec<(String, f64)>,
    /// (file, 1-based page, F1, reference tokens), for the worst-pages list.
    per_page: Vec<(String, usize, f64, usize)>,
}

fn pdfs_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn compare(dir: &Path) {
    let real = pdfs_in(dir);
    let malformed = pdfs_in(&dir.join("malformed"));
    if real.is_empty() {
        eprintln!("no PDFs in {}", dir.display());
        std::process::exit(2);
    }
    let mut reference = HashMap::new();
    let (mut ref_pages, mut ref_seconds) = (0usize, 0f64);
    for path in &real {
        if let Some((pages, seconds)) = pdftotext(path) {
            ref_pages += pages.len();
            ref_seconds += seconds;
            reference.insert(path.clone(), pages);
        }
    }
    let mut ref_malformed_ok = 0;
    for path in &malformed {
        ref_malformed_ok += usize::from(pdftotext(path).is_some());
    }
    println!(
        "Corpus: {} real PDFs ({} pages by pdftotext), {} malformed files.\n",
        real.len(),
        ref_pages,
        malformed.len()
    );
    println!(
        "| extractor | real: ok / err / panic / crash / timeout | malformed: ok / err / panic / crash / timeout | pages/s (real) | speed vs pdftotext | mean token F1 per page | pages F1 ≥ 0.9 |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| pdftotext (reference) | {} / {} / 0 / 0 / 0 | {} / {} / – | {:.0} | 1.00× | 1.000 | 100% |",
        reference.len(),
        real.len() - reference.len(),
        ref_malformed_ok,
        malformed.len() - ref_malformed_ok,
        ref_pages as f64 / ref_seconds
    );
    let mut worst = Vec::new();
    let mut classifyd_pages = Vec::new();
    for extractor in EXTRACTORS {
        let mut real_tally = Tally::default();
        for path in &real {
            let result = run_child(extractor, path);
            count(&mut real_tally, &result);
            if let (Seen::Ok { pages, seconds }, Some(reference)) = (&result, reference.get(path)) {
                real_tally.pages += pages.len();
                real_tally.seconds += seconds;
                let mut scores = Vec::new();
                for (i, r) in reference.iter().enumerate() {
                    if let Some(f1) = token_f1(pages.get(i).map_or("", String::as_str), r) {
                        let weight = tokens(r).values().sum();
                        real_tally
                            .per_page
                            .push((file_name(path), i + 1, f1, weight));
                        scores.push(f1);
                    }
                }
                if !scores.is_empty() {
                    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                    real_tally.per_file.push((file_name(path), mean));
                }
                real_tally.f1.extend(scores);
            } else if let Some(reference) = reference.get(path) {
                // A failed file scores 0 on every page the reference reads.
                let zeros = reference.iter().filter_map(|r| token_f1("", r)).count();
                real_tally.f1.extend(std::iter::repeat_n(0.0, zeros));
                real_tally.per_file.push((file_name(path), 0.0));
            }
        }
        let mut bad_tally = Tally::default();
        for path in &malformed {
            count(&mut bad_tally, &run_child(extractor, path));
        }
        let rate = real_tally.pages as f64 / real_tally.seconds.max(1e-9);
        let mean_f1 = real_tally.f1.iter().sum::<f64>() / real_tally.f1.len().max(1) as f64;
        let good = real_tally.f1.iter().filter(|&&f| f >= 0.9).count() as f64
            / real_tally.f1.len().max(1) as f64;
        println!(
            "| {extractor} | {} | {} | {rate:.0} | {:.2}× | {mean_f1:.3} | {:.0}% |",
            counts(&real_tally),
            counts(&bad_tally),
            rate / (ref_pages as f64 / ref_seconds),
            good * 100.0
        );
        real_tally
            .per_file
            .sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        if *extractor == "classifyd" {
            classifyd_pages = std::mem::take(&mut real_tally.per_page);
        }
        worst.push((extractor, real_tally.per_file));
    }
    println!("\nLowest per-file mean F1 (five worst per extractor):\n");
    for (extractor, files) in worst {
        let list: Vec<String> = files
            .iter()
            .take(5)
            .map(|(file, f1)| format!("{file} {f1:.2}"))
            .collect();
        println!("- {extractor}: {}", list.join(", "));
    }
    // Where classifyd loses F1: its lowest pages, with their size (every page weighs the same
    // in the mean); `pdf-compare show FILE PAGE` shows the two texts.
    classifyd_pages.sort_by(|a, b| (a.2).partial_cmp(&b.2).unwrap());
    println!("\nclassifyd's lowest pages (file page F1, pdftotext tokens):\n");
    for (file, page, f1, weight) in classifyd_pages.iter().take(15) {
        println!("- {file} p{page} {f1:.2} ({weight} tokens)");
    }
}

/// One page of one file: classifyd's text, pdftotext's, and the tokens only one side has.
fn show(path: &Path, page: &str) {
    let page: usize = page.parse().expect("PAGE is a 1-based number");
    let bytes = std::fs::read(path).expect("readable input");
    let ours = extract("classifyd", &bytes).unwrap_or_else(|e| vec![format!("<error: {e}>")]);
    let reference = pdftotext(path).map(|(pages, _)| pages).unwrap_or_default();
    let (ours, reference) = (
        ours.get(page - 1).cloned().unwrap_or_default(),
        reference.get(page - 1).cloned().unwrap_or_default(),
    );
    println!("--- classifyd ---\n{ours}\n--- pdftotext ---\n{reference}");
    let (a, b) = (tokens(&ours), tokens(&reference));
    let only = |x: &HashMap<String, usize>, y: &HashMap<String, usize>| {
        let mut list: Vec<String> = x
            .iter()
            .filter(|(t, &n)| n > y.get(*t).copied().unwrap_or(0))
            .map(|(t, n)| format!("{t}×{}", n - y.get(t).copied().unwrap_or(0)))
            .collect();
        list.sort();
        list.join(" ")
    };
    println!("--- only classifyd ---\n{}", only(&a, &b));
    println!("--- only pdftotext ---\n{}", only(&b, &a));
    println!(
        "--- token F1 {:.3} ---",
        token_f1(&ours, &reference).unwrap_or(1.0)
    );
}

fn count(tally: &mut Tally, result: &Seen) {
    match result {
        Seen::Ok { .. } => tally.ok += 1,
        Seen::Error => tally.error += 1,
        Seen::Panic => tally.panic += 1,
        Seen::Crash => tally.crash += 1,
        Seen::Timeout => tally.timeout += 1,
    }
}

fn counts(t: &Tally) -> String {
    format!(
        "{} / {} / {} / {} / {}",
        t.ok, t.error, t.panic, t.crash, t.timeout
    )
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
