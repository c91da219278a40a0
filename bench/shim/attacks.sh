#!/usr/bin/env bash
# Shim memory and service under attack (issue 12): "bounded memory under each attack".
#
#   bench/shim/attacks.sh
#   ATTACKS="idle:5000 creds:32" LENGTHS="20 60" bench/shim/attacks.sh
#
# Builds (release) and installs ama_pg unless BENCH_SKIP_BUILD=1, starts a throwaway cluster
# (target/release/ama-harness exec), and for each attack and each length in LENGTHS (seconds,
# default "20 60": memory must plateau, not grow with the attack's length) starts a fresh release
# shim with --max-connections 1000 --idle-timeout-ms 20000 --trusted-proxies 127.0.0.1/32
# (otherwise defaults: --max-connections-per-ip 256, --header-read-timeout-ms 10000,
# --request-timeout-ms 30000, --body-limit 65536), and bench/shim/attacks.py watch records the
# shim's VmRSS every 200 ms and a normal client from 127.0.0.2 every second (a fresh TLS
# connection, GET /health, an authenticated read) for 5 s before, during, and 5 s after the
# attack. Attacks (NAME:SIZE in ATTACKS), each from 127.0.x.y source addresses, 200 per address:
#   idle:N       N TCP connections that never send a byte (reopened 1 s after the shim closes one)
#   slowloris:N  N TLS connections sending a request head one byte a second
#   h2ping:N     N HTTP/2 connections (half with one GET /health) that only answer PINGs and PING
#   bigbody:N    N loops of POSTs with a 1 MiB body (limit 64 KiB), Content-Length and chunked
#   slowbody:N   N POSTs with Content-Length 60000 whose body comes one byte a second
#   creds:N      wrk -c N: random malformed Bearer tokens, each from a random X-Forwarded-For address
# Results: bench/shim/results/attacks.txt (one line per run), per run in results/logs/attack-*:
# the attack's own counts, the watcher's summary and samples, the shim's /metrics at the end.
# Installs, when missing: wrk (apt-get) and the Python package h2 (pip, for h2ping).
# Knobs: ATTACKS (default "idle:5000 slowloris:1000 h2ping:1000 bigbody:16 slowbody:600
# slowbody:1200 creds:32"), LENGTHS ("20 60"), LOAD_MAX (2), LOAD_WAIT_SECS (180), BENCH_SKIP_BUILD=1.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

ATTACKS=${ATTACKS:-"idle:5000 slowloris:1000 h2ping:1000 bigbody:16 slowbody:600 slowbody:1200 creds:32"}
LENGTHS=${LENGTHS:-"20 60"}
if [ "${1:-}" != --inside ]; then
    case ${1:-} in -h|--help) sed -n '2,26p' "$0"; exit 0 ;; esac
    command -v wrk >/dev/null || { log "wrk missing: installing with apt-get"; apt-get install -y -qq wrk >/dev/null; }
    if [[ " $ATTACKS" == *" h2ping:"* ]] && ! python3 -c 'import h2' 2>/dev/null; then
        log "Python package h2 missing: installing with pip"
        python3 -m pip install -q h2
    fi
    bench_prepare
    rm -f "$RESULTS"/logs/attack-*
    { machine_info; echo "settings: ATTACKS='$ATTACKS' LENGTHS='$LENGTHS'"; } >"$RESULTS/attacks.txt"
    cat "$RESULTS/attacks.txt" >&2
    "$ROOT/target/release/ama-harness" exec -- bash "$0" --inside
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/attacks.txt"
    cat "$RESULTS/attacks.txt"
    exit 0
fi

ulimit -n "$(ulimit -Hn)"
WATCH_PID=
cleanup() {
    [ -n "$WATCH_PID" ] && kill -TERM "$WATCH_PID" 2>/dev/null
    bench_cleanup
}
trap cleanup EXIT
bench_setup
OUT=$RESULTS/attacks.txt
FLAGS=(--max-connections 1000 --idle-timeout-ms 20000 --trusted-proxies 127.0.0.1/32)
echo "shim flags: ${FLAGS[*]}" >>"$OUT"
port=$(free_port)
start_shim "$port" "$RESULTS/logs/attack-setup-shim.log"
TID=$(new_thread_with_messages "$port" 1000)
stop_pid "$STARTED_PID"
READ="/api/v1/chat/threads/$TID/events?after_seq=500&limit=50"
counter() { awk -v m="$1" '$1==m {print $2; f=1} END{if (!f) print 0}' "$2"; }
by_status() {   # metrics file: "200:n 401:n ..." summed over routes
    awk '/^ama_shim_requests_total/ { match($0, /status="[0-9]+"/); s=substr($0, RSTART+8, 3); n[s]+=$2 }
        END { for (s in n) printf "%s:%d ", s, n[s] }' "$1" | tr ' ' '\n' | sort | tr '\n' ' '
}
{
    echo
    echo "attack size secs | rss MB: base peak peak_1st_third peak_last_third after | normal client: ok/probes, total ms p50 max (before: p50 max) | shed refused idle_closed | requests by status | attack's counts"
} >>"$OUT"
for spec in $ATTACKS; do
    name=${spec%%:*} size=${spec#*:}
    for secs in $LENGTHS; do
        tag=attack-$name-$size-$secs
        wait_quiet
        port=$(free_port)
        start_shim "$port" "$RESULTS/logs/$tag-shim.log" "${FLAGS[@]}"
        pid=$STARTED_PID
        log "$name x $size for ${secs}s: shim pid $pid (load average $LOAD1)"
        python3 "$SHIM_DIR/attacks.py" watch --port "$port" --cacert "$WORK/cert.pem" --path "$READ" --jwt "$JWT0" \
            --pid "$pid" --out "$RESULTS/logs/$tag.watch" &
        WATCH_PID=$!
        sleep 5
        kill -USR1 "$WATCH_PID"
        case $name in
            creds)
                env THREAD="$TID" BENCH_SHIM_DIR="$SHIM_DIR" wrk -t2 -c"$size" -d"${secs}s" -s "$SHIM_DIR/badcreds.lua" \
                    "https://127.0.0.1:$port" >"$RESULTS/logs/$tag.out" 2>&1 || true ;;
            *)
                python3 "$SHIM_DIR/attacks.py" "$name" --port "$port" --cacert "$WORK/cert.pem" --n "$size" --secs "$secs" \
                    >"$RESULTS/logs/$tag.out" 2>&1 || { log "attack $name failed"; tail "$RESULTS/logs/$tag.out" >&2; } ;;
        esac
        kill -USR2 "$WATCH_PID"
        sleep 5
        metrics_of "$port" >"$RESULTS/logs/$tag.metrics" || true
        kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true; WATCH_PID=
        stop_pid "$pid"
        w=$RESULTS/logs/$tag.watch m=$RESULTS/logs/$tag.metrics
        mb() { awk -v k="$(awk -v k="$1" '$1==k {print $2}' "$w")" 'BEGIN{ if (k=="" || k=="n/a") print "n/a"; else printf "%.1f", k/1024 }'; }
        counts=$(grep -v '^error_\|^$' "$RESULTS/logs/$tag.out" | grep -E '^[a-z_0-9]+ [0-9.]+$' | tr '\n' ' ' || true)
        [ "$name" = creds ] && counts=$(grep '^RESULT' "$RESULTS/logs/$tag.out" | awk '{printf "requests %s rps %s", $3, $7}')
        errs=$(grep '^error_' "$RESULTS/logs/$tag.out" | tr '\n' ' ' || true)
        line="$name $size $secs | $(mb rss_baseline_kb) $(mb rss_peak_kb) $(mb rss_peak_first_third_kb) $(mb rss_peak_last_third_kb) $(mb rss_after_kb)"
        line+=" | $(awk '$1=="normal_probes" {print $4 "/" $2}' "$w"), $(awk '$1=="normal_total_ms" {print $3, $5}' "$w") (before: $(awk '$1=="normal_before_total_ms" {print $3, $5}' "$w"))"
        line+=" | $(counter ama_shim_connections_shed_total "$m") $(counter ama_shim_connections_refused_total "$m") $(counter ama_shim_idle_connections_closed_total "$m")"
        line+=" | $(by_status "$m")| $counts${errs:+ $errs}"
        echo "$line" | tee -a "$OUT" >&2
        grep -E '^normal_(statuses|worst)' "$w" | sed 's/^/    /' | tee -a "$OUT" >&2
    done
done
