#!/usr/bin/env bash
# EXPERIMENT (not part of run.sh's suites): what calling ama.rate_limit costs in each SQL form,
# against SELECT 1 and the same key expression without the ledger, interleaved over rounds.
#   target/release/ama-harness exec -- bash bench/experiments/ledger_callforms.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$BENCH_DIR/results} BENCH_SECS=${BENCH_SECS:-5} BENCH_ROUNDS=${BENCH_ROUNDS:-3}
source "$BENCH_DIR/lib/common.sh"
RAW=$RESULTS/ledger-callforms-raw.txt
: >"$RAW"
q -f "$BENCH_DIR/ledger/setup.sql"
T=$(mktemp -d)
echo 'SELECT 1;' >"$T/select1.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT 'ip:' || :k;" >"$T/keyexpr.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT allowed FROM ama.rate_limit('bench', 'ip:' || :k);" >"$T/from_clause.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT (ama.rate_limit('bench', 'ip:' || :k)).allowed;" >"$T/target_list.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT * FROM ama.rate_limit('bench', 'ip:' || :k);" >"$T/from_star.sql"
VARIANTS=(select1 keyexpr from_clause target_list from_star)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        res=$(pgbench_run "callform_$v" "$T/$v.sql"); read -r tps lat <<<"$res"
        echo "$r $v tps $tps" >>"$RAW"
        log "round $r $v: $tps tps"
    done
done
{
    echo "## ama.rate_limit call forms, 100k keys, $CLIENTS clients, ${BENCH_SECS}s x $BENCH_ROUNDS rounds (median of per-round ratios)"
    echo
    echo "| variant | median TPS | / SELECT 1 |"
    echo "|---|---:|---:|"
    for v in "${VARIANTS[@]}"; do
        echo "| $v | $(fmt "$(get_vals "$RAW" "$v" tps | median)" 0) | $(fmt "$(ratio_median "$RAW" "$v" select1 tps)" 2) |"
    done
} | tee "$RESULTS/ledger-callforms.txt"
