#!/usr/bin/env bash
# Fuzzes the document extractor (fuzz/README.md) for SECONDS (default 60) with cargo-fuzz on
# the stable toolchain. Installs cargo-fuzz into target/cargo-fuzz on first use and seeds
# fuzz/corpus/extract with the repository's regression inputs and the shared corpus's PDFs.
# A crash fails the run and is saved under fuzz/artifacts/extract/.
#   bash scripts/fuzz.sh [SECONDS]
# Not part of scripts/test.sh by default: building the instrumented target is a release
# build of classifyd's whole dependency tree (far more than CI's budget allows); set
# CLASSIFYD_FUZZ_SECONDS to have test.sh run it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

if [ ! -x target/cargo-fuzz/bin/cargo-fuzz ]; then
  cargo install cargo-fuzz --locked --version 0.13.2 --root target/cargo-fuzz
fi
export PATH="$PWD/target/cargo-fuzz/bin:$PATH"

seeds=fuzz/corpus/extract
mkdir -p "$seeds"
cp tests/fixtures/fuzz/* "$seeds"/
for dir in ../shared/corpus ../shared/corpus/malformed; do
  if [ -d "$dir" ]; then
    find "$dir" -maxdepth 1 -name '*.pdf' -size -200k -exec cp {} "$seeds"/ \;
  fi
done

# RUSTC_BOOTSTRAP lets the stable compiler take the sanitizer flags cargo-fuzz passes.
RUSTC_BOOTSTRAP=1 cargo fuzz run extract "$seeds" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1
