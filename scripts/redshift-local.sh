#!/usr/bin/env bash
# Runs the local Redshift Data API and CloudWatch stand-in until Ctrl-C (`make redshift-local`).
#
# It needs PostgreSQL: unless DATABASE_URL points at a server, it starts the throwaway cluster of
# scripts/pg-test-cluster.sh (port 55432, /tmp/call-history-pg) and, when the stand-in stops,
# stops that cluster again, but only if this script started it (KEEP_PG=1 keeps it). The
# warehouse's data lives in that cluster, so it lasts as long as the stand-in runs.
#
# Ports: REDSHIFT_LOCAL_PORT (Data API, 8100), REDSHIFT_LOCAL_CLOUDWATCH_PORT (8101),
# REDSHIFT_LOCAL_CONTROL_PORT (8102); arguments go to the stand-in (see --help).
#
# It is as strict as AWS by default: the Data API's quotas (REDSHIFT_LOCAL_QUOTAS, default `aws`;
# `off` lifts them), 200 active statements (REDSHIFT_LOCAL_ACTIVE_STATEMENTS) and SERIALIZABLE
# isolation (REDSHIFT_LOCAL_ISOLATION=snapshot for SNAPSHOT ISOLATION). AWS's latency is opt-in:
# REDSHIFT_LOCAL_ROUND_TRIP_MS added to each call and REDSHIFT_LOCAL_STATEMENT_MS for each SQL
# statement, those of a batch included (e.g. 10 and 150), or the flags of the same names.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build before starting anything, so that a failed build leaves nothing running. A debug build:
# the one `make run` and `make test` already made, and fast enough for a local warehouse.
cargo build --quiet -p redshift-data-local

started_pg=false
if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/pg-test-cluster.sh status >/dev/null 2>&1; then
        started_pg=true
    fi
    export "$(scripts/pg-test-cluster.sh start)"
fi
stop_what_we_started() {
    if [ "$started_pg" = true ] && [ -z "${KEEP_PG:-}" ]; then
        scripts/pg-test-cluster.sh stop
    fi
}
trap stop_what_we_started EXIT

# Not `exec`: this shell must outlive the stand-in to stop PostgreSQL after it.
cargo run --quiet -p redshift-data-local -- "$@"
