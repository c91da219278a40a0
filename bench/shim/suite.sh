#!/usr/bin/env bash
# The shim/API suite proper; run by bench/shim/run.sh inside `ama-harness exec` (PGHOST, PGPORT,
# PGUSER=postgres, PGDATABASE, PGPASSFILE exported for a throwaway cluster on 127.0.0.1).
# Env from run.sh: ROOT, SHIM_DIR, RESULTS, BENCH_SECS, BENCH_ROUNDS, BENCH_QUICK, CLIENTS, THREADS,
# SIZES, SSE_STREAMS, SSE_THREADS, SSE_MESSAGES, IDLE_CONNS, PARTS (the parts to run), TARGET (the cargo
# target directory); optional SHIM_LOG_LEVEL (warn); optional BASELINE_SHIM (a
# second ama-shim binary, started the same way on another port and measured in part 1 only,
# interleaved with the current one: variants base_read/base_write in raw.txt). Part 6 (pgbouncer in
# transaction mode vs direct) writes variants pool_shim_*, direct_shim_*, pool_pgx_*, direct_pgx_*.
# pgbench runs the shim's own statement (shim/src/db.rs REQUEST_SQL):
#   SELECT ama.request_json($1::text, $2::text, $3::text, $4::jsonb, $5::inet, $6::jsonb)
# its arguments are pgbench variables (-D, from the script's .vars file), so they travel as
# parameters and the server reads the jsonb arguments on every call, as it does for the shim;
# ama.request (same arguments) on a build from before issue 13.
set -euo pipefail

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has_part() { case " ${PARTS:-1 2 3 4 5} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/load.sh"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
fmt() { awk -v x="$1" -v d="${2:-2}" 'BEGIN{ if (x=="nan" || x=="") print "n/a"; else printf "%.*f\n", d, x }'; }
verdict() { awk -v x="$1" -v op="$2" -v g="$3" 'BEGIN{ ok = (op==">=") ? (x>=g) : (x<=g); print (ok ? "met" : "MISSED") }'; }

PGBIN=/usr/lib/postgresql/15/bin
TARGET=${TARGET:-$ROOT/target}
SECS=$BENCH_SECS
RAW=$RESULTS/raw.txt          # "round variant metric value"
: >"$RAW"
mkdir -p "$RESULTS/logs"
WORK=$(mktemp -d /tmp/ama-shim-bench.XXXXXX)
SHIM_PID=
BASE_PID=
POOL_PID=
BOUNCER_PID=
BOUNCER_RUNNER=
BOUNCER_DIR=
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$SHIM_PID"
    stop_pid "$BASE_PID"
    stop_pid "$POOL_PID"
    stop_pid "$BOUNCER_PID"
    [ -n "$BOUNCER_RUNNER" ] && wait "$BOUNCER_RUNNER" 2>/dev/null
    rm -rf "$WORK" ${BOUNCER_DIR:+"$BOUNCER_DIR"}
}
trap cleanup EXIT
raw() { echo "$1 $2 $3 $4" >>"$RAW"; }

# --- CPU accounting (clock ticks, 100 per second) ------------------------------------------------
PM_PID=$(head -1 "$(q -c 'SHOW data_directory')/postmaster.pid")
pg_ticks() {   # postmaster + reaped children + live children
    local t c
    t=$(awk '{print $14+$15+$16+$17}' "/proc/$PM_PID/stat")
    for c in $(pgrep -P "$PM_PID"); do
        t=$((t + $(awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
shim_ticks() { awk '{print $14+$15}' "/proc/${1:-$SHIM_PID}/stat"; }
bouncer_ticks() { if [ -n "$BOUNCER_PID" ]; then awk '{print $14+$15}' "/proc/$BOUNCER_PID/stat" 2>/dev/null || echo 0; else echo 0; fi; }

# --- identities, certificate, secret -------------------------------------------------------------
uuid() { cat /proc/sys/kernel/random/uuid; }
OWNER=$(uuid); AGENT="agent:$(uuid)"
USERS=(); for _ in 0 1 2 3 4 5; do USERS+=("$(uuid)"); done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/jwt_secret"

{
    echo "UPDATE ama.rate_policies SET rate_limit = 100000000;"
    echo "INSERT INTO ama.users (user_id, plan) VALUES ('$OWNER', 'starter');"
    echo "INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES ('user:$OWNER', 'user', '$OWNER');"
    for u in "${USERS[@]}"; do
        echo "INSERT INTO ama.users (user_id, plan) VALUES ('$u', 'basic');"
        echo "INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES ('user:$u', 'user', '$u');"
    done
} | q >/dev/null
AGENT_TOKEN=$(q <<SQL | tail -1
BEGIN;
SELECT ama.impersonate('user:$OWNER') \\g /dev/null
SET LOCAL ROLE authenticated;
SELECT raw_token FROM ama.issue_agent_token('$AGENT', 'bench');
COMMIT;
SQL
)
[[ $AGENT_TOKEN == ama_eat_* ]] || { log "could not issue an agent token: $AGENT_TOKEN"; exit 1; }

# --- the shim ------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ulimit -n "$(ulimit -Hn)"
# The harness gave ama_authenticator a password (in $PGPASSFILE, which psql and pgbench read);
# the shim gets it through its environment, never its command line.
AUTH_PW=$(awk -F: '$4 == "ama_authenticator" {print $5; exit}' "$PGPASSFILE")
[ -n "$AUTH_PW" ] || { log "no ama_authenticator password in \$PGPASSFILE"; exit 1; }
DIRECT_URL="postgres://ama_authenticator:$AUTH_PW@127.0.0.1:$PGPORT/$PGDATABASE"
start_shim() {   # binary port log [extra flags] -> pid in $STARTED_PID, once /ready answers
    local bin=$1 port=$2 logf=$3
    shift 3
    AMA_DATABASE_URL=${SHIM_DATABASE_URL:-$DIRECT_URL} \
    "$bin" --listen "127.0.0.1:$port" --tls-cert "$WORK/cert.pem" \
        --tls-key "$WORK/key.pem" --jwt-secret-file "$WORK/jwt_secret" \
        --log-level "${SHIM_LOG_LEVEL:-warn}" "$@" >"$logf" 2>&1 &
    STARTED_PID=$!
    for _ in $(seq 100); do curl -sf --cacert "$WORK/cert.pem" "https://localhost:$port/health" --resolve "localhost:$port:127.0.0.1" >/dev/null && break; sleep 0.2; done
    curl -sSf --cacert "$WORK/cert.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/ready" >/dev/null ||
        { log "shim $bin not ready"; cat "$logf" >&2; exit 1; }
}
PORT=$(free_port)
# Every client of the benchmark is 127.0.0.1, one address: the shim's --max-connections-per-ip
# (default 256, issue 12) would refuse the idle connections of part 3 and the streams of part 5
# past the 256th (a reset during the TLS handshake), so it is raised to what those parts open.
# --max-connections keeps its default (10000).
PER_IP=$(( ${IDLE_CONNS:-1000} > ${SSE_STREAMS:-100} ? ${IDLE_CONNS:-1000} : ${SSE_STREAMS:-100} ))
PER_IP=$(( PER_IP + 256 ))
start_shim "$TARGET/release/ama-shim" "$PORT" "$RESULTS/logs/shim.log" --max-connections-per-ip "$PER_IP"
SHIM_PID=$STARTED_PID
CURL=(curl -sS --cacert "$WORK/cert.pem" --resolve "localhost:$PORT:127.0.0.1")
URL=https://localhost:$PORT
log "shim pid $SHIM_PID on 127.0.0.1:$PORT (pool size default 16)"
if [ -n "${BASELINE_SHIM:-}" ]; then
    # Same flags, same cluster, same certificate and secret; another port. Part 1 only.
    BPORT=$(free_port)
    start_shim "$BASELINE_SHIM" "$BPORT" "$RESULTS/logs/shim-baseline.log"
    BASE_PID=$STARTED_PID
    BCURL=(curl -sS --cacert "$WORK/cert.pem" --resolve "localhost:$BPORT:127.0.0.1")
    BURL=https://localhost:$BPORT
    log "baseline shim ($BASELINE_SHIM) pid $BASE_PID on 127.0.0.1:$BPORT"
fi

jwt_of() { python3 "$SHIM_DIR/tools.py" jwt "$WORK/jwt_secret" "$1"; }
# thread with the agent and user $1, created through the API by the agent
new_thread() {
    "${CURL[@]}" -f -X POST "$URL/api/v1/chat/threads" -H "Authorization: Bearer $AGENT_TOKEN" \
        -H 'Content-Type: application/json' -d "{\"target_user_ids\": [\"$1\"]}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])'
}
# bulk-load N messages into thread $1 (triggers off, explicit thread_seq), then ANALYZE
load_msgs() {
    local tid=$1 n=$2 user=$3
    q >/dev/null <<SQL
ALTER TABLE ama.messages DISABLE TRIGGER messages_assign_thread_seq, DISABLE TRIGGER messages_notify;
INSERT INTO ama.messages (thread_id, thread_seq, sender_id, role, content, created_at)
SELECT '$tid', t.last_seq + g,
       CASE WHEN g % 2 = 0 THEN 'user:$user' ELSE '$AGENT' END,
       CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
       'bulk message number ' || g || ' of a long benchmark thread',
       now() - make_interval(secs => $n - g)
FROM ama.threads t, generate_series(1, $n) g WHERE t.thread_id = '$tid';
UPDATE ama.threads SET last_seq = last_seq + $n, last_message_at = now() WHERE thread_id = '$tid';
ALTER TABLE ama.messages ENABLE TRIGGER messages_assign_thread_seq, ENABLE TRIGGER messages_notify;
SQL
}
# The statement the shim sends; a build from before issue 13 has only ama.request (same arguments).
ENTRY=ama.request_json
[ "$(q -c "SELECT to_regprocedure('ama.request_json(text,text,text,jsonb,inet,jsonb)') IS NOT NULL")" = t ] || ENTRY=ama.request
log "the request entry point is $ENTRY"
# req_sql CREDENTIAL CLAIMS ARGS: the shim's statement, with NULL where the shim sends NULL (the
# credential of a JWT request, the claims of a token request)
req_sql() { echo "SELECT $ENTRY(:route::text, :kind::text, $1::text, $2::jsonb, :ip::inet, $3::jsonb);"; }
# a write's body differs per request: the args text is completed per call, then read as jsonb
ARGS_PER_CALL="(:args_head::text || :client_id || ' ' || :r || '\"}}')"
# a pgbench script with its variables: write_script FILE SQL [name=value ...] -> FILE, FILE.vars
write_script() {
    local f=$1 sql=$2; shift 2
    printf '%s\n' "$sql" >"$f"
    printf '%s\n' "$@" >"$f.vars"
}
# run a pgbench script once through psql, its variables quoted as literals: psql_script FILE [psql args]
psql_script() {
    local f=$1 vars=(); shift
    while IFS= read -r kv; do [ -n "$kv" ] && vars+=(-v "$kv"); done <"$f.vars"
    sed -E "s/(^|[^:]):([a-z_]+)/\1:'\2'/g" "$f" | q "${vars[@]}" "$@"
}

# --- 1. shim vs pgbench, same SQL, same concurrency ----------------------------------------------
U0=${USERS[0]}
T0=$(new_thread "$U0")
load_msgs "$T0" 1000 "$U0"
q -c "ANALYZE ama.messages" >/dev/null
JWT0=$(jwt_of "$U0")
CLAIMS0=$(python3 "$SHIM_DIR/tools.py" claims "$JWT0")
AFTER0=500
write_script "$WORK/pg_read.sql" "$(req_sql NULL :claims :args)" route=events.poll kind=jwt "claims=$CLAIMS0" ip=127.0.0.1 \
    "args={\"path\": {\"thread_id\": \"$T0\"}, \"query\": {\"after_seq\": \"$AFTER0\", \"limit\": \"50\"}, \"body\": null}"
write_script "$WORK/pg_write.sql" "\\set r random(1, 1000000000)
$(req_sql NULL :claims "$ARGS_PER_CALL")" route=messages.send kind=jwt "claims=$CLAIMS0" ip=127.0.0.1 \
    "args_head={\"path\": {\"thread_id\": \"$T0\"}, \"query\": {}, \"body\": {\"content\": \"pgbench "
# the anchor of issue 13: the PostgREST-style json_agg over the same 50 rows (bench/api/postgrest.sql),
# by the owner, on the thread and after_seq the shim's poll reads
sed "s/00000000-0000-4000-8000-00000000f001/$T0/" "$ROOT/bench/api/postgrest.sql" >"$WORK/pg_postgrest.sql"
printf 'after=%s\n' "$AFTER0" >"$WORK/pg_postgrest.sql.vars"
# sanity: both paths answer 200 with the same shape
"${CURL[@]}" -f -H "Authorization: Bearer $JWT0" "$URL/api/v1/chat/threads/$T0/events?after_seq=$AFTER0&limit=50" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["events"])==50, d; print("shim read ok:", len(d["events"]), "events")' >&2
if [ -n "$BASE_PID" ]; then
    "${BCURL[@]}" -f -H "Authorization: Bearer $JWT0" "$BURL/api/v1/chat/threads/$T0/events?after_seq=$AFTER0&limit=50" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["events"])==50, d; print("baseline shim read ok:", len(d["events"]), "events")' >&2
fi
psql_script "$WORK/pg_read.sql" -U ama_authenticator -h 127.0.0.1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d.get("status")==200 and len(d["body"]["events"])==50, str(d)[:300]; print(sys.argv[1], "status", d.get("status"), len(d["body"]["events"]), "events")' "$ENTRY" >&2
psql_script "$WORK/pg_postgrest.sql" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==50, len(d); print("PostgREST-style query ok:", len(d), "rows")' >&2

pgbench_run() {   # name script [port [mode [user]]]: pgbench on the cluster, or on pgbouncer's port
    local name=$1 script=$2 port=${3:-$PGPORT} mode=${4:-prepared} user=${5:-ama_authenticator} out
    out=$RESULTS/logs/$name.r$ROUND.log
    local t0 t1 b0 b1 defs=() kv
    # the script's variables (-D): sent as parameters of the prepared statement
    if [ -f "$script.vars" ]; then while IFS= read -r kv; do [ -n "$kv" ] && defs+=(-D "$kv"); done <"$script.vars"; fi
    t0=$(pg_ticks); b0=$(bouncer_ticks)
    { time env PGPASSFILE="${BENCH_PGPASS:-$PGPASSFILE}" "$PGBIN/pgbench" -n -M "$mode" -h 127.0.0.1 -p "$port" \
        -U "$user" -c "$CLIENTS" -j "$THREADS" -T "$SECS" "${defs[@]}" -f "$script" >"$out" 2>&1 ; } 2>"$out.time"
    # pgbench's backends exit at the end: their CPU reaches the postmaster's cutime/cstime only
    # once it has reaped them, so give that a moment before the snapshot
    sleep 1
    t1=$(pg_ticks); b1=$(bouncer_ticks)
    grep -q '^number of failed transactions: [1-9]' "$out" && { log "pgbench $name failed transactions"; tail "$out" >&2; return 1; }
    local tps xacts; tps=$(awk '/^tps = /{print $3; exit}' "$out"); xacts=$(awk '/^number of transactions actually processed/{print $6; exit}' "$out")
    local lat; lat=$(awk '/^latency average = /{print $4; exit}' "$out")
    local cli; cli=$(awk '/^user|^sys/{split($2,a,"m"); s+=a[1]*60+a[2]} END{print s}' "$out.time")
    raw "$ROUND" "$name" tps "$tps"; raw "$ROUND" "$name" mean_ms "$lat"
    raw "$ROUND" "$name" pg_cpu_us_per_req "$(awk -v d=$((t1 - t0)) -v n="$xacts" 'BEGIN{print d*10000/n}')"
    raw "$ROUND" "$name" client_cpu_us_per_req "$(awk -v s="$cli" -v n="$xacts" 'BEGIN{print s*1e6/n}')"
    [ -n "$BOUNCER_PID" ] && raw "$ROUND" "$name" bouncer_cpu_us_per_req "$(awk -v d=$((b1 - b0)) -v n="$xacts" 'BEGIN{print d*10000/n}')"
    log "  pgbench $name: $tps tps, mean $lat ms"
}
metric_sum() {   # metric [port]; empty when the shim does not export it
    local p=${2:-$PORT}
    curl -sS --cacert "$WORK/cert.pem" --resolve "localhost:$p:127.0.0.1" "https://localhost:$p/metrics" |
        awk -v m="$1" '$1==m {print $2}'
}
wrk_run() {   # name lua [baseline|pooled]: the current shim, or the baseline one, or the one behind pgbouncer
    local name=$1 lua=$2 out=$RESULTS/logs/$1.r$ROUND.log
    local pid=$SHIM_PID port=$PORT
    case ${3:-} in
        baseline) pid=$BASE_PID; port=$BPORT ;;
        pooled) pid=$POOL_PID; port=$PPORT ;;
    esac
    local p0 s0 c0 n0 p1 s1 c1 n1 b0 b1
    b0=$(bouncer_ticks)
    p0=$(pg_ticks); s0=$(shim_ticks "$pid"); c0=$(metric_sum ama_shim_db_seconds_sum "$port"); n0=$(metric_sum ama_shim_db_seconds_count "$port")
    { time env JWT="$JWT0" THREAD="$T0" AFTER_SEQ="$AFTER0" BENCH_SHIM_DIR="$SHIM_DIR" \
        wrk -t"$THREADS" -c"$CLIENTS" -d"${SECS}s" --latency -s "$SHIM_DIR/$lua" "https://127.0.0.1:$port" >"$out" 2>&1 ; } 2>"$out.time"
    p1=$(pg_ticks); s1=$(shim_ticks "$pid"); c1=$(metric_sum ama_shim_db_seconds_sum "$port"); n1=$(metric_sum ama_shim_db_seconds_count "$port")
    b1=$(bouncer_ticks)
    local line; line=$(grep '^RESULT' "$out") || { log "wrk $name: no result"; cat "$out" >&2; return 1; }
    read -r _ _ reqs _ _ _ rps _ p50 _ p99 _ p999 _ mean _ _ _ serr _ sockerr <<<"$line"
    # badbody.lua's answers are all 400 by design; every other script must see no error status
    { [ "$serr" = 0 ] || [ "$lua" = badbody.lua ]; } && [ "$sockerr" = 0 ] ||
        { log "wrk $name: $serr HTTP errors, $sockerr socket errors"; cat "$out" >&2; return 1; }
    local cli; cli=$(awk '/^user|^sys/{split($2,a,"m"); s+=a[1]*60+a[2]} END{print s}' "$out.time")
    raw "$ROUND" "$name" tps "$rps"; raw "$ROUND" "$name" p50_ms "$(awk -v x="$p50" 'BEGIN{print x/1000}')"
    raw "$ROUND" "$name" p99_ms "$(awk -v x="$p99" 'BEGIN{print x/1000}')"; raw "$ROUND" "$name" p999_ms "$(awk -v x="$p999" 'BEGIN{print x/1000}')"
    raw "$ROUND" "$name" mean_ms "$(awk -v x="$mean" 'BEGIN{print x/1000}')"
    raw "$ROUND" "$name" shim_db_mean_ms "$(awk -v a="$c0" -v b="$c1" -v x="$n0" -v y="$n1" 'BEGIN{print (x=="" || y=="" || y-x<=0) ? "nan" : (b-a)*1000/(y-x)}')"
    raw "$ROUND" "$name" shim_cpu_us_per_req "$(awk -v d=$((s1 - s0)) -v n="$reqs" 'BEGIN{print d*10000/n}')"
    raw "$ROUND" "$name" pg_cpu_us_per_req "$(awk -v d=$((p1 - p0)) -v n="$reqs" 'BEGIN{print d*10000/n}')"
    raw "$ROUND" "$name" client_cpu_us_per_req "$(awk -v s="$cli" -v n="$reqs" 'BEGIN{print s*1e6/n}')"
    [ -n "$BOUNCER_PID" ] && raw "$ROUND" "$name" bouncer_cpu_us_per_req "$(awk -v d=$((b1 - b0)) -v n="$reqs" 'BEGIN{print d*10000/n}')"
    log "  wrk $name: $rps req/s, p50 $p50 us, p99 $p99 us, p99.9 $p999 us"
}

# the PostgREST-style anchor (issue 13), by the owner (postgres), in the same rounds as the reads
pg_postgrest() { pgbench_run pg_postgrest "$WORK/pg_postgrest.sql" "$PGPORT" prepared postgres; }
has_part 1 && log "1. shim vs pgbench: $CLIENTS connections, $THREADS threads, ${SECS}s x $BENCH_ROUNDS rounds${BASE_PID:+, with the baseline shim}"
for ROUND in $(has_part 1 && seq "$BENCH_ROUNDS"); do
    wait_quiet; raw "$ROUND" part1 load1 "$LOAD1"
    if [ -z "$BASE_PID" ]; then
        if [ $((ROUND % 2)) = 1 ]; then
            wrk_run shim_read read.lua; pgbench_run pg_read "$WORK/pg_read.sql"; pg_postgrest
            pgbench_run pg_write "$WORK/pg_write.sql"; wrk_run shim_write write.lua
        else
            pg_postgrest; pgbench_run pg_read "$WORK/pg_read.sql"; wrk_run shim_read read.lua
            wrk_run shim_write write.lua; pgbench_run pg_write "$WORK/pg_write.sql"
        fi
    # with a baseline: it runs next to the current shim in every round, and which of the two goes
    # first alternates from route to route and from round to round
    elif [ $((ROUND % 2)) = 1 ]; then
        wrk_run shim_read read.lua; wrk_run base_read read.lua baseline; pgbench_run pg_read "$WORK/pg_read.sql"; pg_postgrest
        pgbench_run pg_write "$WORK/pg_write.sql"; wrk_run base_write write.lua baseline; wrk_run shim_write write.lua
    else
        pg_postgrest; pgbench_run pg_read "$WORK/pg_read.sql"; wrk_run base_read read.lua baseline; wrk_run shim_read read.lua
        wrk_run shim_write write.lua; wrk_run base_write write.lua baseline; pgbench_run pg_write "$WORK/pg_write.sql"
    fi
    # the shim's own path, no database: a POST whose body is not JSON (routing, credential, cached
    # JWT, body read, the 400); it is CPU-bound on the shim, so current/baseline is its cost ratio
    if [ -n "$BASE_PID" ] && [ $((ROUND % 2)) = 1 ]; then
        wrk_run shim_nodb badbody.lua; wrk_run base_nodb badbody.lua baseline
    elif [ -n "$BASE_PID" ]; then
        wrk_run base_nodb badbody.lua baseline; wrk_run shim_nodb badbody.lua
    fi
done
if [ -n "$BASE_PID" ]; then
    stop_pid "$BASE_PID"; BASE_PID=
    log "baseline shim stopped (parts 3-5 measure the current shim only)"
fi

# --- 6. through pgbouncer (transaction mode) vs direct ---------------------------------------------
if has_part 6; then
    log "6. pgbouncer (transaction mode) vs direct: $CLIENTS connections, ${SECS}s x $BENCH_ROUNDS rounds"
    # Behind a transaction pooler the shim sends no startup options: statement_timeout goes on the
    # role (README), as a deployment would do it; the direct shim sends its own 5 s at connect.
    q -c "ALTER ROLE ama_authenticator SET statement_timeout = '5s'" >/dev/null
    BOUNCER_DIR=$(mktemp -d /tmp/ama-pgbouncer.XXXXXX)
    BOUNCE_PORT=$(free_port)
    printf '"ama_authenticator" "%s"\n' "$AUTH_PW" >"$BOUNCER_DIR/userlist.txt"
    chmod 600 "$BOUNCER_DIR/userlist.txt"
    # the settings of tests/src/pooler.rs, with a pool as large as the shim's (16): pgbouncer must
    # not be the narrower pipe
    cat >"$BOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
$PGDATABASE = host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCE_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $BOUNCER_DIR/userlist.txt
pool_mode = transaction
default_pool_size = 16
max_client_conn = 500
server_reset_query =
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_DIR/pgbouncer.pid
INI
    # pgbouncer refuses to run as root: as root it runs as the cluster's OS user (postgres)
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$BOUNCER_DIR"
        runuser -u postgres -- /usr/sbin/pgbouncer "$BOUNCER_DIR/pgbouncer.ini" >"$RESULTS/logs/pgbouncer.out" 2>&1 &
    else
        /usr/sbin/pgbouncer "$BOUNCER_DIR/pgbouncer.ini" >"$RESULTS/logs/pgbouncer.out" 2>&1 &
    fi
    BOUNCER_RUNNER=$!
    for _ in $(seq 50); do [ -s "$BOUNCER_DIR/pgbouncer.pid" ] && break; sleep 0.2; done
    BOUNCER_PID=$(cat "$BOUNCER_DIR/pgbouncer.pid" 2>/dev/null || true)
    [ -n "$BOUNCER_PID" ] || { log "pgbouncer did not start"; cat "$BOUNCER_DIR/pgbouncer.log" "$RESULTS/logs/pgbouncer.out" >&2; exit 1; }
    # pgbench reaches pgbouncer with the same password, from a pgpass line of its own
    BENCH_PGPASS_POOLED=$WORK/pgpass.pooled
    { cat "$PGPASSFILE"; echo "127.0.0.1:$BOUNCE_PORT:*:ama_authenticator:$AUTH_PW"; } >"$BENCH_PGPASS_POOLED"
    chmod 600 "$BENCH_PGPASS_POOLED"
    PPORT=$(free_port)
    SHIM_DATABASE_URL="postgres://ama_authenticator:$AUTH_PW@127.0.0.1:$BOUNCE_PORT/$PGDATABASE" \
    AMA_LISTEN_DATABASE_URL=$DIRECT_URL \
        start_shim "$TARGET/release/ama-shim" "$PPORT" "$RESULTS/logs/shim-pooled.log" --db-pooler transaction
    POOL_PID=$STARTED_PID
    log "pgbouncer pid $BOUNCER_PID on 127.0.0.1:$BOUNCE_PORT; pooled shim pid $POOL_PID on 127.0.0.1:$PPORT"
    # sanity: the pooled shim and pgbench through pgbouncer answer like the direct ones
    curl -sSf --cacert "$WORK/cert.pem" --resolve "localhost:$PPORT:127.0.0.1" -H "Authorization: Bearer $JWT0" \
        "https://localhost:$PPORT/api/v1/chat/threads/$T0/events?after_seq=$AFTER0&limit=50" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["events"])==50, d; print("pooled shim read ok:", len(d["events"]), "events")' >&2
    PGPASSFILE=$BENCH_PGPASS_POOLED psql_script "$WORK/pg_read.sql" -U ama_authenticator -h 127.0.0.1 -p "$BOUNCE_PORT" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); assert d.get("status")==200, d; print("the request statement through pgbouncer: status", d.get("status"))' >&2
    direct_pg() { pgbench_run "$1" "$2" "$PGPORT" extended; }
    pooled_pg() { BENCH_PGPASS=$BENCH_PGPASS_POOLED pgbench_run "$1" "$2" "$BOUNCE_PORT" extended; }
    for ROUND in $(seq "$BENCH_ROUNDS"); do
        wait_quiet; raw "$ROUND" part6 load1 "$LOAD1"
        log "  round $ROUND (load average $LOAD1)"
        for r in read write; do
            # which side goes first alternates from round to round and from route to route
            if [ $(((ROUND + ${#r}) % 2)) = 1 ]; then
                wrk_run "direct_shim_$r" "$r.lua"; wrk_run "pool_shim_$r" "$r.lua" pooled
                direct_pg "direct_pgx_$r" "$WORK/pg_$r.sql"; pooled_pg "pool_pgx_$r" "$WORK/pg_$r.sql"
            else
                pooled_pg "pool_pgx_$r" "$WORK/pg_$r.sql"; direct_pg "direct_pgx_$r" "$WORK/pg_$r.sql"
                wrk_run "pool_shim_$r" "$r.lua" pooled; wrk_run "direct_shim_$r" "$r.lua"
            fi
        done
    done
    curl -sS --cacert "$WORK/cert.pem" --resolve "localhost:$PPORT:127.0.0.1" "https://localhost:$PPORT/metrics" |
        grep -E '^ama_shim_(db_errors_total|requests_total)' >"$RESULTS/logs/pooled-metrics.txt" || true
    stop_pid "$POOL_PID"; POOL_PID=
    stop_pid "$BOUNCER_PID"; BOUNCER_PID=
    wait "$BOUNCER_RUNNER" 2>/dev/null || true; BOUNCER_RUNNER=
    cp "$BOUNCER_DIR/pgbouncer.log" "$RESULTS/logs/pgbouncer.log" 2>/dev/null || true
    q -c "ALTER ROLE ama_authenticator RESET statement_timeout" >/dev/null
    log "pgbouncer and the pooled shim stopped"
fi

# --- 3. RSS with idle keep-alive connections ------------------------------------------------------
if has_part 3; then
    log "3. shim RSS with $IDLE_CONNS idle keep-alive TLS connections"
    python3 "$SHIM_DIR/tools.py" idle --port "$PORT" --cacert "$WORK/cert.pem" --jwt "$JWT0" --pid "$SHIM_PID" \
        --n "$IDLE_CONNS" --path "/api/v1/chat/threads/$T0/events?after_seq=$AFTER0&limit=50" | tee "$RESULTS/idle.txt" >&2
fi

# --- 5. commit-to-delivery on live SSE streams ----------------------------------------------------
if has_part 5; then
    SSE_THREADS=${SSE_THREADS:-1}
    log "5. SSE commit-to-delivery: $SSE_STREAMS streams over $SSE_THREADS thread(s), $SSE_MESSAGES messages"
    # every thread has the agent and the same user (USERS[5]), whose JWT opens every stream and
    # posts every message, so the streams of one thread share one (thread, principal) poll; with
    # more than one thread each also has a user of its own (a private thread with the same members
    # is the same thread), who never connects
    if [ "$SSE_THREADS" = 1 ]; then
        TS=$(new_thread "${USERS[5]}")
    else
        EXTRA=$(q -c "WITH u AS (INSERT INTO ama.users (user_id, plan) SELECT gen_random_uuid(), 'basic' FROM generate_series(1, $SSE_THREADS) RETURNING user_id),
                a AS (INSERT INTO ama.actors (actor_id, kind, owner_user_id) SELECT 'user:' || user_id, 'user', user_id FROM u RETURNING owner_user_id)
                SELECT owner_user_id FROM a")
        TS=$(for x in $EXTRA; do
            "${CURL[@]}" -f -X POST "$URL/api/v1/chat/threads" -H "Authorization: Bearer $AGENT_TOKEN" \
                -H 'Content-Type: application/json' -d "{\"target_user_ids\": [\"${USERS[5]}\", \"$x\"]}" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])'
        done | paste -sd,)
    fi
    log "  $(echo "$TS" | tr ',' '\n' | sort -u | wc -l) distinct threads"
    JWTS=$(jwt_of "${USERS[5]}")
    wait_quiet; echo "load1_at_start $LOAD1" >"$RESULTS/sse-load.txt"
    log "  open files limit $(ulimit -n); shim --max-connections 10000 (default), --max-connections-per-ip $PER_IP"
    python3 "$SHIM_DIR/tools.py" sse --port "$PORT" --cacert "$WORK/cert.pem" --thread "$TS" --jwt "$JWTS" \
        --n "$SSE_STREAMS" --m "$SSE_MESSAGES" --gap-ms 100 --pid "$SHIM_PID" --pg-pid "$PM_PID" >"$RESULTS/sse.txt"
    { cat "$RESULTS/sse-load.txt"; echo "load1_at_end $(cut -d' ' -f1 /proc/loadavg)"; } >>"$RESULTS/sse.txt"
    cat "$RESULTS/sse.txt" >&2
    echo "shim_rss_kb_after $(awk '/^VmRSS:/{print $2}' "/proc/$SHIM_PID/status")" | tee -a "$RESULTS/sse.txt" >&2
    echo "shim_connections_refused $(metric_sum ama_shim_connections_refused_total) shed $(metric_sum ama_shim_connections_shed_total)" | tee -a "$RESULTS/sse.txt" >&2
fi

# --- 4. thread growth: poll and agent send at 10^3 .. 10^6 messages --------------------------------
if ! has_part 4; then
    log "suite done"
    exit 0
fi
log "4. thread growth: sizes $SIZES"
declare -A TID SJ
i=1
for n in $SIZES; do
    u=${USERS[$i]}; i=$((i + 1))
    TID[$n]=$(new_thread "$u")
    log "  loading $n messages into ${TID[$n]}"
    load_msgs "${TID[$n]}" "$n" "$u"
    SJ[$n]=$(python3 "$SHIM_DIR/tools.py" claims "$(jwt_of "$u")")
done
q -c "VACUUM ANALYZE ama.messages" >/dev/null
q -c "SELECT count(*) AS messages, pg_size_pretty(pg_total_relation_size('ama.messages')) AS size FROM ama.messages" | tee "$RESULTS/growth-table.txt" >&2
for n in $SIZES; do
    last=$(q -c "SELECT last_seq FROM ama.threads WHERE thread_id = '${TID[$n]}'")
    write_script "$WORK/poll_$n.sql" "$(req_sql NULL :claims :args)" route=events.poll kind=jwt "claims=${SJ[$n]}" ip=127.0.0.1 \
        "args={\"path\": {\"thread_id\": \"${TID[$n]}\"}, \"query\": {\"after_seq\": \"$((last - 50))\", \"limit\": \"50\"}, \"body\": null}"
    write_script "$WORK/send_$n.sql" "\\set r random(1, 1000000000)
$(req_sql :cred NULL "$ARGS_PER_CALL")" route=messages.agent_send kind=agent "cred=$AGENT_TOKEN" ip=127.0.0.1 \
        "args_head={\"path\": {\"thread_id\": \"${TID[$n]}\"}, \"query\": {}, \"body\": {\"content\": \"agent "
    psql_script "$WORK/poll_$n.sql" -U ama_authenticator -h 127.0.0.1 | python3 -c 'import json,sys; d=json.load(sys.stdin); b=d.get("body") or {}; ev=b.get("events", []); assert d.get("status")==200 and len(ev)==50, str(d)[:300]' ||
        { log "poll at size $n does not return 50 events"; exit 1; }
done
reset_thread() {   # drop what the agent-send run added, so each size stays at its nominal size
    q >/dev/null <<SQL
DELETE FROM ama.messages m USING ama.threads t WHERE t.thread_id = '$1' AND m.thread_id = t.thread_id AND m.thread_seq > $2;
UPDATE ama.threads SET last_seq = $2 WHERE thread_id = '$1';
SQL
}
for ROUND in $(seq "$BENCH_ROUNDS"); do
    wait_quiet; raw "$ROUND" part4 load1 "$LOAD1"
    order=$SIZES; [ $((ROUND % 2)) = 0 ] && order=$(echo "$SIZES" | tr ' ' '\n' | tac | tr '\n' ' ')
    for n in $order; do
        last=$(q -c "SELECT last_seq FROM ama.threads WHERE thread_id = '${TID[$n]}'")
        pgbench_run "poll_$n" "$WORK/poll_$n.sql"
        pgbench_run "send_$n" "$WORK/send_$n.sql"
        reset_thread "${TID[$n]}" "$last"
    done
    q -c "VACUUM ama.messages" >/dev/null
done
log "suite done"
