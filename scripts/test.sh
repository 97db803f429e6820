#!/usr/bin/env bash
# Runs the whole test suite. Starts a throwaway PostgreSQL for the Redshift stand-in unless
# DATABASE_URL already points at one, and stops it again afterwards if it started it.
set -euo pipefail
cd "$(dirname "$0")/.."

started_pg=false
if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/pg-test-cluster.sh status >/dev/null 2>&1; then
        started_pg=true
    fi
    export "$(scripts/pg-test-cluster.sh start)"
fi
cleanup() {
    if [ "$started_pg" = true ] && [ -z "${KEEP_PG:-}" ]; then
        scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# Fake credentials and region for the real AWS SDK clients that talk to the local stand-ins.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
unset AWS_PROFILE AWS_SESSION_TOKEN

# cargo-nextest runs every test in a process of its own, which the tests that read the captured
# log (common::logs()) rely on: under `cargo test` they would see each other's lines. Installed
# here when missing: the prebuilt binary (seconds), else from source (minutes).
ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    echo "test: installing cargo-nextest into $bin" >&2
    mkdir -p "$bin"
    if ! curl -LsSf https://get.nexte.st/latest/linux | tar zxf - -C "$bin"; then
        echo "test: the prebuilt cargo-nextest could not be fetched; building it (several minutes)" >&2
        cargo install cargo-nextest --locked
    fi
    cargo nextest --version >/dev/null 2>&1 || { echo "test: cargo-nextest is still missing" >&2; exit 1; }
}
ensure_nextest
# boto3 in .venv/, for tests/deploy_preflight.rs (the checks of make deploy and make migrate).
make --no-print-directory boto3
cargo nextest run --workspace --no-fail-fast "$@"

# The template's alarms and dashboard: tests/template.rs checked their metrics; these check the rest.
scripts/lint-template.sh

# The Lambda package as `make deploy` builds it (sam build): bootstrap alone. Skipped, with a
# message, where cargo-lambda is not installed: installing it takes about 20 minutes.
scripts/package-check.sh --if-present

# The status page (GET /) in headless Chromium, against the service and the Redshift stand-in.
tests/browser/run.sh

# The running API against its OpenAPI description, on SQLite and on the Redshift stand-in.
scripts/contract.sh
