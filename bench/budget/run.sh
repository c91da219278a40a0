#!/usr/bin/env bash
# The end-to-end performance budget (docs/performance.md): where one request's time goes.
#
#   bench/budget/run.sh [db] [shim] [pss]        (default: all three, in one throwaway cluster)
#
# db:   phases inside ama.request_json by subtraction (pgbench ladder, one client; db.sh)
# shim: TLS, Server-Timing phases, shim CPU, perf flame graphs of the shim and its backends (shim.sh)
# pss:  pg_stat_statements / track_functions per request under the same loads (pss.sh; restarts
#       the cluster, so it runs last)
# Uses what is built: target/release/ama-harness and ama-shim (cargo build --release -p ama-tests
# -p ama-shim), a release ama_pg installed where AMA_PG_CONFIG (default Debian's pg_config)
# points, inferno-flamegraph on PATH (cargo install inferno). BUDGET_INSTR_SHIM=/path/to/ama-shim
# built with bench/budget/shim-phases.patch adds the finer shim phases. Knobs: BUDGET_SECS (4),
# BUDGET_ROUNDS (db 5, shim 3), BUDGET_NCURL (200), BUDGET_PERF_SECS (10), BUDGET_PERF=0.
# Results: bench/budget/results/ (git-ignored).
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
PG_CONFIG=${AMA_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
export RESULTS=${RESULTS:-$DIR/results}
mkdir -p "$RESULTS"
PARTS=("$@"); [ ${#PARTS[@]} -gt 0 ] || PARTS=(db shim pss)
SO=$("$PG_CONFIG" --pkglibdir)/ama_pg.so
size=$(stat -c %s "$SO" 2>/dev/null || echo 0)
[ "$size" -gt 0 ] && [ "$size" -lt 20000000 ] || { echo "$SO missing or a debug build ($size bytes)" >&2; exit 1; }
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)"
    echo "nproc: $(nproc); cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "ama_pg.so: $SO ($size bytes); shim: $(sha256sum "$ROOT/target/release/ama-shim" | cut -c1-12)"
} >"$RESULTS/machine.txt"
cmd=""
# shim and pss run on db.sh's fixtures
[[ " ${PARTS[*]} " == *" db "* ]] || cmd="BUDGET_SETUP_ONLY=1 bash '$DIR/db.sh' && "
for p in "${PARTS[@]}"; do cmd+="bash '$DIR/$p.sh' && "; done
"$ROOT/target/release/ama-harness" exec -- bash -c "${cmd}true"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
