#!/usr/bin/env bash
# In-situ times of the statements and functions that one request runs (docs/performance.md). Runs
# inside `ama-harness exec` after db.sh (it reuses db.sh's fixtures and $RESULTS/scripts):
# restarts the throwaway cluster with pg_stat_statements (track = all: nested statements too) and
# track_functions = all and track_planning = on, then for each load (the poll, the agent send through ama.request_json,
# one client, PSS_SECS) resets the counters, runs it, and prints the statements and functions
# per request (PSS_GROW=N adds N messages to another thread first). Timing everything costs time itself: these figures say where the time goes, the
# ladder of db.sh says how much. Output: $RESULTS/pss.txt.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
PGBIN=$(dirname "$(command -v pgbench)")
SECS=${PSS_SECS:-8}
WORK=$RESULTS/scripts
OUT=$RESULTS/pss.txt

data=$(q -c 'SHOW data_directory'); dir=$(dirname "$data")
opts=$(cut -d' ' -f2- "$data/postmaster.opts")
opts=${opts//shared_preload_libraries=ama_pg/shared_preload_libraries=ama_pg,pg_stat_statements}
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u "$(stat -c %U "$data")" -- "$@"; else "$@"; fi; }
log "pss: restarting the cluster with pg_stat_statements"
as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
as_owner "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start -o "$opts" >/dev/null
q -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "ALTER SYSTEM SET track_functions = 'all'" \
  -c "ALTER SYSTEM SET pg_stat_statements.track_utility = off" \
  -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" >/dev/null
q -c "SELECT pg_reload_conf()" >/dev/null
q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
# PSS_GROW=N: N more messages in another thread first (the table's size decides whether the poll's
# statement keeps a generic plan or is planned on every call)
if [ "${PSS_GROW:-0}" -gt 0 ]; then
    log "pss: $PSS_GROW more messages in thread f003, then ANALYZE"
    q -c "INSERT INTO ama.messages (thread_id, sender_id, role, content)
          SELECT '00000000-0000-4000-8000-00000000f003', 'agent:00000000-0000-4000-a000-0000000000a1', 'assistant', 'grow ' || g
            FROM generate_series(1, $PSS_GROW) g" -c "ANALYZE ama.messages" >/dev/null
fi
: >"$OUT"
for load in p_request s_request p_noop s_noop; do
    q -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" >/dev/null
    log "pss: $load, ${SECS}s, one client"
    res=$("$PGBIN/pgbench" -n -M prepared -U ama_authenticator -c 1 -j 1 -T "$SECS" -f "$WORK/$load.sql" -D after=500 2>&1)
    n=$(awk '/^number of transactions actually processed/{print $6; exit}' <<<"$res")
    lat=$(awk '/^latency average = /{print $4; exit}' <<<"$res")
    sleep 1   # the backend's function counters are flushed when it exits
    {
        echo "## $load: $n requests, mean latency $lat ms (timed; load $(cut -d' ' -f1-3 /proc/loadavg))"
        echo
        echo "| statement | calls per request | mean µs per call | µs per request | plans per call | mean µs per plan |"
        echo "|---|---:|---:|---:|---:|---:|"
        q -F $'\x1f' -c "SELECT round(calls::numeric / $n, 2), round((total_exec_time / calls * 1000)::numeric, 1),
                            round((total_exec_time / $n * 1000)::numeric, 1),
                            left(regexp_replace(query, '\s+', ' ', 'g'), 160),
                            round(plans::numeric / calls, 2), round((total_plan_time / greatest(plans, 1) * 1000)::numeric, 1)
                       FROM pg_stat_statements WHERE calls >= $n / 2 AND query !~* 'pg_stat_statements_reset|pg_stat_reset'
                      ORDER BY total_exec_time DESC LIMIT 20" |
            awk -F'\x1f' '{gsub(/\|/, "\\|", $4); printf "| `%s` | %s | %s | %s | %s | %s |\n", $4, $1, $2, $3, $5, $6}'
        echo
        echo "| function | calls per request | self µs per request | total µs per request |"
        echo "|---|---:|---:|---:|"
        q -F '|' -c "SELECT schemaname || '.' || funcname, round(calls::numeric / $n, 2),
                            round((self_time / $n * 1000)::numeric, 1), round((total_time / $n * 1000)::numeric, 1)
                       FROM pg_stat_user_functions WHERE calls >= $n / 2 ORDER BY total_time DESC LIMIT 25" |
            awk -F'|' '{printf "| `%s` | %s | %s | %s |\n", $1, $2, $3, $4}'
        echo
    } >>"$OUT"
done
cat "$OUT"
