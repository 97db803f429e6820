#!/usr/bin/env bash
# The status page (GET /) in a real browser: headless Chromium drives the real service, running
# against the local Redshift stand-in on a scratch PostgreSQL database, and checks what a person
# sees. Two more services on SQLite alone show the page as a deployed stack's function serves it
# when the API is public (API_AUTHORIZATION=PUBLIC: no call data) and behind a JWT authorizer
# (API_AUTHORIZATION=JWT: the shell loads, the data needs the token). Screenshots of each state
# go to target/browser/.
#
# Installs what it needs when it is missing: Debian's chromium (and an emoji font, so that the
# screenshots show the badges), and Playwright for Python into .venv/. Playwright drives the
# system's Chromium; it never downloads a browser of its own.
#
# Uses DATABASE_URL when set (scripts/test.sh sets it); otherwise starts the throwaway cluster of
# scripts/pg-test-cluster.sh and stops it again afterwards if it started it.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=target/browser
CHROMIUM=/usr/bin/chromium
PLAYWRIGHT_REQUIREMENT='playwright>=1.45,<2'
ADMIN_TOKEN="browser-test-admin-token-$$"

log() { echo "browser: $*" >&2; }
die() { log "$*"; exit 1; }

ensure_debian_packages() {
    local missing=()
    [ -x "$CHROMIUM" ] || missing+=(chromium)
    dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (install them, or run as root)"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_playwright() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    if ! .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
        log "installing Playwright for Python into .venv/"
        .venv/bin/pip install -q "$PLAYWRIGHT_REQUIREMENT" >&2
    fi
}

# Free TCP ports on the loopback interface, chosen by the kernel.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
for s in sockets:
    s.close()
EOF
}

wait_for_http() {
    local url=$1 name=$2 pid=$3
    for _ in $(seq 1 150); do
        curl -s -o /dev/null "$url" && return
        kill -0 "$pid" 2>/dev/null || die "$name exited while starting (log in $OUT)"
        sleep 0.2
    done
    die "$name did not answer on $url within 30 s"
}

started_pg=false
scratch_db=""
work=""
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$scratch_db" ]; then
        psql "$DATABASE_URL" -q -c "DROP DATABASE IF EXISTS \"$scratch_db\"" >/dev/null 2>&1 || true
    fi
    if [ "$started_pg" = true ] && [ -z "${KEEP_PG:-}" ]; then
        scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true
    fi
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT

ensure_debian_packages
ensure_playwright

if [ -z "${DATABASE_URL:-}" ]; then
    scripts/pg-test-cluster.sh status >/dev/null 2>&1 || started_pg=true
    export "$(scripts/pg-test-cluster.sh start)"
fi

command -v psql >/dev/null || die "psql not found (it comes with postgresql-15; scripts/pg-test-cluster.sh installs it)"

log "building the service and the Redshift stand-in"
# Each package by name: at the workspace root a bare `cargo build` builds only the service.
cargo build --quiet -p call-history --bin call-history
cargo build --quiet -p redshift-data-local --bin redshift-data-local

mkdir -p "$OUT"
work=$(mktemp -d)
scratch_db="browser_$(date +%s)_$$"
psql "$DATABASE_URL" -q -c "CREATE DATABASE \"$scratch_db\"" >/dev/null
base_url="${DATABASE_URL%%\?*}"
scratch_url="${base_url%/*}/$scratch_db${DATABASE_URL#"$base_url"}"

read -r data_api_port cloudwatch_port control_port app_port public_port jwt_port < <(free_ports 6)

# The function as a deployed stack runs it, in the two modes the local server does not show:
# SQLite only, no token of its own, told the mode the template would give it.
start_mode() { # name, port, VAR=value...
    local name=$1 port=$2
    shift 2
    env "$@" PORT="$port" SQLITE_PATH="$work/$name.db" RUST_LOG=info \
        target/debug/call-history >"$OUT/call-history-$name.log" 2>&1 &
    pids+=($!)
    wait_for_http "http://127.0.0.1:$port/db/healthz" "the service ($name)" "${pids[-1]}"
}
start_mode public "$public_port" API_AUTHORIZATION=PUBLIC
start_mode jwt "$jwt_port" API_AUTHORIZATION=JWT JWT_ADMIN_SCOPE=call-history/admin

target/debug/redshift-data-local --database-url "$scratch_url" --port "$data_api_port" \
    --cloudwatch-port "$cloudwatch_port" --control-port "$control_port" >"$OUT/redshift-data-local.log" 2>&1 &
pids+=($!)
wait_for_http "http://127.0.0.1:$control_port/operations" "the Redshift stand-in" "${pids[-1]}"

# The service as `make run-redshift-local` runs it, on its own ports, files and token.
export REDSHIFT_CLUSTER_ID=local-cluster REDSHIFT_DATABASE=dev REDSHIFT_DB_USER=dev
export AWS_ENDPOINT_URL_REDSHIFT_DATA="http://127.0.0.1:$data_api_port"
export AWS_ENDPOINT_URL_CLOUDWATCH="http://127.0.0.1:$cloudwatch_port"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
export SQLITE_PATH="$work/local_crm.db" PORT="$app_port" ADMIN_TOKEN RUST_LOG=info
target/debug/call-history migrate >"$OUT/migrate.log" 2>&1 || die "migrate failed (log: $OUT/migrate.log)"
target/debug/call-history >"$OUT/call-history.log" 2>&1 &
pids+=($!)
wait_for_http "http://127.0.0.1:$app_port/db/status" "the service" "${pids[-1]}"

log "driving $CHROMIUM against http://127.0.0.1:$app_port/"
.venv/bin/python tests/browser/status_page.py \
    --base-url "http://127.0.0.1:$app_port/" \
    --admin-token "$ADMIN_TOKEN" \
    --control-url "http://127.0.0.1:$control_port" \
    --public-url "http://127.0.0.1:$public_port/" \
    --jwt-url "http://127.0.0.1:$jwt_port/" \
    --chromium "$CHROMIUM" \
    --out "$OUT"
