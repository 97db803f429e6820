#!/usr/bin/env bash
# Builds the function as `make deploy` does (`sam build`, which runs cargo-lambda with the
# template's BuildMethod rust-cargolambda) and checks the package SAM would upload: bootstrap
# alone at its root, built for the template's architecture, and the built template pointing at
# it (scripts/package-inspect.py).
#
#   scripts/package-check.sh              build and inspect; fails when cargo-lambda is missing
#   scripts/package-check.sh --if-present as above, but skips (with a message) when cargo-lambda
#                                         or zig is missing: `make test` uses it, and never
#                                         installs them (cargo-lambda takes about 20 minutes)
#   scripts/package-check.sh --inspect-only  only inspect what the last `sam build` left
#
# Installs the SAM CLI into .venv/ when missing (as scripts/lint-template.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

FUNCTION=CallHistoryFunction
ARCH=x86_64
BUILD_DIR=.aws-sam/build
mode="${1:-build}"

log() { echo "package-check: $*" >&2; }

has_zig() {
    command -v zig >/dev/null || { [ -x .venv/bin/python ] && .venv/bin/python -c "import ziglang" 2>/dev/null; }
}

if [ "$mode" = --if-present ]; then
    if ! command -v cargo-lambda >/dev/null; then
        log "skipped: cargo-lambda is not installed, so the Lambda package cannot be built here (\`make package-check\` installs it, about 20 minutes once)"
        exit 0
    fi
    if ! has_zig; then
        log "skipped: zig is not installed, which cargo-lambda links with (\`make package-check\` installs it into .venv/)"
        exit 0
    fi
fi

if [ "$mode" != --inspect-only ]; then
    if [ ! -x .venv/bin/sam ]; then
        log "installing the AWS SAM CLI into .venv/"
        [ -x .venv/bin/pip ] || python3 -m venv .venv
        .venv/bin/pip install --quiet aws-sam-cli
    fi
    log "sam build (cargo lambda build --release, for $ARCH)"
    # zig from .venv/ when it is there; samconfig.toml opts in to the rust-cargolambda build.
    PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 .venv/bin/sam build --beta-features >&2
fi

python3 scripts/package-inspect.py "$BUILD_DIR" "$FUNCTION" --arch "$ARCH"
