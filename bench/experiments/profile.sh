#!/usr/bin/env bash
# EXPERIMENT (not part of run.sh's suites): CPU profile of the server backends while pgbench runs
# one benchmark script, to see where the time goes. Needs perf.
#   target/release/ama-harness exec -- bash bench/experiments/profile.sh ledger|tokens
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$BENCH_DIR/results} BENCH_SECS=${BENCH_SECS:-8}
source "$BENCH_DIR/lib/common.sh"
what=${1:-ledger}
case $what in
    ledger) q -f "$BENCH_DIR/ledger/setup.sql" >/dev/null; script=$BENCH_DIR/ledger/ledger_100k.sql; args=() ;;
    tokens) q -v ntokens=10000 -f "$BENCH_DIR/tokens/setup.sql" >/dev/null
            q -c "UPDATE ama.agent_tokens SET last_used_at = now()" >/dev/null
            script=$BENCH_DIR/tokens/ama.sql; args=(-D ntokens=10000) ;;
    *) echo "usage: profile.sh ledger|tokens" >&2; exit 2 ;;
esac
mkdir -p "$RESULTS"
pgbench_run "profile_$what" "$script" "${args[@]}" >/dev/null &
pid=$!
sleep 2
perf record -q -F 997 -a -g -o "$RESULTS/perf-$what.data" -- sleep 4 >/dev/null 2>&1
wait $pid
perf report -i "$RESULTS/perf-$what.data" --comm postgres --no-children --sort symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -40 >"$RESULTS/perf-$what.txt"
perf report -i "$RESULTS/perf-$what.data" --comm postgres --children --sort symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -60 >"$RESULTS/perf-$what-children.txt"
cat "$RESULTS/perf-$what.txt"
