#!/usr/bin/env bash
# The shim's side of one request (docs/performance.md). Runs inside `ama-harness exec` after db.sh
# (its fixtures: user a1, the 1,000-message thread, the agent token in $RESULTS/scripts/token).
# Starts the release shim (and, with BUDGET_INSTR_SHIM=/path, a build with shim-phases.patch
# applied, on another port), then measures:
#   A. TLS: curl, a new connection per request (one process each) vs keep-alive (one process),
#      and tls.py (one process, TLS context set up once: handshake, first and second request);
#   B. Server-Timing phases per request (wrk + timing.lua), one connection and eight, for the
#      events poll (JWT) and the agent send (agent token); /health keep-alive vs Connection: close;
#      shim CPU per request from /proc;
#   C. perf profiles (DWARF call graphs) of the shim and of its database backends under the poll
#      load, 8 connections, rendered to SVG flame graphs with inferno (BUDGET_PERF=0 skips).
#      And a profile of the shim while tls.py opens new connections one at a time (the
#      handshake's share, the shim's CPU per connection).
#   /health is not used for load (the shim's endpoint limit answers 429 past a few requests).
# Output in $RESULTS: shim-raw.txt, curl-*.txt, wrk logs, perf/*.svg, perf/*.collapsed.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
SECS=${BUDGET_SECS:-4}
ROUNDS=${BUDGET_ROUNDS:-3}
NCURL=${BUDGET_NCURL:-200}
PERF_SECS=${BUDGET_PERF_SECS:-10}
SHIM=${SHIM:-$ROOT/target/release/ama-shim}
INSTR=${BUDGET_INSTR_SHIM:-}
RAW=$RESULTS/shim-raw.txt
: >"$RAW"
mkdir -p "$RESULTS/logs" "$RESULTS/perf"
WORK=$(mktemp -d /tmp/ama-budget-shim.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
raw() { echo "$*" >>"$RAW"; }

T1=00000000-0000-4000-8000-00000000f001
T3=00000000-0000-4000-8000-00000000f003
TOKEN=$(cat "$RESULTS/scripts/token")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/jwt_secret"
JWT=$(python3 "$BENCH_DIR/shim/tools.py" jwt "$WORK/jwt_secret" 00000000-0000-4000-8000-0000000000a1)
AUTH_PW=$(awk -F: '$4 == "ama_authenticator" {print $5; exit}' "$PGPASSFILE")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ulimit -n "$(ulimit -Hn)"
start_shim() {   # binary port log -> STARTED_PID
    AMA_DATABASE_URL="postgres://ama_authenticator:$AUTH_PW@127.0.0.1:$PGPORT/$PGDATABASE" \
    "$1" --listen "127.0.0.1:$2" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
        --jwt-secret-file "$WORK/jwt_secret" --log-level warn >"$3" 2>&1 &
    STARTED_PID=$!; PIDS+=("$STARTED_PID")
    for _ in $(seq 100); do curl -sf --cacert "$WORK/cert.pem" --resolve "localhost:$2:127.0.0.1" "https://localhost:$2/health" >/dev/null && break; sleep 0.2; done
    curl -sSf --cacert "$WORK/cert.pem" --resolve "localhost:$2:127.0.0.1" "https://localhost:$2/ready" >/dev/null ||
        { log "shim $1 not ready"; cat "$3" >&2; exit 1; }
}
PORT=$(free_port); start_shim "$SHIM" "$PORT" "$RESULTS/logs/shim.log"; SHIM_PID=$STARTED_PID
SHIMS=("plain $PORT $SHIM_PID")
if [ -n "$INSTR" ]; then
    IPORT=$(free_port); start_shim "$INSTR" "$IPORT" "$RESULTS/logs/shim-instr.log"
    SHIMS+=("instr $IPORT $STARTED_PID")
fi
POLL="/api/v1/chat/threads/$T1/events?after_seq=500&limit=50"
SEND="/api/v1/chat/threads/$T3/agent-messages"
C() { local port=$1; shift; curl -sS --http1.1 --cacert "$WORK/cert.pem" --resolve "localhost:$port:127.0.0.1" "$@"; }
C "$PORT" -f -H "Authorization: Bearer $JWT" "https://localhost:$PORT$POLL" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["events"])==50, d' || { log "poll through the shim failed"; exit 1; }
C "$PORT" -f -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"content":"budget check"}' "https://localhost:$PORT$SEND" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["accepted"], d' || { log "agent send through the shim failed"; exit 1; }
C "$PORT" -v -o /dev/null "https://localhost:$PORT/health" 2>&1 | grep -E 'SSL connection using|ALPN: server' | sed 's/^\* *//' >"$RESULTS/tls.txt" || true
log "shim $SHIM_PID on $PORT${INSTR:+, instrumented on $IPORT}; $(tr '\n' ' ' <"$RESULTS/tls.txt")"

# --- A. TLS: a new connection per request vs keep-alive (curl, same client both ways) ----------
W='%{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total} %{http_code}\n'
curl_new() {   # label path [curl args...]: NCURL processes, one request each
    local label=$1 path=$2; shift 2
    for _ in $(seq "$NCURL"); do C "$PORT" -o /dev/null -w "$W" "$@" "https://localhost:$PORT$path"; done >"$RESULTS/curl-$label-new.txt"
}
curl_ka() {    # label path [curl args...]: one process, NCURL requests on one connection
    local label=$1 path=$2; shift 2
    for _ in $(seq "$NCURL"); do printf 'url = "https://localhost:%s%s"\noutput = "/dev/null"\n' "$PORT" "$path"; done >"$WORK/urls"
    C "$PORT" -w "$W" "$@" -K "$WORK/urls" >"$RESULTS/curl-$label-ka.txt"
}
log "A. TLS handshake: curl, $NCURL requests each, new connections vs keep-alive"
curl_new health /health; curl_ka health /health
curl_new poll "$POLL" -H "Authorization: Bearer $JWT"; curl_ka poll "$POLL" -H "Authorization: Bearer $JWT"
# one client that sets TLS up once: handshake, first request, keep-alive request (tls.py)
python3 "$BENCH_DIR/budget/tls.py" --port "$PORT" --cacert "$WORK/cert.pem" --path "$POLL" --auth "Bearer $JWT" \
    --n "$NCURL" >"$RESULTS/tls-poll.txt"
cat "$RESULTS/tls-poll.txt" >&2

# --- B. Server-Timing phases and shim CPU per request ------------------------------------------
shim_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wrk_run() {   # name shim(plain|instr) conns path auth [body] [extra header]
    local name=$1 which=$2 conns=$3 path=$4 auth=$5 body=${6:-} extra=${7:-} port pid s
    for s in "${SHIMS[@]}"; do read -r w p i <<<"$s"; [ "$w" = "$which" ] && port=$p && pid=$i; done
    local out=$RESULTS/logs/$name.$which.c$conns.r$ROUND.log t0 t1
    local threads=$(( conns < 2 ? 1 : 2 ))
    local args=(-t"$threads" -c"$conns" -d"${SECS}s" -s "$BENCH_DIR/budget/timing.lua")
    [ -n "$extra" ] && args+=(-H "$extra")
    rm -f "$WORK"/timing.*
    t0=$(shim_ticks "$pid")
    METHOD=$([ -n "$body" ] && echo POST || echo GET) URLPATH="$path" AUTH="$auth" BODY="$body" TIMING_OUT="$WORK/timing" \
        wrk "${args[@]}" "https://127.0.0.1:$port" >"$out" 2>&1
    t1=$(shim_ticks "$pid")
    cat "$WORK"/timing.* 2>/dev/null | python3 -c '
import re, statistics, sys
ph = {}
for line in sys.stdin:
    for k, v in re.findall(r"(\w+);dur=(\d+(?:\.\d+)?)(?=,|$)", line.strip()):
        ph.setdefault(k, []).append(float(v) * 1000)
for k, xs in ph.items():
    print("PHASE", k, round(statistics.median(xs), 2), round(statistics.fmean(xs), 2), len(xs))' >>"$out"
    local line; line=$(grep '^RESULT' "$out") || { log "wrk $name: no result"; cat "$out" >&2; exit 1; }
    read -r _ _ reqs _ _ _ rps _ p50 _ p99 _ mean _ serr _ sockerr <<<"$line"
    [ "$serr" = 0 ] && [ "$sockerr" = 0 ] || { log "wrk $name: $serr HTTP errors, $sockerr socket errors"; cat "$out" >&2; exit 1; }
    local key="$name.$which.c$conns"
    raw "$ROUND $key rps $rps"; raw "$ROUND $key p50_us $p50"; raw "$ROUND $key mean_us $mean"
    raw "$ROUND $key shim_cpu_us $(awk -v d=$((t1 - t0)) -v n="$reqs" 'BEGIN{print d*10000/n}')"
    awk -v r="$ROUND" -v k="$key" '/^PHASE/{print r, k, "st_" $2 "_med_us", $3; print r, k, "st_" $2 "_mean_us", $4}' "$out" >>"$RAW"
    log "  $key: $rps req/s, p50 $p50 us, $(awk '/^PHASE/{printf "%s %s ", $2, $3}' "$out")"
}
log "B. Server-Timing and shim CPU: wrk ${SECS}s x $ROUNDS rounds"
SENDBODY='{"content":"budget %n"}'
for ROUND in $(seq "$ROUNDS"); do
    raw "$ROUND load load1 $(cut -d' ' -f1 /proc/loadavg)"
    for s in "${SHIMS[@]}"; do
        read -r which _ _ <<<"$s"
        for c in 1 8; do
            wrk_run poll "$which" "$c" "$POLL" "Bearer $JWT"
            wrk_run send "$which" "$c" "$SEND" "Bearer $TOKEN" "$SENDBODY"
        done
    done
done

# --- C. flame graphs under the poll load (8 connections) ----------------------------------------
if [ "${BUDGET_PERF:-1}" = 1 ]; then
    command -v inferno-flamegraph >/dev/null || { log "inferno missing: cargo install inferno"; exit 1; }
    log "C. perf: shim and backends under the poll load, 8 connections, ${PERF_SECS}s"
    ROUND=perf
    # warm the pool so that every backend that will serve the load exists
    wrk -t2 -c8 -d2s -H "Authorization: Bearer $JWT" "https://127.0.0.1:$PORT$POLL" >/dev/null
    BPIDS=$(q -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE usename = 'ama_authenticator' AND application_name = 'ama-shim' AND query !~ 'LISTEN'")
    perf record -q -F 499 --call-graph dwarf,16384 -p "$SHIM_PID" -o "$WORK/shim.data" -- sleep "$PERF_SECS" 2>"$RESULTS/logs/perf-shim.log" &
    P1=$!
    perf record -q -F 499 --call-graph dwarf,16384 -p "$BPIDS" -o "$WORK/pg.data" -- sleep "$PERF_SECS" 2>"$RESULTS/logs/perf-pg.log" &
    P2=$!
    sleep 0.5
    wrk_run poll_perf plain 8 "$POLL" "Bearer $JWT" &
    W1=$!
    wait "$P1" "$P2" "$W1"
    # the shim alone while tls.py opens new connections (a full TLS 1.3 handshake and two polls
    # on each, one at a time): the handshake's share and the shim's CPU per connection. (wrk with
    # Connection: close is no substitute: its profile shows no handshake at all.)
    t0=$(shim_ticks "$SHIM_PID")
    perf record -q -F 999 --call-graph dwarf,16384 -p "$SHIM_PID" -o "$WORK/shimclose.data" 2>>"$RESULTS/logs/perf-shim.log" &
    P1=$!
    sleep 0.5
    python3 "$BENCH_DIR/budget/tls.py" --port "$PORT" --cacert "$WORK/cert.pem" --path "$POLL" --auth "Bearer $JWT" \
        --n "$((NCURL * 2))" >"$RESULTS/tls-perf.txt"
    kill -INT "$P1"; wait "$P1" || true
    t1=$(shim_ticks "$SHIM_PID")
    raw "perf newconn shim_cpu_us_per_conn $(awk -v d=$((t1 - t0)) -v n=$((NCURL * 2)) 'BEGIN{print d*10000/n}')"
    for x in shim pg shimclose; do
        perf script -i "$WORK/$x.data" 2>/dev/null | inferno-collapse-perf >"$RESULTS/perf/$x.collapsed"
        rm -f "$WORK/$x.data"
    done
    inferno-flamegraph --title "ama-shim under the events poll (8 connections, HTTPS keep-alive), $(date -u +%F)" \
        --minwidth 0.2 <"$RESULTS/perf/shim.collapsed" >"$RESULTS/perf/shim-poll.svg"
    inferno-flamegraph --title "ama-shim: new TLS connections (full handshake, then two polls each; one at a time), $(date -u +%F)" \
        --minwidth 0.2 <"$RESULTS/perf/shimclose.collapsed" >"$RESULTS/perf/shim-poll-newconn.svg"
    inferno-flamegraph --title "PostgreSQL backends serving the shim's events poll (8 connections), $(date -u +%F)" \
        --minwidth 0.2 <"$RESULTS/perf/pg.collapsed" >"$RESULTS/perf/backend-poll.svg"
    ls -la "$RESULTS/perf" >&2
fi
raw "end load load1 $(cut -d' ' -f1 /proc/loadavg)"
log "shim side done"
