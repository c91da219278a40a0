#!/usr/bin/env bash
# p99 under a frozen database (issue 12): "a frozen database gives fast 503s (p99 under the
# deadline plus a little), never a hang, and the shim recovers by itself".
#
#   bench/shim/frozen.sh
#   DEADLINES="1000 3000" FROZEN_CONNS=16 FROZEN_SECS=10 bench/shim/frozen.sh
#
# Builds (release) and installs ama_pg unless BENCH_SKIP_BUILD=1, starts a throwaway cluster
# (target/release/ama-harness exec), then for each --db-deadline-ms in DEADLINES a fresh shim
# (release, pool 16, otherwise defaults) and bench/shim/frozen.py: FROZEN_CONNS keep-alive TLS
# connections (default 16) each GET the read route (events.poll, 50 events) every
# FROZEN_INTERVAL_MS (50) for 5 s, then every process of the cluster (postmaster and backends) is
# SIGSTOPped for FROZEN_SECS (10) and SIGCONTed, and the load goes on for 10 s more. Reported per
# deadline: statuses during the freeze, p50/p99/max of the 503s against the deadline, Retry-After,
# requests over deadline + 1 s, the time from SIGCONT to the first 200, /health during the freeze,
# the shim's db_errors counters, and the connection attempts waiting in the postmaster's accept
# queue at SIGCONT. Results: bench/shim/results/frozen.txt (per-request lines in
# results/logs/frozen-<deadline>.raw). Installs nothing (python3 stdlib, curl, openssl, psql).
# Knobs: DEADLINES ("1000 3000"), FROZEN_CONNS, FROZEN_INTERVAL_MS, FROZEN_SECS, LOAD_MAX (2),
# LOAD_WAIT_SECS (180), BENCH_SKIP_BUILD=1.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

if [ "${1:-}" != --inside ]; then
    case ${1:-} in -h|--help) sed -n '2,20p' "$0"; exit 0 ;; esac
    bench_prepare
    machine_info >"$RESULTS/frozen.txt"
    cat "$RESULTS/frozen.txt" >&2
    "$ROOT/target/release/ama-harness" exec -- bash "$0" --inside
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/frozen.txt"
    cat "$RESULTS/frozen.txt"
    exit 0
fi

DEADLINES=${DEADLINES:-"1000 3000"}
CONNS=${FROZEN_CONNS:-16} INTERVAL=${FROZEN_INTERVAL_MS:-50} FREEZE=${FROZEN_SECS:-10}
trap bench_cleanup EXIT
bench_setup
OUT=$RESULTS/frozen.txt
echo "settings: DEADLINES='$DEADLINES' FROZEN_CONNS=$CONNS FROZEN_INTERVAL_MS=$INTERVAL FROZEN_SECS=$FREEZE" >>"$OUT"
port=$(free_port)
start_shim "$port" "$RESULTS/logs/frozen-setup-shim.log"
TID=$(new_thread_with_messages "$port" 1000)
stop_pid "$STARTED_PID"
READ="/api/v1/chat/threads/$TID/events?after_seq=500&limit=50"
for d in $DEADLINES; do
    port=$(free_port)
    start_shim "$port" "$RESULTS/logs/frozen-$d-shim.log" --db-deadline-ms "$d"
    pid=$STARTED_PID
    wait_quiet
    log "deadline $d ms: shim pid $pid; $CONNS connections, freeze ${FREEZE}s (load average $LOAD1)"
    {
        echo
        echo "## --db-deadline-ms $d (load average $LOAD1 at the start)"
        python3 "$SHIM_DIR/frozen.py" --port "$port" --cacert "$WORK/cert.pem" --path "$READ" --jwt "$JWT0" \
            --data "$PG_DATA" --pg-port "$PGPORT" --deadline-ms "$d" --conns "$CONNS" --interval-ms "$INTERVAL" \
            --warm 5 --freeze "$FREEZE" --after 10 --raw "$RESULTS/logs/frozen-$d.raw"
        echo "shim metrics after: $(metrics_of "$port" | grep -E "^ama_shim_(pool_size|pool_available|connections) " | tr '\n' ' ')"
        echo "shim metrics: $(metrics_of "$port" | grep -E '^ama_shim_db_errors_total' | tr '\n' ' ')"
        echo "shim log lines (WARN and above): $(wc -l <"$RESULTS/logs/frozen-$d-shim.log")"
    } | tee -a "$OUT" >&2
    stop_pid "$pid"
done
