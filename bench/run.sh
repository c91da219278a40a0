#!/usr/bin/env bash
# Reproducible benchmarks for ama_pg (issues 3 and 4). One entry point:
#
#   bench/run.sh [--quick] [ledger|tokens|rls|api|all]      (default: all)
#
# Each suite runs in its own throwaway cluster (target/release/ama-harness exec), with the
# extension installed in RELEASE mode first (incremental). Every number is reported as a ratio
# against a baseline measured in the same run, interleaved over several short rounds (median).
# Results: a table per suite on stdout and in bench/results/<suite>.txt, raw numbers in
# bench/results/<suite>-raw.txt, pgbench / redis-benchmark logs under bench/results/.
#
# Knobs (environment): BENCH_SECS (seconds per run, default 10; --quick: 3), BENCH_ROUNDS
# (default 3; --quick: 1), CLIENTS (8), THREADS (2), BENCH_NTOKENS, BENCH_NTHREADS,
# BENCH_PER_THREAD, BENCH_SKIP_INSTALL=1 (skip the extension install and harness build).
set -euo pipefail
# The whole script is one function, parsed before it runs: a checkout touching this file mid-run
# cannot derail the running copy.
main() {

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
QUICK=0
SUITES=()
# `shim`: the shim/API suite (issues 5 and 6) has its own entry point, bench/shim/run.sh.
for a in "$@"; do
    if [ "$a" = shim ]; then exec "$ROOT/bench/shim/run.sh" $(printf '%s\n' "$@" | grep -x -- --quick || true); fi
done
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        ledger|tokens|rls|api) SUITES+=("$a") ;;
        all) SUITES+=(ledger tokens rls api) ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "usage: bench/run.sh [--quick] [ledger|tokens|rls|api|all]" >&2; exit 2 ;;
    esac
done
[ ${#SUITES[@]} -gt 0 ] || SUITES=(ledger tokens rls api)

if [ "$QUICK" = 1 ]; then
    export BENCH_SECS=${BENCH_SECS:-3} BENCH_ROUNDS=${BENCH_ROUNDS:-1}
    export BENCH_NTOKENS=${BENCH_NTOKENS:-10000} BENCH_NTHREADS=${BENCH_NTHREADS:-1000}
else
    export BENCH_SECS=${BENCH_SECS:-10} BENCH_ROUNDS=${BENCH_ROUNDS:-3}
fi
export BENCH_QUICK=$QUICK
export RESULTS=$ROOT/bench/results
PG_CONFIG=${AMA_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- prerequisites: only what is missing is installed --------------------------------------------
for tool in psql pgbench; do
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install postgresql-15 postgresql-contrib" >&2; exit 1; }
done
if [[ " ${SUITES[*]} " == *" ledger "* ]] && ! command -v redis-benchmark >/dev/null; then
    log "redis-server/redis-benchmark missing: installing with apt-get"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; fi
fi
SO=$("$PG_CONFIG" --pkglibdir)/ama_pg.so
install_release() {
    log "installing ama_pg (release) into $("$PG_CONFIG" --pkglibdir)"
    # unlink first: pgrx copies in place, which would crash a running server that mapped the old file
    if [ "$(id -u)" = 0 ]; then rm -f "$SO"; else sudo rm -f "$SO"; fi
    cargo pgrx install --release -p ama_pg --pg-config "$PG_CONFIG" >"$ROOT/target/bench-install.log" 2>&1 || {
        tail -30 "$ROOT/target/bench-install.log" >&2; exit 1; }
}
# A debug build of ama_pg.so is tens of MB, a release build under 10 MB.
so_size() { stat -c %s "$SO" 2>/dev/null || echo 0; }
looks_release() { local n; n=$(so_size); [ "$n" -gt 0 ] && [ "$n" -lt 20000000 ]; }
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    # Someone may have installed a debug build since the last run: always reinstall (incremental).
    install_release
    log "building the harness (release)"
    cargo build --release -q -p ama-tests
fi
HARNESS=$ROOT/target/release/ama-harness
[ -x "$HARNESS" ] || { echo "$HARNESS missing: cargo build --release -p ama-tests" >&2; exit 1; }

mkdir -p "$RESULTS"
rm -rf "$RESULTS/pgbench" "$RESULTS/redis"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet -- ama_pg sql core 2>/dev/null || echo ' (+ uncommitted changes in ama_pg/sql/core)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "postgres: $(pg_config --version 2>/dev/null || "$PG_CONFIG" --version)"
    echo "redis: $(redis-server --version 2>/dev/null | awk '{print $3}')"
    echo "settings: BENCH_SECS=$BENCH_SECS BENCH_ROUNDS=$BENCH_ROUNDS CLIENTS=${CLIENTS:-8} THREADS=${THREADS:-2} quick=$QUICK"
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt"
echo

status=0
for s in "${SUITES[@]}"; do
    log "suite $s"
    # other engineers may reinstall a debug build at any time: check right before each cluster starts
    if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ] && ! looks_release; then install_release; fi
    looks_release || log "WARNING: $SO ($(so_size) bytes) does not look like a release build"
    echo "$s: ama_pg.so $(so_size) bytes, $(stat -c %y "$SO" | cut -d. -f1)" >>"$RESULTS/machine.txt"
    : >"$RESULTS/$s.log"
    # progress (stderr) to the terminal and the log; the suite's table (stdout) to the log
    if ! { "$HARNESS" exec -- bash "$ROOT/bench/lib/$s.sh" 2>&1 1>>"$RESULTS/$s.log" | tee -a "$RESULTS/$s.log" >&2; }; then
        log "suite $s FAILED; see bench/results/$s.log"; tail -20 "$RESULTS/$s.log" >&2; status=1; continue
    fi
    echo
    cat "$RESULTS/$s.txt"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
exit $status
}
main "$@"
