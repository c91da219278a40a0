#!/usr/bin/env bash
# EXPERIMENT (not part of run.sh's suites): measures candidate rewrites of the messages read
# policy against the shipped one and the owner baseline, on the same fixtures as the rls suite.
# One cluster; the policy is altered between runs (ALTER POLICY applies to the next statement),
# variants interleaved over rounds. Variants: shipped, setof, percaps, array, and array_only
# (array with the OR'ed senders_read_own_messages policy dropped: run it alone or last, e.g.
# ALT_VARIANTS="array_only").
#   target/release/ama-harness exec -- bash bench/experiments/rls_policy_alternatives.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$BENCH_DIR/results} BENCH_SECS=${BENCH_SECS:-10} BENCH_ROUNDS=${BENCH_ROUNDS:-3}
source "$BENCH_DIR/lib/common.sh"
D=$BENCH_DIR/rls
RAW=$RESULTS/rls-alternatives-raw.txt
: >"$RAW"
NTHREADS=${BENCH_NTHREADS:-10000}; PER_THREAD=${BENCH_PER_THREAD:-100}; NUSERS=100
VARS=(-D nthreads="$NTHREADS" -D nusers="$NUSERS")
q -v nthreads="$NTHREADS" -v per_thread="$PER_THREAD" -v nusers="$NUSERS" -f "$D/setup.sql" >/dev/null
SHIPPED_USING=$(q -c "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = 'readers_read_messages'")
q -f "$BENCH_DIR/experiments/rls_policy_alternatives.sql" >/dev/null
: >"$RESULTS/rls-alternatives-explain.txt"
ALT=(${ALT_VARIANTS:-shipped setof percaps array})
for v in "${ALT[@]}"; do
    [ "$v" = shipped ] && q -c "ALTER POLICY readers_read_messages ON ama.messages USING ($SHIPPED_USING)"
    [ "$v" = setof ] && q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id IN (SELECT ama._bench_readable_threads()))"
    [ "$v" = percaps ] && q -c "ALTER POLICY readers_read_messages ON ama.messages USING ('read' = ANY (coalesce(ama._my_caps(thread_id), '{}')))"
    [ "$v" = array ] && q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id = ANY ((SELECT ama._bench_readable_thread_array())::uuid[]))"
    [ "$v" = array_only ] && q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id = ANY ((SELECT ama._bench_readable_thread_array())::uuid[]))" -c "DROP POLICY IF EXISTS senders_read_own_messages ON ama.messages"
    [ "$(q -f "$D/check.sql")" = "50 0" ] || { log "variant $v: sanity check failed"; exit 1; }
    { echo "=== policy variant: $v"; q -f "$D/explain.sql" 2>&1 | sed -n '/under RLS/,/as the owner/p'; } >>"$RESULTS/rls-alternatives-explain.txt"
done
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in owner "${ALT[@]}"; do
        script=$D/rls.sql
        case $v in
            owner) script=$D/owner.sql ;;
            shipped) q -c "ALTER POLICY readers_read_messages ON ama.messages USING ($SHIPPED_USING)" ;;
            setof) q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id IN (SELECT ama._bench_readable_threads()))" ;;
            percaps) q -c "ALTER POLICY readers_read_messages ON ama.messages USING ('read' = ANY (coalesce(ama._my_caps(thread_id), '{}')))" ;;
            array_only) q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id = ANY ((SELECT ama._bench_readable_thread_array())::uuid[]))" -c "DROP POLICY IF EXISTS senders_read_own_messages ON ama.messages" ;;
            array) q -c "ALTER POLICY readers_read_messages ON ama.messages USING (thread_id = ANY ((SELECT ama._bench_readable_thread_array())::uuid[]))" ;;
        esac
        res=$(pgbench_run "alt_$v" "$script" "${VARS[@]}"); read -r tps lat <<<"$res"
        qlat=$(stmt_latency "$(last_log "alt_$v")" "FROM ama.messages")
        echo "$r $v tps $tps" >>"$RAW"; echo "$r $v query_ms $qlat" >>"$RAW"
        log "round $r $v: $tps tps, query $qlat ms"
    done
done
{
    echo "## RLS policy alternatives (experiment): query statement latency vs owner, median of per-round ratios"
    echo
    echo "| messages read policy | query ms | / owner | TPS |"
    echo "|---|---:|---:|---:|"
    for v in owner "${ALT[@]}"; do
        echo "| $v | $(fmt "$(get_vals "$RAW" "$v" query_ms | median)" 3) | $(fmt "$(ratio_median "$RAW" "$v" owner query_ms)" 2) | $(fmt "$(get_vals "$RAW" "$v" tps | median)" 0) |"
    done
} | tee "$RESULTS/rls-alternatives.txt"
