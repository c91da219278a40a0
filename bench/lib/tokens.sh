#!/usr/bin/env bash
# Token-verification benchmark (issue 3). Runs inside `ama-harness exec`; see bench/run.sh.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$BENCH_DIR/lib/common.sh"
T=$BENCH_DIR/tokens
RAW=$RESULTS/tokens-raw.txt
OUT=$RESULTS/tokens.txt
: >"$RAW"
NTOK=${BENCH_NTOKENS:-100000}

log "tokens: creating $NTOK agent tokens"
q -v ntokens="$NTOK" -f "$T/setup.sql" >/dev/null
[ "$(q -c 'SELECT count(*) FROM ama.agent_tokens')" = "$NTOK" ]
# both verifiers accept the same token and agree on the result
a=$(q -c "SELECT token_id || ' ' || agent_actor_id FROM ama.verify_agent_token((SELECT raw FROM bench.tokens WHERE i = 2))")
b=$(q -c "SELECT token_id || ' ' || agent_actor_id FROM bench.verify_agent_token_plpgsql((SELECT raw FROM bench.tokens WHERE i = 2))")
[ "$a" = "$b" ] || { log "verifiers disagree: '$a' vs '$b'"; exit 1; }

# Steady state of in-use tokens: last_used_at is fresh, so neither verifier writes during a run
# (both write at most once a minute per token).
touch_all() { q -c "UPDATE ama.agent_tokens SET last_used_at = now()" -c "VACUUM ama.agent_tokens"; }

VARIANTS=(lookup_only ama plpgsql)
for r in $(seq 1 "$BENCH_ROUNDS"); do
    # server-side cost per call, whole table in one statement each
    touch_all
    for v in ama plpgsql; do
        fn=$([ "$v" = ama ] && echo ama.verify_agent_token || echo bench.verify_agent_token_plpgsql)
        us=$(q -c "SELECT bench.us_per_call('$fn', $NTOK)")
        echo "$r $v inserver_us $us" >>"$RAW"; log "round $r $v in-server: $us us/call"
    done
    for v in "${VARIANTS[@]}"; do
        touch_all
        res=$(pgbench_run "tokens_$v" "$T/$v.sql" -D ntokens="$NTOK"); read -r tps lat <<<"$res"
        stmt=$(stmt_latency "$(last_log "tokens_$v")" "SELECT")
        # the second statement's latency (the verify call or the no-op)
        stmt2=$(awk 'seen && /SELECT/ {n++; if (n==2) {print $1; exit}} /statement latencies/{seen=1}' "$(last_log "tokens_$v")")
        echo "$r $v tps $tps" >>"$RAW"; echo "$r $v lat_ms $lat" >>"$RAW"; echo "$r $v verify_stmt_ms $stmt2" >>"$RAW"
        log "round $r $v: $tps tps, $lat ms/txn, verify statement $stmt2 ms (lookup $stmt ms)"
    done
    # one client: per-statement latency without queueing for the 2 cores (half-length runs)
    for v in "${VARIANTS[@]}"; do
        touch_all
        BENCH_SECS=$(( (BENCH_SECS + 1) / 2 )) CLIENTS=1 THREADS=1 pgbench_run "tokens_c1_$v" "$T/$v.sql" -D ntokens="$NTOK" >/dev/null
        stmt2=$(awk 'seen && /SELECT/ {n++; if (n==2) {print $1; exit}} /statement latencies/{seen=1}' "$(last_log "tokens_c1_$v")")
        echo "$r $v c1_verify_stmt_ms $stmt2" >>"$RAW"
        log "round $r $v, 1 client: verify statement $stmt2 ms"
    done
done

log "tokens: revocation check"
# revocation.sql opens a second connection with dblink, as the superuser: it needs the password
# (read with \getenv, so it is on no command line).
SUPERUSER_PASSWORD=$(pgpass_password postgres) q -f "$T/revocation.sql" >"$RESULTS/tokens-revocation.txt" 2>&1 || { cat "$RESULTS/tokens-revocation.txt"; exit 1; }
sed -i 's/^psql:[^ ]* NOTICE:  /NOTICE: /' "$RESULTS/tokens-revocation.txt"
grep -q FAIL "$RESULTS/tokens-revocation.txt" && { cat "$RESULTS/tokens-revocation.txt"; exit 1; }

med() { get_vals "$RAW" "$1" "$2" | median; }
{
    echo "## Token verification (issue 3): $NTOK tokens, $CLIENTS clients, -j $THREADS, ${BENCH_SECS}s x $BENCH_ROUNDS rounds, median"
    echo
    echo "| variant | in-server µs/call | pgbench TPS | txn latency ms | verify statement ms (pgbench -r) | 1 client: verify statement µs | 1 client: minus no-op, µs |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    n1=$(med lookup_only c1_verify_stmt_ms)
    for v in ama plpgsql lookup_only; do
        c1=$(med "$v" c1_verify_stmt_ms)
        echo "| $v | $(fmt "$(med "$v" inserver_us)" 2) | $(fmt "$(med "$v" tps)" 0) | $(fmt "$(med "$v" lat_ms)" 3) | $(fmt "$(med "$v" verify_stmt_ms)" 3) | $(fmt "$(awk -v x="$c1" 'BEGIN{print x*1000}')" 0) | $(fmt "$(awk -v x="$c1" -v n="$n1" 'BEGIN{print (x-n)*1000}')" 0) |"
    done
    x=$(ratio_median "$RAW" plpgsql ama inserver_us)
    y=$(ratio_median "$RAW" ama plpgsql tps)
    z=$(ratio_median "$RAW" plpgsql ama verify_stmt_ms)
    # subtract the no-op statement (protocol + executor overhead) from both verify statements
    w=$(awk -v a="$(med ama verify_stmt_ms)" -v p="$(med plpgsql verify_stmt_ms)" -v n="$(med lookup_only verify_stmt_ms)" 'BEGIN{ if (a-n > 0) print (p-n)/(a-n); else print "nan" }')
    echo
    echo "| ratio (PL/pgSQL cost / ama cost) | value | goal | verdict |"
    echo "|---|---:|---:|---|"
    echo "| in-server µs per call | $(fmt "$x" 2) | >= 3 | $(verdict "$x" ">=" 3) |"
    echo "| verify statement latency, minus the no-op statement | $(fmt "$w" 2) | (info) | |"
    c=$(awk -v a="$(med ama c1_verify_stmt_ms)" -v p="$(med plpgsql c1_verify_stmt_ms)" -v n="$(med lookup_only c1_verify_stmt_ms)" 'BEGIN{ if (a-n > 0) print (p-n)/(a-n); else print "nan" }')
    echo "| 1 client: verify statement latency minus the no-op statement | $(fmt "$c" 2) | (info) | |"
    echo "| verify statement latency (incl. round trip) | $(fmt "$z" 2) | (info) | |"
    echo "| end-to-end TPS ama / PL/pgSQL (incl. lookup + 2 round trips) | $(fmt "$y" 2) | (info) | |"
    echo
    echo "The goal is per verification call, which the in-server row measures: every token verified"
    echo "in one statement, so both sides pay the same per-row function-scan cost and nothing else."
    echo "The statement rows also hold what any one-row FROM-clause function statement costs"
    echo "(executor start-up, the function scan, the protocol), which is the same for both verifiers."
    echo
    echo "Revocation (not timed):"
    sed 's/^/    /' "$RESULTS/tokens-revocation.txt"
} >"$OUT"
cat "$OUT"
