#!/usr/bin/env bash
# Benchmarks against the spec's budgets; results in bench/results/latest.md (commit them).
# In-process and Redshift-path timings come from bench/service.rs; HTTP throughput from wrk
# against the release binary on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_OUT:-bench/results/latest.md}"
export BENCH_OUT="$OUT"

started_pg=false
if [ -z "${DATABASE_URL:-}" ]; then
    scripts/pg-test-cluster.sh status >/dev/null 2>&1 || started_pg=true
    export "$(scripts/pg-test-cluster.sh start)"
fi
trap '[ "$started_pg" = true ] && scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT

cargo build --release --bin call-history
export BENCH_BINARY="$PWD/target/release/call-history"
RUST_LOG=off cargo bench --bench service
# 32 clients while the warehouse misbehaves, then an audit of what it holds.
RUST_LOG=off cargo bench --bench chaos
# Replay throughput, the backup on its own and shared (EFS mode).
RUST_LOG=off cargo bench --bench journal

if ! command -v wrk >/dev/null; then
    echo "installing wrk for the HTTP throughput benchmark" >&2
    apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi

# A 10,000-call database for the server, made by the in-process benchmark's own seeding.
tmp="$(mktemp -d)"
PORT=18100 SQLITE_PATH="$tmp/http.db" RUST_LOG=warn "$BENCH_BINARY" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"; [ "$started_pg" = true ] && scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:18100/db/healthz" >/dev/null && break; sleep 0.05; done
python3 - "$tmp/http.db" <<'PY'
import sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
rows = [(f"http-{i:06}", f"Contact {i % 500}", f"Account {i % 50}",
         (now - datetime.timedelta(seconds=37 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), i % 1800,
         "connected", f"Benchmark call number {i}") for i in range(10000)]
db.executemany("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r + (r[3],) for r in rows])
db.commit()
PY

{
    echo
    echo "## Local HTTP throughput on SQLite (release binary, wrk: 2 threads, 64 connections, 10 s, same 2 cores)"
    echo
    echo "| endpoint | requests/s | p50 latency | p99 latency | budget |"
    echo "|---|---|---|---|---|"
} >> "$OUT"
for path in "/api/calls/history?limit=50" "/db/status"; do
    result="$(wrk -t2 -c64 -d10s --latency "http://127.0.0.1:18100$path")"
    echo "$result"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$result")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$result")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$result")"
    echo "| \`GET $path\` | $rps | $p50 | $p99 | ≥ 10,000 requests/s |" >> "$OUT"
done
echo "results written to $OUT"
