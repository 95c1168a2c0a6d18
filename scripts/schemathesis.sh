#!/usr/bin/env bash
# The schemathesis step of scripts/test.sh (needs the debug binary and target/tools-venv that
# test.sh makes): the server against its own openapi.yaml. Generated requests (the document's
# examples, coverage, fuzzing, stateful sequences through the document's links) against a fresh
# server; what is checked and what is left out, and why, is in the README. One worker: with two,
# Python 3.11's ast.parse races inside hypothesis (`SystemError: AST constructor recursion depth
# mismatch`) and aborts operations at random. Extra arguments go to `schemathesis run`.
#
# Server and schemathesis run in a network namespace of their own that has only loopback:
# generated webhook URLs and ADE `document_url`s name arbitrary hosts and addresses, and no
# generated request may make the server contact anything beyond this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# --map-root-user lets an unprivileged user make the namespace too (user namespaces).
if [ -z "${SCHEMATHESIS_IN_NETNS:-}" ]; then
  if unshare --net --map-root-user true 2>/dev/null; then
    exec env SCHEMATHESIS_IN_NETNS=1 unshare --net --map-root-user bash scripts/schemathesis.sh "$@"
  fi
  if [ "${CI:-}" = "true" ]; then
    echo "schemathesis: cannot create a network namespace (unshare --net) and CI=true: refusing to skip" >&2
    exit 1
  fi
  echo "schemathesis: skipped, this machine cannot create a network namespace (unshare --net --map-root-user)"
  exit 0
fi
ip link set lo up

st_port_file="$(mktemp -u)"
target/debug/classifyd serve --ephemeral --listen 127.0.0.1:0 --port-file "$st_port_file" \
  --api-keys "" 2>target/schemathesis-server.log &
st_server=$!
for _ in $(seq 1 100); do [ -s "$st_port_file" ] && break; sleep 0.1; done
st_status=0
# From target/: schemathesis keeps a cache directory in the working directory.
(cd target && "tools-venv/bin/schemathesis" run "http://127.0.0.1:$(cat "$st_port_file")/openapi.yaml" \
  --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
  --phases examples,coverage,fuzzing,stateful --max-examples 50 --workers 1 --seed 20261124 \
  --generation-database none --no-color "$@") || st_status=$?
kill "$st_server" && wait "$st_server" || true
rm -f "$st_port_file"
[ "$st_status" = 0 ] || { echo "schemathesis found failures (server log: target/schemathesis-server.log)" >&2; exit 1; }
