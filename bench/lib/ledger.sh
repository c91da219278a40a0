#!/usr/bin/env bash
# Ledger benchmark (issue 4). Runs inside `ama-harness exec`; see bench/run.sh.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
L=$BENCH_DIR/ledger
RAW=$RESULTS/ledger-raw.txt
SWEEP=$RESULTS/ledger-keys-raw.txt
OUT=$RESULTS/ledger.txt
: >"$RAW"; : >"$SWEEP"

# --- a private redis on a free loopback port ---------------------------------------------------
REDIS_PORT=""
for p in $(seq 16379 16479); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then REDIS_PORT=$p; break; fi
done
[ -n "$REDIS_PORT" ] || { log "no free port for redis"; exit 1; }
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --logfile "$RESULTS/redis.log" &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_VERSION=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | awk -F: '/^redis_version/{print $2}' | tr -d '\r')
SHA=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" script load "$(cat "$L/gcra.lua")")
# Same policy as 'bench': 2e9 per hour, burst 1000, cost 1.
GCRA_ARGS=(2000000000 3600 1000 1)
# sanity: allowed, and a denying policy denies
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" evalsha "$SHA" 1 sanity "${GCRA_ARGS[@]}" | head -1)" = 1 ]
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" evalsha "$SHA" 1 sanity2 1 3600 0 1 >/dev/null
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" evalsha "$SHA" 1 sanity2 1 3600 0 1 | head -1)" = 0 ]

# redis_run NAME N KEYSPEC [-r R] -> "rps avg_latency_ms"
redis_run() {
    local name=$1 n=$2 key=$3; shift 3
    mkdir -p "$RESULTS/redis"
    local out="$RESULTS/redis/$name.$(date +%s%N).csv"
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CLIENTS" --threads "$THREADS" -n "$n" "$@" --csv \
        EVALSHA "$SHA" 1 "$key" "${GCRA_ARGS[@]}" >"$out" 2>&1
    awk -F'"' 'NR==2 {print $4, $6}' "$out"
}
# redis-benchmark has no duration option: size -n so a run lasts about BENCH_SECS.
calib() { local rps; rps=$(redis_run calib 20000 "$@" | awk '{print int($1)}'); echo $(( rps * BENCH_SECS )); }

# --- fixtures ----------------------------------------------------------------------------------
q -f "$L/setup.sql"
q -c "SELECT * FROM ama.rate_limit('bench', 'ip:probe')" >/dev/null
N_100K=$(calib 'key:__rand_int__' -r 100000)
N_HOT=$(calib 'key:hot')
log "redis $REDIS_VERSION on port $REDIS_PORT; -n $N_100K (100k keys), $N_HOT (hot)"

counters() { q -c "SELECT coalesce(sum(allowed),0) || ' ' || coalesce(sum(denied),0) FROM ama.rate_limit_counters WHERE policy = '$1'"; }

# --- main comparison, interleaved rounds -------------------------------------------------------
VARIANTS=(select1 srf_floor ledger_100k ledger_100k_from ledger_hot ledger_deny counter_100k counter_hot redis_100k redis_hot)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        case $v in
            redis_100k) res=$(redis_run "$v" "$N_100K" 'key:__rand_int__' -r 100000) ;;
            redis_hot)  res=$(redis_run "$v" "$N_HOT" 'key:hot') ;;
            ledger_deny)
                before=$(counters bench_deny)
                res=$(pgbench_run "$v" "$L/$v.sql")
                after=$(counters bench_deny)
                read -r a0 d0 <<<"$before"; read -r a1 d1 <<<"$after"
                echo "$r $v denied_fraction $(awk -v a=$((a1 - a0)) -v d=$((d1 - d0)) 'BEGIN{print (a+d) ? d/(a+d) : 0}')" >>"$RAW" ;;
            *) res=$(pgbench_run "$v" "$L/$v.sql") ;;
        esac
        read -r tps lat <<<"$res"
        echo "$r $v tps $tps" >>"$RAW"; echo "$r $v lat_ms $lat" >>"$RAW"
        log "round $r $v: $tps tps, $lat ms"
    done
done
# the counter table after the run (bloat etc.)
q -c "SELECT pg_size_pretty(pg_total_relation_size('bench.counters')) || ', ' || count(*) || ' rows' FROM bench.counters" >"$RESULTS/ledger-counters-table.txt"
MEM_DEFAULT=$(q -c "SELECT (SELECT slots FROM ama.rate_limit_ledger()) || ' slots, ' || pg_size_pretty(size) || ' (' || size || ' bytes)' FROM pg_shmem_allocations WHERE name = 'ama_pg rate-limit ledger'")
EVICT_DEFAULT=$(q -c "SELECT live_evictions FROM ama.rate_limit_ledger()")

# --- key-count sweep with 2^21 slots -----------------------------------------------------------
q -c "ALTER SYSTEM SET ama.ratelimit_slots = 2097152"
restart_server
for _ in $(seq 50); do q -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
MEM_BIG=$(q -c "SELECT (SELECT slots FROM ama.rate_limit_ledger()) || ' slots, ' || pg_size_pretty(size) || ' (' || size || ' bytes)' FROM pg_shmem_allocations WHERE name = 'ama_pg rate-limit ledger'")
q -c "SELECT slots, live_evictions, generation FROM ama.rate_limit_ledger()" >"$RESULTS/ledger-shmem.txt"
q -c "SELECT name, size, allocated_size FROM pg_shmem_allocations WHERE name = 'ama_pg rate-limit ledger'" >>"$RESULTS/ledger-shmem.txt"
KEYS=(1000 10000 100000 1000000)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    res=$(pgbench_run sweep_select1 "$L/select1.sql"); read -r tps lat <<<"$res"
    echo "$r select1 tps $tps" >>"$SWEEP"; log "sweep round $r select1: $tps tps"
    # the main run's 100k-key script again, to compare the same script under the bigger ledger
    res=$(pgbench_run sweep_ledger_100k "$L/ledger_100k.sql"); read -r tps lat <<<"$res"
    echo "$r ledger_100k tps $tps" >>"$SWEEP"; log "sweep round $r ledger_100k.sql: $tps tps"
    for k in "${KEYS[@]}"; do
        res=$(pgbench_run "sweep_$k" "$L/ledger_keys.sql" -D nkeys="$k"); read -r tps lat <<<"$res"
        echo "$r keys_$k tps $tps" >>"$SWEEP"; echo "$r keys_$k lat_ms $lat" >>"$SWEEP"
        echo "$r keys_$k evictions $(q -c 'SELECT live_evictions FROM ama.rate_limit_ledger()')" >>"$SWEEP"
        log "sweep round $r keys=$k: $tps tps"
    done
done

# --- durable commits: the counter table pays a WAL flush per request, the ledger writes no WAL ---
# The harness runs with fsync/synchronous_commit/full_page_writes off, which flatters the counter
# table; production runs with them on. Restart with them on and compare again.
restart_server_with() {
    local data dir port sock
    data=$(q -c 'show data_directory'); dir=$(dirname "$data")
    port=$(q -c 'show port'); sock=$(q -c 'show unix_socket_directories')
    local opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$sock -c shared_preload_libraries=ama_pg -c max_connections=200 $*"
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "$opts" -w -t 60 restart >/dev/null
    else
        "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "$opts" -w -t 60 restart >/dev/null
    fi
    for _ in $(seq 50); do q -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
}
DURABLE=$RESULTS/ledger-durable-raw.txt
: >"$DURABLE"
restart_server_with -c fsync=on -c synchronous_commit=on -c full_page_writes=on
DURABLE_SETTINGS=$(q -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")
DVARIANTS=(select1 ledger_hot counter_hot counter_100k)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for v in "${DVARIANTS[@]}"; do
        res=$(pgbench_run "durable_$v" "$L/$v.sql"); read -r tps lat <<<"$res"
        echo "$r $v tps $tps" >>"$DURABLE"; log "durable round $r $v: $tps tps"
    done
done

# --- report ------------------------------------------------------------------------------------
med() { get_vals "$1" "$2" "$3" | median; }
{
    echo "## Ledger (issue 4): $CLIENTS clients, -j $THREADS, ${BENCH_SECS}s x $BENCH_ROUNDS rounds, median; redis $REDIS_VERSION"
    echo
    echo "| variant | median TPS | median latency ms |"
    echo "|---|---:|---:|"
    for v in "${VARIANTS[@]}"; do
        echo "| $v | $(fmt "$(med "$RAW" "$v" tps)" 0) | $(fmt "$(med "$RAW" "$v" lat_ms)" 3) |"
    done
    echo
    echo "ledger_deny: median fraction of calls denied = $(fmt "$(med "$RAW" ledger_deny denied_fraction)" 3)"
    echo
    echo "| ratio (median of per-round ratios) | value | goal | verdict |"
    echo "|---|---:|---:|---|"
    row() { local x; x=$(ratio_median "$RAW" "$2" "$3" tps); echo "| $1 | $(fmt "$x" 2) | $4 $5 | $(verdict "$x" "$4" "$5") |"; }
    row "ledger 100k keys / SELECT 1" ledger_100k select1 ">=" 0.8
    x=$(ratio_median "$RAW" ledger_100k_from select1 tps); echo "| ledger 100k keys, called in the FROM clause / SELECT 1 | $(fmt "$x" 2) | (info) | |"
    row "ledger hot key / SELECT 1" ledger_hot select1 ">=" 0.6
    row "ledger 100k keys (denying) / SELECT 1" ledger_deny select1 ">=" 0.8
    x=$(ratio_median "$RAW" ledger_hot counter_hot tps); echo "| ledger hot key / counter table hot key, fsync off (the goal is checked with durable commits below) | $(fmt "$x" 2) | (info) | |"
    row "ledger 100k keys / counter table 100k keys" ledger_100k counter_100k ">=" 1
    row "ledger 100k keys / redis GCRA 100k keys" ledger_100k redis_100k ">=" 1.0
    row "ledger hot key / redis GCRA hot key" ledger_hot redis_hot ">=" 1.0
    row "SELECT 1 / redis GCRA 100k keys (the ceiling)" select1 redis_100k ">=" 0
    echo
    echo "The ledger scripts call \`SELECT (ama.rate_limit(...)).allowed\` (target list); ledger_100k_from calls \`SELECT allowed FROM ama.rate_limit(...)\`."
    echo "srf_floor (\`SELECT slots FROM ama.rate_limit_ledger()\`, a pgrx set-returning function doing nothing, in the FROM clause) / SELECT 1: $(fmt "$(ratio_median "$RAW" srf_floor select1 tps)" 2); ledger 100k keys in the FROM clause / srf_floor: $(fmt "$(ratio_median "$RAW" ledger_100k_from srf_floor tps)" 2)"
    echo
    echo "### Durable commits ($DURABLE_SETTINGS)"
    echo
    echo "| variant | median TPS |"
    echo "|---|---:|"
    for v in "${DVARIANTS[@]}"; do echo "| $v | $(fmt "$(med "$DURABLE" "$v" tps)" 0) |"; done
    echo
    echo "| ratio (durable) | value | goal | verdict |"
    echo "|---|---:|---:|---|"
    x=$(ratio_median "$DURABLE" ledger_hot counter_hot tps); echo "| ledger hot key / counter table hot key | $(fmt "$x" 2) | >= 10 | $(verdict "$x" ">=" 10) |"
    x=$(ratio_median "$DURABLE" ledger_hot select1 tps); echo "| ledger hot key / SELECT 1 | $(fmt "$x" 2) | >= 0.6 | $(verdict "$x" ">=" 0.6) |"
    x=$(ratio_median "$DURABLE" counter_100k select1 tps); echo "| counter table 100k keys / SELECT 1 | $(fmt "$x" 2) | (info) | |"
    echo
    echo "### Key-count sweep (ama.ratelimit_slots = 2097152)"
    echo
    echo "| keys | median TPS | / SELECT 1 | live evictions after run |"
    echo "|---:|---:|---:|---:|"
    for k in "${KEYS[@]}"; do
        echo "| $k | $(fmt "$(med "$SWEEP" "keys_$k" tps)" 0) | $(fmt "$(ratio_median "$SWEEP" "keys_$k" select1 tps)" 2) | $(get_vals "$SWEEP" "keys_$k" evictions | tail -1) |"
    done
    echo "| SELECT 1 | $(fmt "$(med "$SWEEP" select1 tps)" 0) | 1.00 | |"
    echo "| (ledger_100k.sql of the main run) | $(fmt "$(med "$SWEEP" ledger_100k tps)" 0) | $(fmt "$(ratio_median "$SWEEP" ledger_100k select1 tps)" 2) | |"
    spread=$(for k in "${KEYS[@]}"; do med "$SWEEP" "keys_$k" tps; done | sort -g | awk 'NR==1{mn=$1} {mx=$1} END{print mx/mn}')
    echo
    echo "max/min median TPS across key counts: $(fmt "$spread" 2) (goal <= 1.5: $(verdict "$spread" "<=" 1.5))"
    echo
    echo "Shared memory ('ama_pg rate-limit ledger' in pg_shmem_allocations), fixed at startup:"
    echo "- default ama.ratelimit_slots: $MEM_DEFAULT; live evictions after the main runs: $EVICT_DEFAULT"
    echo "- ama.ratelimit_slots = 2097152: $MEM_BIG"
    echo
    echo "Counter table after the runs: $(cat "$RESULTS/ledger-counters-table.txt")"
} >"$OUT"
cat "$OUT"
