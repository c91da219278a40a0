#!/usr/bin/env bash
# End-to-end API cost in the database (issue 13). Runs inside `ama-harness exec`; see bench/run.sh.
# Side by side, interleaved rounds, same clients: the events poll (50 rows of a 1,000-message
# thread) read bare, shaped as PostgREST does (the anchor), shaped by ama._message_json, through the
# route's own SQL run bare by the owner, and through ama.request as the shim's login; and an agent
# message send through ama.request vs a bare INSERT ... RETURNING by the owner.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
D=$BENCH_DIR/api
RAW=$RESULTS/api-raw.txt
OUT=$RESULTS/api.txt
: >"$RAW"
NMSGS=${BENCH_API_MSGS:-1000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "api: one thread of $NMSGS messages"
q -v nmsgs="$NMSGS" -f "$D/setup.sql" >/dev/null
# two more threads of the same user and agent: bare inserts and sends do not touch the polled one
q >/dev/null <<'SQL'
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by)
SELECT t::uuid, 'private', '00000000-0000-4000-8000-0000000000a1', 'user:00000000-0000-4000-8000-0000000000a1'
  FROM unnest(ARRAY['00000000-0000-4000-8000-00000000f002', '00000000-0000-4000-8000-00000000f003']) t;
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
SELECT t::uuid, a, k, c::text[]
  FROM unnest(ARRAY['00000000-0000-4000-8000-00000000f002', '00000000-0000-4000-8000-00000000f003']) t,
       (VALUES ('user:00000000-0000-4000-8000-0000000000a1', 'user', '{read,send,run,manage}'),
               ('agent:00000000-0000-4000-a000-0000000000a1', 'agent', '{read,send}')) p(a, k, c);
SQL
TOKEN=$(q <<'SQL' | tail -1
BEGIN;
SELECT ama.impersonate('user:00000000-0000-4000-8000-0000000000a1') \g /dev/null
SET LOCAL ROLE authenticated;
SELECT raw_token FROM ama.issue_agent_token('agent:00000000-0000-4000-a000-0000000000a1', 'bench');
COMMIT;
SQL
)
[[ $TOKEN == ama_eat_* ]] || { log "api: could not issue an agent token: $TOKEN"; exit 1; }
# the shim's statement is ama.request_json; a build from before issue 13 has only ama.request
ENTRY=ama.request_json
[ "$(q -c "SELECT to_regproc('ama.request_json') IS NOT NULL")" = t ] || ENTRY=ama.request
sed "s/:'token'/'$TOKEN'/; s/ama\.request_json(/$ENTRY(/" "$D/send_request.sql" >"$WORK/send_request.sql"
sed "s/ama\.request_json(/$ENTRY(/" "$D/request.sql" >"$WORK/request.sql"
log "api: the request entry point is $ENTRY"

# sanity: every read variant returns the same 50 events; the envelope is a 200
POLL_AFTER=500
n=$(q -v after=$POLL_AFTER -f "$D/postgrest.sql" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 50 ] || { log "api: PostgREST-style query returned $n rows"; exit 1; }
st=$(q -U ama_authenticator -v after=$POLL_AFTER -f "$WORK/request.sql" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], len(d["body"]["events"]))')
[ "$st" = "200 50" ] || { log "api: ama.request answered '$st' (want 200 with 50 events)"; exit 1; }

# name script user
VARIANTS=(
    "bare $D/bare.sql postgres"
    "postgrest $D/postgrest.sql postgres"
    "shaping $D/shaping.sql postgres"
    "route_bare $D/route_bare.sql postgres"
    "request $WORK/request.sql ama_authenticator"
    "send_bare $D/send_bare.sql postgres"
    "send_request $WORK/send_request.sql ama_authenticator"
)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        read -r name script user <<<"$v"
        res=$(pgbench_run "api_$name" "$script" -U "$user" -D after=$POLL_AFTER); read -r tps lat <<<"$res"
        echo "$r $name tps $tps" >>"$RAW"; echo "$r $name lat_ms $lat" >>"$RAW"
        log "round $r $name: $tps tps, $lat ms/txn"
    done
done

med() { get_vals "$RAW" "$1" "$2" | median; }
ratio() { ratio_median "$RAW" "$1" "$2" tps; }
{
    echo "## API cost in the database (issue 13): events poll of 50 rows from a $NMSGS-message thread, agent send; $CLIENTS clients, -j $THREADS, ${BENCH_SECS}s x $BENCH_ROUNDS rounds interleaved, median"
    echo
    echo "| variant | TPS | latency ms |"
    echo "|---|---:|---:|"
    for v in "${VARIANTS[@]}"; do
        read -r name _ _ <<<"$v"
        echo "| $name | $(fmt "$(med "$name" tps)" 0) | $(fmt "$(med "$name" lat_ms)" 3) |"
    done
    echo
    echo "| ratio (TPS, same round) | value | goal | verdict |"
    echo "|---|---:|---:|---|"
    x=$(ratio request postgrest); echo "| ama.request poll / PostgREST-style json_agg by the owner | $(fmt "$x" 2) | >= 0.6 | $(verdict "$x" ">=" 0.6) |"
    x=$(ratio request route_bare); echo "| security tax: ama.request poll / the route's SQL bare by the owner | $(fmt "$x" 2) | >= 0.85 | $(verdict "$x" ">=" 0.85) |"
    x=$(ratio shaping postgrest); echo "| our shaping (ama._message_json) / PostgREST-style | $(fmt "$x" 2) | | |"
    x=$(ratio bare postgrest); echo "| bare rows / PostgREST-style | $(fmt "$x" 2) | | |"
    x=$(ratio send_request send_bare); echo "| agent send through ama.request / bare INSERT ... RETURNING | $(fmt "$x" 2) | >= 0.5 | $(verdict "$x" ">=" 0.5) |"
} >"$OUT"
cat "$OUT"
