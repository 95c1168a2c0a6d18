//! `pdf-compare render CORPUS_DIR [DPI]`: every page of the real corpus rendered by hayro (the
//! library behind classifyd's MULTIMODAL page images) and by poppler's `pdftoppm` (the
//! reference) at the same resolution, in grayscale. Prints, per renderer, ms per page, and
//! hayro's mean absolute pixel difference from `pdftoppm` (0 = identical, 1 = black vs white).
//!
//! hayro runs in-process, timed from the PDF bytes to the finished pixmap (parse + render);
//! `pdftoppm` is timed as a whole process per file, writing PGM files to a temporary
//! directory, the way a server would call it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{RenderCache, RenderSettings};

/// A grayscale page: row-major, one byte per pixel.
struct Gray {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

pub fn compare(dir: &Path, dpi: f32) {
    let files = crate::pdfs_in(dir);
    if files.is_empty() {
        eprintln!("no PDFs in {}", dir.display());
        std::process::exit(2);
    }
    let scratch = std::env::temp_dir().join(format!("pdf-compare-render-{}", std::process::id()));
    let (mut hayro_ms, mut hayro_pages, mut hayro_failed) = (0f64, 0usize, 0usize);
    let (mut poppler_ms, mut poppler_pages, mut poppler_failed) = (0f64, 0usize, 0usize);
    let mut differences: Vec<(String, usize, f64)> = Vec::new();
    let mut size_mismatches = 0;
    for path in &files {
        let name = crate::file_name(path);
        let bytes = std::fs::read(path).expect("readable input");
        let started = Instant::now();
        let ours = catch_unwind(AssertUnwindSafe(|| hayro_pages_gray(bytes, dpi)));
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let Some((reference, seconds)) = pdftoppm(path, dpi, &scratch) else {
            poppler_failed += 1;
            continue;
        };
        poppler_ms += seconds * 1000.0;
        poppler_pages += reference.len();
        let ours = match ours {
            Ok(Some(pages)) => pages,
            _ => {
                hayro_failed += 1;
                continue;
            }
        };
        hayro_ms += elapsed;
        hayro_pages += ours.len();
        for (index, (a, b)) in ours.iter().zip(&reference).enumerate() {
            if a.width.abs_diff(b.width) > 2 || a.height.abs_diff(b.height) > 2 {
                size_mismatches += 1;
            }
            differences.push((name.clone(), index + 1, mean_abs_difference(a, b)));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mean = differences.iter().map(|d| d.2).sum::<f64>() / differences.len().max(1) as f64;
    let mut sorted: Vec<f64> = differences.iter().map(|d| d.2).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let p90 = sorted.get(sorted.len() * 9 / 10).copied().unwrap_or(0.0);
    println!(
        "Rendering at {dpi} dpi, grayscale: {} real PDFs, {} pages compared ({} with sizes more than 2 px apart).\n",
        files.len(),
        differences.len(),
        size_mismatches
    );
    println!("| renderer | files failed | pages | ms/page | mean abs. pixel difference vs pdftoppm (mean / median / p90) |");
    println!("|---|---|---|---|---|");
    println!(
        "| pdftoppm (reference) | {poppler_failed} | {poppler_pages} | {:.1} | 0 |",
        poppler_ms / poppler_pages.max(1) as f64
    );
    println!(
        "| hayro 0.6 | {hayro_failed} | {hayro_pages} | {:.1} | {mean:.4} / {median:.4} / {p90:.4} |",
        hayro_ms / hayro_pages.max(1) as f64
    );
    differences.sort_by(|a, b| b.2.total_cmp(&a.2));
    let worst: Vec<String> = differences
        .iter()
        .take(5)
        .map(|(file, page, d)| format!("{file} p{page} {d:.3}"))
        .collect();
    println!("\nLargest differences: {}", worst.join(", "));
}

/// Every page of a PDF rendered by hayro at `dpi`, on white, converted to gray; `None` when
/// hayro cannot open the file.
fn hayro_pages_gray(bytes: Vec<u8>, dpi: f32) -> Option<Vec<Gray>> {
    let pdf = Pdf::new(bytes).ok()?;
    let cache = RenderCache::new();
    let interpreter = InterpreterSettings::default();
    let settings = RenderSettings {
        x_scale: dpi / 72.0,
        y_scale: dpi / 72.0,
        bg_color: WHITE,
        ..Default::default()
    };
    Some(
        pdf.pages()
            .iter()
            .map(|page| {
                let pixmap = hayro::render(page, &cache, &interpreter, &settings);
                let (width, height) = (pixmap.width() as usize, pixmap.height() as usize);
                let pixels = pixmap
                    .data_as_u8_slice()
                    .chunks_exact(4)
                    .map(|rgba| luma(rgba[0], rgba[1], rgba[2]))
                    .collect();
                Gray {
                    width,
                    height,
                    pixels,
                }
            })
            .collect(),
    )
}

/// ITU-R BT.601 luma, as poppler's `-gray` output uses.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 299 + g as u32 * 587 + b as u32 * 114 + 500) / 1000) as u8
}

/// `pdftoppm -gray` of every page, and the wall time of the process.
fn pdftoppm(path: &Path, dpi: f32, scratch: &Path) -> Option<(Vec<Gray>, f64)> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).ok()?;
    let started = Instant::now();
    let status = Command::new("pdftoppm")
        .arg("-r")
        .arg(dpi.to_string())
        .arg("-gray")
        .arg(path)
        .arg(scratch.join("page"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return None;
    }
    // page-1.pgm … page-N.pgm, zero-padded to the page count's width: name order is page order.
    let mut outputs: Vec<_> = std::fs::read_dir(scratch)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    outputs.sort();
    let pages = outputs
        .iter()
        .map(|file| read_pgm(&std::fs::read(file).ok()?))
        .collect::<Option<Vec<_>>>()?;
    Some((pages, seconds))
}

/// A binary PGM (P5, 8-bit), as `pdftoppm -gray` writes it.
fn read_pgm(bytes: &[u8]) -> Option<Gray> {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes.get(at)?.is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..at]).ok()?.to_string());
    }
    if fields[0] != "P5" || fields[3] != "255" {
        return None;
    }
    let (width, height) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
    let pixels = bytes.get(at + 1..at + 1 + width * height)?.to_vec();
    Some(Gray {
        width,
        height,
        pixels,
    })
}

/// Mean |a − b| over the pixels both images cover, scaled to 0..1.
fn mean_abs_difference(a: &Gray, b: &Gray) -> f64 {
    let (width, height) = (a.width.min(b.width), a.height.min(b.height));
    if width == 0 || height == 0 {
        return 1.0;
    }
    let mut sum = 0u64;
    for y in 0..height {
        let (row_a, row_b) = (&a.pixels[y * a.width..], &b.pixels[y * b.width..]);
        for x in 0..width {
            sum += row_a[x].abs_diff(row_b[x]) as u64;
        }
    }
    sum as f64 / (width * height) as f64 / 255.0
}
