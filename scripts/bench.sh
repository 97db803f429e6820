#!/usr/bin/env bash
# Benchmarks against the spec's budgets; results in bench/results/latest.md (commit them).
# In-process, cold-start and Redshift-path timings come from bench/service.rs; HTTP throughput
# and the per-request cost on one pinned core from wrk against the release binary on SQLite.
#
#   scripts/bench.sh          everything
#   scripts/bench.sh pinned   only the pinned-core HTTP measurement (Markdown on stdout)
#
# BENCH_PORT (default 18100) and the next port are the servers' ports; BENCH_PINNED_ROUNDS
# (default 7) and BENCH_PINNED_SECONDS (default 3) size the pinned measurement; BENCH_BINARY
# measures another build of the service than the one `cargo build --release` makes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_OUT:-bench/results/latest.md}"
export BENCH_OUT="$OUT"
PORT="${BENCH_PORT:-18100}"
PINNED_PORT=$((PORT + 1))
ROUNDS="${BENCH_PINNED_ROUNDS:-7}"
SECONDS_EACH="${BENCH_PINNED_SECONDS:-3}"
only_pinned=false
[ "${1:-}" = pinned ] && only_pinned=true

tmp="$(mktemp -d)"
started_pg=false
servers=()
cleanup() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
    if [ "$started_pg" = true ]; then scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
    echo "installing wrk for the HTTP benchmarks" >&2
    apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi

cargo build --release --bin call-history
# BENCH_BINARY measures another build (an older one, to compare) instead.
export BENCH_BINARY="${BENCH_BINARY:-$PWD/target/release/call-history}"

if [ "$only_pinned" = false ]; then
    # Fake credentials and region for the real AWS SDK clients that talk to the local stand-ins
    # (as scripts/test.sh sets them); without them the SDK looks for an instance role.
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-bench}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-bench}"
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    unset AWS_PROFILE AWS_SESSION_TOKEN
    if [ -z "${DATABASE_URL:-}" ]; then
        scripts/pg-test-cluster.sh status >/dev/null 2>&1 || started_pg=true
        export "$(scripts/pg-test-cluster.sh start)"
    fi
    RUST_LOG=off cargo bench --bench service
    # 32 clients while the warehouse misbehaves, then an audit of what it holds.
    RUST_LOG=off cargo bench --bench chaos
    # Replay throughput, the backup on its own and shared (EFS mode).
    RUST_LOG=off cargo bench --bench journal
    # A fleet of environments (processes of the release binary) against one metered warehouse.
    RUST_LOG=off cargo bench --bench fleet
fi

# Starts the release binary on the benchmark database in the background: port, then any
# command to run it under (taskset).
start_server() {
    local port="$1"
    shift
    PORT="$port" SQLITE_PATH="$tmp/http.db" RUST_LOG=warn "$@" "$BENCH_BINARY" >/dev/null 2>&1 &
    servers+=("$!")
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/db/healthz" >/dev/null && return 0
        sleep 0.05
    done
    echo "the server on port $port did not start" >&2
    return 1
}

stop_servers() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    servers=()
}

# A 10,000-call database for the server (the 15 sample calls besides): the server creates it,
# then the calls go in beside it, and the server starts again on it, writing their answers as it
# does for calls added by hand.
start_server "$PORT"
python3 - "$tmp/http.db" <<'PY'
import sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
rows = [(f"http-{i:06}", f"Contact {i % 500}", f"Account {i % 50}",
         (now - datetime.timedelta(seconds=37 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), i % 1800,
         "connected", f"Benchmark call number {i}") for i in range(10000)]
db.executemany("INSERT OR IGNORE INTO calls (id, contact_name, account_name, started_at, duration_seconds, "
               "outcome, notes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r + (r[3],) for r in rows])
db.commit()
PY
stop_servers
start_server "$PORT"

if [ "$only_pinned" = false ]; then
    {
        echo
        echo "## Local HTTP throughput on SQLite (release binary, wrk: 2 threads, 64 connections, 10 s, same 2 cores)"
        echo
        echo "| endpoint | requests/s | p50 latency | p99 latency | budget |"
        echo "|---|---|---|---|---|"
    } >> "$OUT"
    # One row of the table: label, budget, then wrk's options and the path.
    throughput_row() {
        local label="$1" budget="$2" path="${*: -1}"
        local result
        result="$(wrk "${@:3:$#-3}" --latency "http://127.0.0.1:$PORT$path")"
        echo "$result"
        local rps p50 p99
        rps="$(awk '/Requests\/sec/ {print $2}' <<<"$result")"
        p50="$(awk '$1=="50%" {print $2}' <<<"$result")"
        p99="$(awk '$1=="99%" {print $2}' <<<"$result")"
        echo "| $label | $rps | $p50 | $p99 | $budget |" >> "$OUT"
    }
    for path in "/api/calls/history?limit=50" "/db/status"; do
        throughput_row "\`GET $path\`" "≥ 10,000 requests/s" -t2 -c64 -d10s "$path"
    done
    # One client at a time: what a single history request of 500 rows costs over HTTP.
    path="/api/calls/history?limit=500"
    throughput_row "\`GET $path\`, one connection" "p50 < 0.5 ms" -t1 -c1 -d5s "$path"
fi
stop_servers

# ---- What one request costs on one core ---------------------------------------------------
# The server alone on core 1, wrk alone on core 0, so that they do not fight for a core. Two
# figures per endpoint: requests per second, and the server's own CPU time per request (from
# /proc/<pid>/task/*/schedstat), which other processes on the machine disturb far less.
# Endpoints take turns in each round so that the machine's noise hits them alike; ratios to
# /db/status are taken within each round and their median reported.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ns += $1} END {printf "%.0f\n", ns}'
}

pinned_section() {
    if [ "$(nproc)" -lt 2 ]; then
        echo
        echo "## Per-request cost on one pinned core"
        echo
        echo "Skipped: this machine has fewer than 2 cores."
        return 0
    fi
    start_server "$PINNED_PORT" taskset -c 1
    local server="${servers[0]}"
    local paths=("/db/status" "/api/calls/http-000001" "/api/calls/history?limit=50" "/api/calls/history?limit=500")
    local samples="$tmp/pinned.txt"
    : >"$samples"
    for path in "${paths[@]}"; do # warm-up: caches, prepared statements, the allocator
        taskset -c 0 wrk -t1 -c8 -d1s "http://127.0.0.1:$PINNED_PORT$path" >/dev/null
    done
    for round in $(seq "$ROUNDS"); do
        for path in "${paths[@]}"; do
            local before after result
            before="$(cpu_ns "$server")"
            result="$(taskset -c 0 wrk -t1 -c8 -d"${SECONDS_EACH}s" "http://127.0.0.1:$PINNED_PORT$path")"
            after="$(cpu_ns "$server")"
            local rps requests
            rps="$(awk '/Requests\/sec/ {print $2}' <<<"$result")"
            requests="$(awk '/requests in/ {print $1}' <<<"$result")"
            echo "$round $path $rps $requests $((after - before))" >>"$samples"
            echo "round $round: GET $path: $rps requests/s" >&2
        done
    done
    stop_servers
    python3 - "$samples" "$ROUNDS" "$SECONDS_EACH" "$(uptime | sed 's/.*load average: //')" <<'PY'
import collections, statistics, sys
samples, rounds, seconds, load = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rps = collections.defaultdict(dict)
cpu = collections.defaultdict(dict)  # µs of server CPU per request
for line in open(samples):
    round_, path, per_second, requests, cpu_ns = line.split()
    rps[round_][path] = float(per_second)
    cpu[round_][path] = int(cpu_ns) / 1000 / int(requests)
paths = list(next(iter(rps.values())))
status = paths[0]
names = {
    "/db/status": "`GET /db/status`",
    "/api/calls/history?limit=50": "`GET /api/calls/history?limit=50`",
    "/api/calls/history?limit=500": "`GET /api/calls/history?limit=500`",
}
budgets = {"/api/calls/history?limit=50": 2.5, "/api/calls/history?limit=500": 8.0}
def median_ratio(table, path, inverse):
    ratios = [(d[status] / d[path]) if inverse else (d[path] / d[status]) for d in table.values()]
    return statistics.median(ratios), ratios
print()
print("## Per-request cost on one pinned core (release binary, SQLite, 10,015 calls)")
print()
print(f"Server alone on core 1, `wrk -t1 -c8` alone on core 0 (`taskset`); {rounds} rounds of "
      f"{seconds} s per endpoint, endpoints taking turns within each round; medians. Ratios are "
      "taken within each round (same machine state), then their median. *CPU per request* is the "
      "server's own CPU time (all its threads, from `/proc/<pid>/task/*/schedstat`) over the "
      "requests wrk completed: what other processes on the machine disturb least. Server log "
      f"level `warn`. Load average at the end: {load}. What the time goes to, and the figures "
      "before history was written straight from the rows: `bench/results/history-profile.md`.")
print()
print("| request | requests/s | CPU per request | ÷ status's (CPU) | ÷ status's (requests/s) | budget |")
print("|---|---|---|---|---|---|")
for path in paths:
    per_second = statistics.median(d[path] for d in rps.values())
    cost = statistics.median(d[path] for d in cpu.values())
    by_cpu, _ = median_ratio(cpu, path, inverse=False)
    by_rps, _ = median_ratio(rps, path, inverse=True)
    budget = budgets.get(path)
    verdict = ""
    if budget is not None:
        met = by_cpu <= budget and by_rps <= budget
        verdict = f"≤ {budget:g}× ({'met' if met else 'NOT met'})"
    name = names.get(path, "`GET /api/calls/{id}`")
    print(f"| {name} | {per_second:,.0f} | {cost:.1f} µs | {by_cpu:.2f}× | {by_rps:.2f}× | {verdict} |")
print()
print("Ratios of each round (CPU), in order:")
print()
for path in paths[1:]:
    _, ratios = median_ratio(cpu, path, inverse=False)
    print(f"- {names.get(path, '`GET /api/calls/{id}`')}: " + ", ".join(f"{r:.2f}" for r in ratios))
PY
}

if [ "$only_pinned" = true ]; then
    pinned_section
else
    pinned_section >>"$OUT"
    echo "results written to $OUT"
fi
