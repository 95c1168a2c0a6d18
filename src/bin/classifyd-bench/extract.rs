//! `extract`: pages/s of the server's PDF extraction path (the sandboxed extractor the workers
//! use, and the same parser in-process, to show the sandbox's share) against `pdftotext`, over
//! the same files in the same run, with the text's word-level similarity to `pdftotext`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use classifyd::document::sandbox::Extractor;
use classifyd::document::ParseLimits;
use classifyd::settings::Limits;

use crate::report::{round, Report};

#[derive(clap::Args)]
pub struct ExtractArgs {
    /// Directory of PDFs (its top level only).
    #[arg(long, default_value = "../shared/corpus")]
    corpus: PathBuf,
    /// Each side runs this many times; the fastest round counts.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Use only the first N files (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// The server's limits, with the server's flags, environment variables and defaults.
    #[command(flatten)]
    limits: Limits,
}

pub async fn run(bin: &Path, args: ExtractArgs) -> anyhow::Result<Report> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.corpus)
        .with_context(|| format!("cannot read the corpus at {}", args.corpus.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
        })
        .collect();
    files.sort();
    if args.limit > 0 {
        files.truncate(args.limit);
    }
    if files.is_empty() {
        bail!("no PDFs in {}", args.corpus.display());
    }
    let extractor = Extractor::new(bin.to_path_buf(), args.limits.clone());
    let parse_limits = ParseLimits::from(&args.limits);

    let (mut ours_best, mut inproc_best, mut poppler_best) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut ours_text = Vec::new();
    let mut poppler_text = Vec::new();
    let mut ours_failed = 0;
    for _ in 0..args.rounds.max(1) {
        let started = Instant::now();
        let mut texts = Vec::new();
        ours_failed = 0;
        for file in &files {
            match extractor.extract_file(file).await {
                Ok(document) => texts.push(document.pages),
                Err(_) => {
                    ours_failed += 1;
                    texts.push(Vec::new());
                }
            }
        }
        ours_best = ours_best.min(started.elapsed());
        ours_text = texts;

        // The parsers panic on some files (caught, as in the child); keep their reports quiet.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let started = Instant::now();
        for file in &files {
            let bytes = std::fs::read(file)?;
            let _ = classifyd::document::extract_in_process(&bytes, &parse_limits);
        }
        inproc_best = inproc_best.min(started.elapsed());
        std::panic::set_hook(hook);

        let started = Instant::now();
        let mut texts = Vec::new();
        for file in &files {
            texts.push(pdftotext(file).await?);
        }
        poppler_best = poppler_best.min(started.elapsed());
        poppler_text = texts;
    }

    let ours_pages: usize = ours_text.iter().map(Vec::len).sum();
    let poppler_pages: usize = poppler_text.iter().map(Vec::len).sum();
    let ours_rate = ours_pages as f64 / ours_best.as_secs_f64();
    let inproc_rate = ours_pages as f64 / inproc_best.as_secs_f64();
    let poppler_rate = poppler_pages as f64 / poppler_best.as_secs_f64();
    let ratio = ours_rate / poppler_rate;
    let similarities: Vec<f64> = ours_text
        .iter()
        .zip(&poppler_text)
        .filter(|(_, theirs)| theirs.iter().any(|page| !page.trim().is_empty()))
        .map(|(ours, theirs)| similarity(&ours.join("\n"), &theirs.join("\n")))
        .collect();
    let mean_similarity = similarities.iter().sum::<f64>() / similarities.len().max(1) as f64;

    let mut report = Report::new(format!(
        "extract ({} PDFs, best of {} rounds)",
        files.len(),
        args.rounds.max(1)
    ));
    report.figure("files", files.len());
    report.figure(
        "pages (ours / pdftotext)",
        format!("{ours_pages} / {poppler_pages}"),
    );
    report.figure("files ours failed", ours_failed);
    report.figure("server extractor pages/s", round(ours_rate, 1));
    report.figure("same parser in-process pages/s", round(inproc_rate, 1));
    report.figure("pdftotext pages/s", round(poppler_rate, 1));
    report.figure("server extractor / pdftotext", round(ratio, 2));
    report.figure("word similarity to pdftotext", round(mean_similarity, 3));
    report.check(
        "extraction ≥ 1.0× pdftotext pages/s",
        format!("{ratio:.2}×"),
        ratio >= 1.0,
    );
    report.check(
        "similarity to pdftotext ≥ 0.95",
        format!("{mean_similarity:.3}"),
        mean_similarity >= 0.95,
    );
    Ok(report)
}

/// `pdftotext`'s pages (it ends each page with a form feed).
async fn pdftotext(file: &Path) -> anyhow::Result<Vec<String>> {
    let output = tokio::process::Command::new("pdftotext")
        .arg("-q")
        .arg("-enc")
        .arg("UTF-8")
        .arg(file)
        .arg("-")
        .output()
        .await
        .context("cannot run pdftotext (install poppler-utils)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut pages: Vec<String> = text.split('\x0c').map(str::to_string).collect();
    if pages.last().is_some_and(|last| last.trim().is_empty()) {
        pages.pop();
    }
    Ok(pages)
}

/// Word-bag F1 between two texts: 2·|common words| / (|a| + |b|), counting repeats, on
/// lower-cased alphanumeric words. Order-blind on purpose: reading order is judged elsewhere.
fn similarity(a: &str, b: &str) -> f64 {
    let bag = |text: &str| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        counts
    };
    let (a, b) = (bag(a), bag(b));
    let total: usize = a.values().sum::<usize>() + b.values().sum::<usize>();
    if total == 0 {
        return 1.0;
    }
    let common: usize = a
        .iter()
        .map(|(word, n)| (*n).min(b.get(word).copied().unwrap_or(0)))
        .sum();
    2.0 * common as f64 / total as f64
}
