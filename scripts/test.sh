#!/usr/bin/env bash
# Every test the project has, as CI runs them: formatting and lints, the Rust unit and
# integration tests (SQLite and PostgreSQL, the corpus when ../shared/corpus exists), and the
# official Python SDKs against the real server in throwaway virtualenvs (v2 + ADE, and v1).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${CLASSIFYD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CLASSIFYD_TEST_PG_URL="$PG_ADMIN_URL"

step() { printf '\n==> %s\n' "$*"; }

pg() { psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -Atqc "$1"; }

ensure_postgres() {
  if command -v psql >/dev/null && pg 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 30); do
      pg 'SELECT 1' >/dev/null 2>&1 && return 0
      sleep 1
    done
  fi
  if [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL is not reachable at $PG_ADMIN_URL and CI=true: refusing to skip its tests" >&2
    exit 1
  fi
  echo "PostgreSQL is not reachable at $PG_ADMIN_URL: its tests will be skipped" >&2
  export CLASSIFYD_TEST_PG=0
}

# Test databases are named classifyd_*; only CI removes them wholesale, since on a developer
# machine another test run may be using some.
drop_test_databases() {
  [ "${CI:-}" = "true" ] || return 0
  [ "${CLASSIFYD_TEST_PG:-1}" = "0" ] && return 0
  pg "SELECT datname FROM pg_database WHERE datname LIKE 'classifyd\_%'" | while read -r db; do
    [ -n "$db" ] && pg "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  done
}

step "PostgreSQL"
ensure_postgres
drop_test_databases

step "test tools: schemathesis and moto's S3 server"
mkdir -p target
tools_venv=target/tools-venv
tools_stamp="$tools_venv/.requirements"
if [ ! -x "$tools_venv/bin/python" ] || ! cmp -s tests/tools/requirements.txt "$tools_stamp"; then
  rm -rf "$tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/tools/requirements.txt
  cp tests/tools/requirements.txt "$tools_stamp"
fi
# A real S3-compatible server for tests/api/s3.rs, on a free port, stopped when this script ends.
moto_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$tools_venv/bin/python" -m moto.server -H 127.0.0.1 -p "$moto_port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/')" 2>/dev/null && break
  sleep 0.2
done
export CLASSIFYD_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_port"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --all-targets --locked

step "benchmark harness smoke run (figures are not checked; see BENCHMARKS.md)"
# Tiny runs of every benchmark so the harness cannot rot; results go to target/, never to
# BENCHMARKS.md.
cargo build --locked --bins
bench_out=target/bench-smoke.jsonl
rm -f "$bench_out"
smoke() { target/debug/classifyd-bench --out "$bench_out" "$@" >/dev/null; }
smoke startup --runs 1
smoke load --database sqlite --jobs 8 --clients 4
smoke load --database sqlite --jobs 8 --clients 4 --classifier openai-fake
if [ "${CLASSIFYD_TEST_PG:-1}" != "0" ]; then
  smoke load --database postgres --jobs 8 --clients 4
  smoke load --database postgres --jobs 8 --clients 4 --classifier openai-fake
fi
smoke memory --jobs 4 --pdf-mb 1 --distinct-pdfs 2 --upload-mb 8 --clients 2
if [ -d ../shared/corpus ] && command -v pdftotext >/dev/null; then
  smoke extract --limit 2 --rounds 1
fi
echo "benchmark harness: $(wc -l < "$bench_out") reports in $bench_out"

step "fuzzing the extractor (opt-in: CLASSIFYD_FUZZ_SECONDS)"
# The inputs fuzzing found are regression tests in cargo test above (tests/corpus.rs). A run
# of the fuzzer itself builds an instrumented release copy of classifyd's whole dependency
# tree, well past CI's budget, so it runs only when asked for (README: Fuzzing).
if [ "${CLASSIFYD_FUZZ_SECONDS:-0}" != "0" ]; then
  bash scripts/fuzz.sh "$CLASSIFYD_FUZZ_SECONDS"
else
  echo "skipped; run it with CLASSIFYD_FUZZ_SECONDS=60 bash scripts/test.sh, or bash scripts/fuzz.sh 600"
fi

step "official SDK tests"
venv=target/sdk-venv
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/sdk/requirements.txt "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$stamp"
fi
CLASSIFYD_BIN="$PWD/target/debug/classifyd" "$venv/bin/python" -m pytest tests/sdk -q -p no:cacheprovider

step "official v1 SDK tests (llama-cloud-services / llama-cloud 0.1.46)"
# A separate virtualenv: the v1 client pins an older major version of the same llama-cloud package.
venv_v1=target/sdk-v1-venv
stamp_v1="$venv_v1/.requirements"
if [ ! -x "$venv_v1/bin/python" ] || ! cmp -s tests/sdk_v1/requirements.txt "$stamp_v1"; then
  rm -rf "$venv_v1"
  python3 -m venv "$venv_v1"
  "$venv_v1/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk_v1/requirements.txt
  cp tests/sdk_v1/requirements.txt "$stamp_v1"
fi
CLASSIFYD_BIN="$PWD/target/debug/classifyd" "$venv_v1/bin/python" -m pytest tests/sdk_v1 -q -p no:cacheprovider

step "schemathesis: the server against its own openapi.yaml"
# In a network namespace with only loopback; see the script.
bash scripts/schemathesis.sh

drop_test_databases
step "all tests passed"
