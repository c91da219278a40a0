#!/usr/bin/env bash
# Where one request's time goes inside the database (docs/performance.md). Runs inside
# `ama-harness exec` (see run.sh): loads bench/api's fixtures and bench/budget/setup.sql, then
# runs a ladder of pgbench scripts, one client (-c 1 -j 1: one request at a time, no queueing),
# each adding one phase of ama.request_json to the one before, interleaved over BUDGET_ROUNDS
# rounds (order reversed every other round). Per run it records pgbench's mean latency and the
# serving backend's CPU time per request: /proc/PID/schedstat (on-CPU ns, kernel time included)
# read twice while the run goes on, divided by the transactions pgbench logged between the two
# reads (-l). CPU time is what the phases are computed from: a busy machine delays a request
# (runqueue wait, also recorded) far more than it changes the CPU the request needs.
# Each phase = the median over rounds of the per-round difference between two variants.
# Output: $RESULTS/db-raw.txt ("round variant metric value"), $RESULTS/db.txt (report.py),
# pgbench logs in $RESULTS/pgbench/.
# Knobs: BUDGET_SECS (per run, 4), BUDGET_ROUNDS (5), BUDGET_SETUP_ONLY=1 (fixtures and scripts,
# no runs: what shim.sh and pss.sh need when db is not run).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
PGBIN=$(dirname "$(command -v pgbench)")
SECS=${BUDGET_SECS:-4}
ROUNDS=${BUDGET_ROUNDS:-5}
[ "$SECS" -ge 3 ] || { echo "BUDGET_SECS must be at least 3" >&2; exit 2; }
RAW=$RESULTS/db-raw.txt
: >"$RAW"
WORK=$RESULTS/scripts          # the pgbench scripts (pss.sh runs two of them again)
rm -rf "$WORK"; mkdir -p "$WORK"

log "budget db: fixtures (bench/api/setup.sql, 1,000 messages) + bench/budget/setup.sql"
q -v nmsgs=1000 -f "$BENCH_DIR/api/setup.sql" >/dev/null
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
q -f "$BENCH_DIR/budget/setup.sql" >/dev/null
TOKEN=$(q <<'SQL' | tail -1
BEGIN;
SELECT ama.impersonate('user:00000000-0000-4000-8000-0000000000a1') \g /dev/null
SET LOCAL ROLE authenticated;
SELECT raw_token FROM ama.issue_agent_token('agent:00000000-0000-4000-a000-0000000000a1', 'budget');
COMMIT;
SQL
)
[[ $TOKEN == ama_eat_* ]] || { log "no agent token: $TOKEN"; exit 1; }
echo "$TOKEN" >"$WORK/token"   # for shim.sh (a throwaway cluster's token)

T1=00000000-0000-4000-8000-00000000f001   # the polled thread (1,000 messages)
T2=00000000-0000-4000-8000-00000000f002   # bare inserts and the route run by the owner
T3=00000000-0000-4000-8000-00000000f003   # agent sends through ama.request_json
USER_ACTOR=user:00000000-0000-4000-8000-0000000000a1
AGENT_ACTOR=agent:00000000-0000-4000-a000-0000000000a1
CLAIMS="'{\"sub\": \"00000000-0000-4000-8000-0000000000a1\", \"aud\": \"authenticated\", \"role\": \"authenticated\", \"email\": \"bench@example.com\", \"exp\": 4102444800}'::jsonb"
POLL="jsonb_build_object('path', jsonb_build_object('thread_id', '$T1'), 'query', jsonb_build_object('after_seq', :after::text, 'limit', '50'), 'body', null)"
SEND="jsonb_build_object('path', jsonb_build_object('thread_id', '$T3'), 'query', '{}'::jsonb, 'body', jsonb_build_object('content', 'agent ' || :client_id || ' ' || :r))"
SEND2="jsonb_build_object('path', jsonb_build_object('thread_id', '$T2'), 'query', '{}'::jsonb, 'body', jsonb_build_object('content', 'owner ' || :client_id || ' ' || :r))"
RND='\set r random(1, 1000000000)'
# the route's own statement (sql/060_http_api.sql, ama.api_events_poll), three ways; pgbench -r
# names each statement by its text, so each carries its own alias
EVROW="m.message_id, m.message_id, 'message_committed', m.thread_id, m.thread_seq, m.sender_id, m.role, m.content, m.mentions, m.client_message_id, m.metadata, m.base_seq, m.latest_seen_seq, m.server_seq_at_submit"
PAGE="FROM ama.messages m WHERE m.thread_id = '$T1' AND m.thread_seq > :after ORDER BY m.thread_seq LIMIT 51) s"
ST_ROWS="SELECT count(*) AS budget_rows, max(s.thread_seq) FILTER (WHERE s.rn <= 50) FROM (SELECT ROW($EVROW, ama._ts(m.created_at))::ama.message_event AS ev, m.thread_seq, row_number() OVER (ORDER BY m.thread_seq) AS rn $PAGE;"
ST_JSON="SELECT length(coalesce(json_agg(s.ev) FILTER (WHERE s.rn <= 50), '[]')::text) AS budget_json, count(*), max(s.thread_seq) FILTER (WHERE s.rn <= 50) FROM (SELECT ROW($EVROW, ama._ts(m.created_at))::ama.message_event AS ev, m.thread_seq, row_number() OVER (ORDER BY m.thread_seq) AS rn $PAGE;"
ST_NOTS="SELECT length(coalesce(json_agg(s.ev) FILTER (WHERE s.rn <= 50), '[]')::text) AS budget_json_nots, count(*), max(s.thread_seq) FILTER (WHERE s.rn <= 50) FROM (SELECT ROW($EVROW, m.created_at) AS ev, m.thread_seq, row_number() OVER (ORDER BY m.thread_seq) AS rn $PAGE;"
ENVLEN=$(q -U ama_authenticator -c "SELECT length(ama.request_json('events.poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $(echo "$POLL" | sed 's/:after/500/'))::text)")
log "budget db: the poll's envelope is $ENVLEN bytes of json text"

w() { printf '%s\n' "${@:2}" >"$WORK/$1.sql"; }
w p_select1  "SELECT 1;"
w p_w0       "SELECT bench.w0('bench.noop', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_w1       "SELECT bench.w1('bench.noop', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_w8       "SELECT bench.w8('bench.noop', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_begin_none "SELECT bench.w8_begin('bench.noop', 'none', NULL, NULL, '127.0.0.1', $POLL)::text;"
w p_begin_jwt  "SELECT bench.w8_begin('bench.noop', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_begin_rl   "SELECT bench.w8_begin('bench.noop_poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_nosub    "SELECT bench.request_nosub('bench.noop_poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_noop     "SELECT ama.request_json('bench.noop_poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w p_request  "SELECT ama.request_json('events.poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $POLL)::text;"
w s_w8       "$RND" "SELECT bench.w8('bench.noop', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
w s_begin_none "$RND" "SELECT bench.w8_begin('bench.noop', 'none', NULL, NULL, '127.0.0.1', $SEND)::text;"
w s_begin_agent "$RND" "SELECT bench.w8_begin('bench.noop', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
w s_begin_rl "$RND" "SELECT bench.w8_begin('bench.noop_send', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
w s_nosub    "$RND" "SELECT bench.request_nosub('bench.noop_send', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
w s_noop     "$RND" "SELECT ama.request_json('bench.noop_send', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
w s_request  "$RND" "SELECT ama.request_json('messages.agent_send', 'agent', '$TOKEN', NULL, '127.0.0.1', $SEND)::text;"
# by the owner (superuser: no RLS), the context set directly
w o_ctx      "SELECT '{}'::text FROM (SELECT set_config('ama.principal_kind', 'user', true), set_config('ama.actor_id', '$USER_ACTOR', true), set_config('ama.plan', 'starter', true)) s;"
w o_route    "SELECT ama.api_events_poll($POLL)::text FROM (SELECT set_config('ama.principal_kind', 'user', true), set_config('ama.actor_id', '$USER_ACTOR', true), set_config('ama.plan', 'starter', true)) s;"
w o_send_ctx "$RND" "SELECT ($SEND2)::text FROM (SELECT set_config('ama.principal_kind', 'agent', true), set_config('ama.actor_id', '$AGENT_ACTOR', true), set_config('ama.plan', 'starter', true)) s;"
w o_send_route "$RND" "SELECT ama.api_messages_agent_send($SEND2)::text FROM (SELECT set_config('ama.principal_kind', 'agent', true), set_config('ama.actor_id', '$AGENT_ACTOR', true), set_config('ama.plan', 'starter', true)) s;"
w o_send_insert "$RND" "INSERT INTO ama.messages (thread_id, sender_id, role, content) VALUES ('$T2', '$AGENT_ACTOR', 'assistant', 'bare ' || :client_id || ' ' || :r) RETURNING message_id, thread_seq, created_at;"
# the route's own statement by the owner, three ways, and the envelope's transfer to the client
w o_select1  "SELECT 1;"
w o_rows     "$ST_ROWS"
w o_json     "$ST_JSON"
w o_nots     "$ST_NOTS"
w o_noxfer   "SELECT length(repeat('x', $ENVLEN));"
w o_xfer     "SELECT repeat('x', $ENVLEN);"
# the same statement as the request role under RLS, against the same transaction with SELECT 1
RLS_BEGIN="SELECT set_config('ama.principal_kind', 'user', true), set_config('ama.actor_id', '$USER_ACTOR', true), set_config('ama.plan', 'starter', true);"
w r_select1  "BEGIN;" "$RLS_BEGIN" "SET LOCAL ROLE authenticated;" "SELECT 1;" "COMMIT;"
w r_json     "BEGIN;" "$RLS_BEGIN" "SET LOCAL ROLE authenticated;" "$ST_JSON" "COMMIT;"
w ro_select1 "BEGIN;" "$RLS_BEGIN" "SELECT 1;" "COMMIT;"
w ro_json    "BEGIN;" "$RLS_BEGIN" "$ST_JSON" "COMMIT;"

# sanity: every variant runs once without error, and the request answers 200 with 50 events
for f in "$WORK"/*.sql; do
    n=$(basename "$f" .sql); u=postgres; case $n in p_*|s_*) u=ama_authenticator ;; esac
    "$PGBIN/pgbench" -n -M prepared -U "$u" -c 1 -t 1 -f "$f" -D after=500 >"$WORK/check.log" 2>&1 ||
        { log "budget db: $n fails:"; cat "$WORK/check.log" >&2; exit 1; }
done
rm -f "$WORK/check.log"
# shim.sh and pss.sh on their own (run.sh without db) need the fixtures and scripts only
[ "${BUDGET_SETUP_ONLY:-0}" = 1 ] && { log "budget db: fixtures only"; exit 0; }
st=$(q -U ama_authenticator -c "SELECT ama.request_json('events.poll', 'jwt', NULL, $CLAIMS, '127.0.0.1', $(echo "$POLL" | sed 's/:after/500/'))::text" |
     python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], len(d["body"]["events"]))')
[ "$st" = "200 50" ] || { log "budget db: events.poll answered '$st'"; exit 1; }

VARIANTS=(p_select1 p_w0 p_w1 p_w8 p_begin_none p_begin_jwt p_begin_rl p_nosub p_noop p_request
          s_w8 s_begin_none s_begin_agent s_begin_rl s_nosub s_noop s_request
          o_select1 o_rows o_json o_nots o_noxfer o_xfer r_select1 r_json ro_select1 ro_json
          o_ctx o_route o_send_ctx o_send_route o_send_insert)
mkdir -p "$RESULTS/pgbench"
TXLOG=$(mktemp -d /tmp/ama-budget-tx.XXXXXX)
trap 'rm -rf "$TXLOG"' EXIT
sched() { awk '{print $1, $2}' "/proc/$1/schedstat"; }
measure() {   # round variant user
    local r=$1 v=$2 u=$3 out=$RESULTS/pgbench/$2.r$1.log pb bpid="" t0 t1 c0 w0 c1 w1 n
    rm -f "$TXLOG"/*
    "$PGBIN/pgbench" -n -M prepared -U "$u" -c 1 -j 1 -T "$SECS" -l --log-prefix="$TXLOG/tx" \
        -f "$WORK/$v.sql" -D after=500 >"$out" 2>&1 &
    pb=$!
    # pgbench's first connection only looks around and closes: take the one that stays
    sleep 0.3
    for _ in $(seq 100); do
        bpid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND backend_type = 'client backend' ORDER BY backend_start DESC LIMIT 1")
        [ -n "$bpid" ] && [ -r "/proc/$bpid/schedstat" ] && break; bpid=""; sleep 0.02
    done
    [ -n "$bpid" ] || { log "no backend for $v"; wait "$pb"; cat "$out" >&2; exit 1; }
    t0=$(date +%s%6N); read -r c0 w0 < <(sched "$bpid")
    sleep "$((SECS - 1))"
    t1=$(date +%s%6N); read -r c1 w1 < <(sched "$bpid")
    wait "$pb" || { log "pgbench $v failed"; tail "$out" >&2; exit 1; }
    n=$(cat "$TXLOG"/tx* | awk -v a="$t0" -v b="$t1" '{t = $5 * 1000000 + $6} t > a && t <= b {n++} END {print n + 0}')
    [ "$n" -gt 0 ] || { log "no transaction of $v logged between the reads"; exit 1; }
    echo "$r $v tps $(awk '/^tps = /{print $3; exit}' "$out")" >>"$RAW"
    echo "$r $v lat_ms $(awk '/^latency average = /{print $4; exit}' "$out")" >>"$RAW"
    echo "$r $v cpu_us $(awk -v c="$((c1 - c0))" -v n="$n" 'BEGIN{print c / n / 1000}')" >>"$RAW"
    echo "$r $v wait_us $(awk -v c="$((w1 - w0))" -v n="$n" 'BEGIN{print c / n / 1000}')" >>"$RAW"
    echo "$r $v wall_us $(awk -v c="$((t1 - t0))" -v n="$n" 'BEGIN{print c / n}')" >>"$RAW"
}
for r in $(seq 1 "$ROUNDS"); do
    order=("${VARIANTS[@]}")
    if [ $((r % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${VARIANTS[@]}" | tac); fi
    log "budget db: round $r of $ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "$r load1 load $(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
    for v in "${order[@]}"; do
        u=postgres; case $v in p_*|s_*) u=ama_authenticator ;; esac
        measure "$r" "$v" "$u"
    done
done
echo "0 meta envelope_bytes $ENVLEN" >>"$RAW"
python3 "$BENCH_DIR/budget/report.py" db "$RAW" | tee "$RESULTS/db.txt"
