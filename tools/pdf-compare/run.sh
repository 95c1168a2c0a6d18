#!/usr/bin/env bash
# Compares PDF text extractors with poppler's pdftotext, and hayro's page images with
# pdftoppm's, on the shared corpus and prints the Markdown tables that BENCHMARKS.md
# (## Extraction) quotes. A benchmark, not a test: run it by
# hand after changing extraction, on a quiet machine (figures are wall-clock).
#   tools/pdf-compare/run.sh [CORPUS_DIR]     (default: ../shared/corpus beside the repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${1:-$here/../../../shared/corpus}"
if ! command -v pdftotext >/dev/null; then
  echo "pdftotext is missing: it and pdftoppm are the reference. Install poppler-utils (apt-get install poppler-utils)." >&2
  exit 1
fi
if [ ! -d "$corpus" ]; then
  echo "no corpus at $corpus" >&2
  exit 1
fi
cargo build --release --locked --quiet --manifest-path "$here/Cargo.toml"
echo "pdftotext: $(pdftotext -v 2>&1 | head -1)"
"$here/target/release/pdf-compare" "$corpus"
echo
"$here/target/release/pdf-compare" render "$corpus" 100
