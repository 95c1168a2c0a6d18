#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, on a release build, one after the other. Results print and
# are appended as JSON lines to target/bench/results.jsonl. Extra arguments go to every `load`
# run (e.g. `--jobs 200`). Needs PostgreSQL for the PostgreSQL load run (CLASSIFYD_TEST_PG_URL,
# default postgres://postgres@127.0.0.1:5432/test), pdftotext and ../shared/corpus for `extract`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin classifyd --bin classifyd-bench
bench=target/release/classifyd-bench
out=target/bench/results.jsonl
mkdir -p target/bench
lscpu | grep -E '^(Model name|CPU\(s\))' | sed 's/  */ /g' || true

$bench --out "$out" startup
for classifier in local openai-fake; do
  $bench --out "$out" load --database sqlite --classifier "$classifier" "$@"
  $bench --out "$out" load --database postgres --classifier "$classifier" "$@"
done
$bench --out "$out" memory
if [ -d ../shared/corpus ]; then
  $bench --out "$out" extract
else
  echo "extract: skipped (../shared/corpus is absent)"
fi
echo "results appended to $out"
