#!/usr/bin/env bash
# RLS-overhead benchmark (issue 3). Runs inside `ama-harness exec`; see bench/run.sh.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
D=$BENCH_DIR/rls
RAW=$RESULTS/rls-raw.txt
OUT=$RESULTS/rls.txt
: >"$RAW"
NTHREADS=${BENCH_NTHREADS:-10000}
PER_THREAD=${BENCH_PER_THREAD:-100}
NUSERS=100
VARS=(-D nthreads="$NTHREADS" -D nusers="$NUSERS")

log "rls: loading $((NTHREADS * PER_THREAD)) messages over $NTHREADS threads"
t0=$(date +%s)
q -v nthreads="$NTHREADS" -v per_thread="$PER_THREAD" -v nusers="$NUSERS" -f "$D/setup.sql" >/dev/null
log "rls: loaded in $(( $(date +%s) - t0 ))s"
MSGS=$(q -c "SELECT count(*) FROM ama.messages")
SIZE=$(q -c "SELECT pg_size_pretty(pg_total_relation_size('ama.messages'))")
q -f "$D/explain.sql" >"$RESULTS/rls-explain.txt" 2>&1
# sanity: the agent sees its thread's 50 latest messages and nothing of another agent's thread
seen=$(q -f "$D/check.sql")
[ "$seen" = "50 0" ] || { log "RLS sanity check failed: agent sees '$seen' (want '50 0')"; exit 1; }

for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in owner rls; do
        res=$(pgbench_run "rls_$v" "$D/$v.sql" "${VARS[@]}"); read -r tps lat <<<"$res"
        qlat=$(stmt_latency "$(last_log "rls_$v")" "FROM ama.messages")
        echo "$r $v tps $tps" >>"$RAW"; echo "$r $v lat_ms $lat" >>"$RAW"; echo "$r $v query_ms $qlat" >>"$RAW"
        log "round $r $v: $tps tps, $lat ms/txn, query $qlat ms"
    done
done

med() { get_vals "$RAW" "$1" "$2" | median; }
{
    echo "## RLS overhead (issue 3): $MSGS messages ($SIZE) over $NTHREADS threads, $CLIENTS clients, -j $THREADS, ${BENCH_SECS}s x $BENCH_ROUNDS rounds, median"
    echo
    echo "| variant | TPS | txn latency ms | query statement ms (pgbench -r) |"
    echo "|---|---:|---:|---:|"
    for v in owner rls; do
        echo "| $v | $(fmt "$(med "$v" tps)" 0) | $(fmt "$(med "$v" lat_ms)" 3) | $(fmt "$(med "$v" query_ms)" 3) |"
    done
    x=$(ratio_median "$RAW" rls owner query_ms)
    y=$(ratio_median "$RAW" owner rls tps)
    echo
    echo "| ratio (RLS / owner, slower = bigger) | value | goal | verdict |"
    echo "|---|---:|---:|---|"
    echo "| query statement latency | $(fmt "$x" 2) | <= 1.2 | $(verdict "$x" "<=" 1.2) |"
    echo "| whole transaction (1/TPS) | $(fmt "$y" 2) | <= 1.2 | $(verdict "$y" "<=" 1.2) |"
    echo
    echo "Plans: bench/results/rls-explain.txt"
} >"$OUT"
cat "$OUT"
