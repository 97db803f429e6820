#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the test suites.
#
# The local Redshift stand-in executes SQL on a real PostgreSQL server, so the
# tests need one. This script runs a private cluster in a scratch folder, on its
# own port, listening on 127.0.0.1 only, so that the machine's own PostgreSQL
# cluster (if any) is never touched.
#
#   scripts/pg-test-cluster.sh start   create (if missing) and start the cluster;
#                                      the only line on stdout is DATABASE_URL=...
#   scripts/pg-test-cluster.sh url     print the bare URL
#   scripts/pg-test-cluster.sh status  exit 0 when the cluster is running
#   scripts/pg-test-cluster.sh stop    stop the cluster and delete its folder
#
# Typical use:
#   export "$(scripts/pg-test-cluster.sh start)"
#   cargo nextest run -p redshift-data-local
#
# Settings (environment):
#   PG_TEST_DIR   scratch folder   (default /tmp/call-history-pg)
#   PG_TEST_PORT  TCP port         (default 55432)
#   PG_BIN        server binaries  (default /usr/lib/postgresql/15/bin)
set -euo pipefail

PG_TEST_DIR="${PG_TEST_DIR:-/tmp/call-history-pg}"
PG_TEST_PORT="${PG_TEST_PORT:-55432}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

DATA_DIR="$PG_TEST_DIR/data"
SOCKET_DIR="$PG_TEST_DIR/socket"
LOG_FILE="$PG_TEST_DIR/server.log"
# Marks a folder as created by this script, so `stop` never deletes anything else.
MARKER="$PG_TEST_DIR/.pg-test-cluster"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_TEST_PORT/postgres"

log() { echo "pg-test-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# PostgreSQL refuses to run as root: when we are root, run its tools as the
# `postgres` OS user; otherwise run them as ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# CI starts from a fresh machine: install the server when it is missing.
ensure_binaries() {
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && return
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL 15 binaries not found in $PG_BIN; install postgresql-15 or set PG_BIN"
    log "installing postgresql-15 (binaries not found in $PG_BIN)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-upgrade postgresql-15 >&2
    [ -x "$PG_BIN/initdb" ] || die "postgresql-15 installed but $PG_BIN/initdb is still missing"
}

is_running() {
    [ -f "$DATA_DIR/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

create_cluster() {
    [ -f "$DATA_DIR/PG_VERSION" ] && return
    if [ -e "$PG_TEST_DIR" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$PG_TEST_DIR")" ]; then
        die "$PG_TEST_DIR exists, is not empty and was not created by this script; set PG_TEST_DIR"
    fi
    log "creating cluster in $PG_TEST_DIR"
    mkdir -p "$PG_TEST_DIR" "$SOCKET_DIR"
    touch "$MARKER"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$PG_TEST_DIR"
    fi
    as_owner "$PG_BIN/initdb" -D "$DATA_DIR" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
}

# Durability settings are off: the cluster is thrown away after the tests.
start_server() {
    log "starting on 127.0.0.1:$PG_TEST_PORT"
    local opts="-p $PG_TEST_PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1"
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    if ! as_owner "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 -o "$opts" start >/dev/null; then
        tail -n 20 "$LOG_FILE" >&2 || true
        die "the server did not start (log: $LOG_FILE)"
    fi
}

cmd_start() {
    ensure_binaries
    if is_running; then
        log "already running"
    else
        create_cluster
        start_server
    fi
    echo "DATABASE_URL=$DATABASE_URL"
}

cmd_stop() {
    [ -e "$PG_TEST_DIR" ] || { log "nothing to stop"; return; }
    [ -f "$MARKER" ] || die "$PG_TEST_DIR was not created by this script; not removing it"
    if is_running; then
        log "stopping"
        as_owner "$PG_BIN/pg_ctl" -D "$DATA_DIR" -w -m fast stop >/dev/null
    fi
    rm -rf "$PG_TEST_DIR"
    log "removed $PG_TEST_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) echo "$DATABASE_URL" ;;
    status) is_running ;;
    *)
        echo "usage: $0 start|stop|url|status" >&2
        exit 2
        ;;
esac
