#!/usr/bin/env bash
# Summarises bench/shim/results/{raw,jwt,idle,sse}.txt into the table printed by run.sh; a part
# that did not run (PARTS) is left out.
set -euo pipefail
R=${RESULTS:-$(cd "$(dirname "$0")" && pwd)/results}
RAW=$R/raw.txt
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
fmt() { awk -v x="$1" -v d="${2:-2}" 'BEGIN{ if (x=="nan" || x=="") print "n/a"; else printf "%.*f\n", d, x }'; }
verdict() { awk -v x="$1" -v op="$2" -v g="$3" 'BEGIN{ if (x=="nan"||x=="") {print "n/a"; exit} ok = (op==">=") ? (x>=g) : (x<=g); print (ok ? "met" : "MISSED") }'; }
med() { awk -v v="$1" -v m="$2" '$2==v && $3==m {print $4}' "$RAW" | median; }
ratio() {  # median over rounds of A.metric / B.metric (same round)
    awk -v a="$1" -v b="$2" -v m="$3" '$3==m && $2==a {x[$1]=$4} $3==m && $2==b {y[$1]=$4}
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r]/y[r] }' "$RAW" | median
}
nrounds=$(awk '{print $1}' "$RAW" | sort -u | wc -l)
has_base=$(awk '$2 ~ /^base_/ {print 1; exit}' "$RAW")

cat "$R/machine.txt"
[ -f "$RAW" ] || : >"$RAW"
has() { awk -v v="$1" '$2 ~ v {f=1} END{exit !f}' "$RAW"; }
if has '^shim_(read|write)$'; then
echo
echo "## 1. Shim vs pgbench, same request statement, same concurrency (goal: TPS ratio >= 0.6, issue 5; >= 0.9, issue 13)"
echo "median of $nrounds interleaved rounds (load average at the rounds' start: $(awk '$2=="part1" && $3=="load1" {printf "%s%s", s, $4; s=", "}' "$RAW"));"
echo "latencies are the shim's, from wrk (HTTP/1.1 over TLS keep-alive)"
printf '%-6s %10s %10s %8s %-18s %7s %7s %8s %8s %8s %9s %9s\n' route shim_rps pg_tps ratio "per round" goal5 goal13 p50_ms p99_ms p999_ms shim_db_ms wrk_mean
per_round() {  # A B metric: per-round A/B, in round order
    awk -v a="$1" -v b="$2" -v m="$3" '$3==m && $2==a {x[$1]=$4} $3==m && $2==b {y[$1]=$4}
        END { for (k in x) if ((k in y) && y[k] > 0) printf "%d %.2f\n", k, x[k]/y[k] }' "$RAW" | sort -n | awk '{printf "%s%s", s, $2; s=","}'
}
for r in read write; do
    x=$(ratio "shim_$r" "pg_$r" tps)
    printf '%-6s %10s %10s %8s %-18s %7s %7s %8s %8s %8s %9s %9s\n' "$r" "$(fmt "$(med "shim_$r" tps)" 0)" "$(fmt "$(med "pg_$r" tps)" 0)" \
        "$(fmt "$x")" "$(per_round "shim_$r" "pg_$r" tps)" "$(verdict "$x" '>=' 0.6)" "$(verdict "$x" '>=' 0.9)" "$(fmt "$(med "shim_$r" p50_ms)")" "$(fmt "$(med "shim_$r" p99_ms)")" \
        "$(fmt "$(med "shim_$r" p999_ms)")" "$(fmt "$(med "shim_$r" shim_db_mean_ms)")" "$(fmt "$(med "shim_$r" mean_ms)")"
done
if has '^pg_postgrest$'; then
    x=$(ratio shim_read pg_postgrest tps)
    echo "the PostgREST-style anchor (bench/api/postgrest.sql: one json_agg over the same 50 rows, by the owner; issue 13):"
    echo "  pgbench TPS $(fmt "$(med pg_postgrest tps)" 0), mean $(fmt "$(med pg_postgrest mean_ms)") ms;" \
        "HTTPS poll through the shim / anchor: $(fmt "$x") (per round $(per_round shim_read pg_postgrest tps); goal >= 0.5: $(verdict "$x" '>=' 0.5));" \
        "pgbench request statement / anchor: $(fmt "$(ratio pg_read pg_postgrest tps)") (per round $(per_round pg_read pg_postgrest tps))"
fi
if [ -n "$has_base" ]; then
    echo "Before/after, in the same rounds: baseline shim $(awk -F': ' '/^baseline shim:/{print $2}' "$R/machine.txt")"
    echo "ratios are medians of per-round ratios; cur/base > 1 means the current shim is faster"
    printf '%-6s %10s %10s %8s %10s %8s %9s %8s %8s\n' route pg_tps cur_rps cur/pg base_rps base/pg cur/base cur_p99 base_p99
    for r in read write; do
        printf '%-6s %10s %10s %8s %10s %8s %9s %8s %8s\n' "$r" "$(fmt "$(med "pg_$r" tps)" 0)" \
            "$(fmt "$(med "shim_$r" tps)" 0)" "$(fmt "$(ratio "shim_$r" "pg_$r" tps)")" \
            "$(fmt "$(med "base_$r" tps)" 0)" "$(fmt "$(ratio "base_$r" "pg_$r" tps)")" \
            "$(fmt "$(ratio "shim_$r" "base_$r" tps)" 3)" "$(fmt "$(med "shim_$r" p99_ms)")" "$(fmt "$(med "base_$r" p99_ms)")"
    done
    echo "the shim's own path, no database (POST with a body that is not JSON -> 400):"
    printf '%-6s %10s %10s %9s %12s %12s
' route cur_rps base_rps cur/base cur_cpu_us base_cpu_us
    printf '%-6s %10s %10s %9s %12s %12s
' nodb "$(fmt "$(med shim_nodb tps)" 0)" "$(fmt "$(med base_nodb tps)" 0)" \
        "$(fmt "$(ratio shim_nodb base_nodb tps)" 3)" "$(fmt "$(med shim_nodb shim_cpu_us_per_req)" 1)" "$(fmt "$(med base_nodb shim_cpu_us_per_req)" 1)"
fi
echo "CPU per request (µs, median): where the time goes on this 2-core machine"
printf '%-12s %10s %10s %10s %10s\n' run postgres shim client total
variants="shim_read pg_read shim_write pg_write"
[ -n "$has_base" ] && variants="shim_read base_read pg_read shim_write base_write pg_write"
has '^pg_postgrest$' && variants="$variants pg_postgrest"
for v in $variants; do
    pg=$(med "$v" pg_cpu_us_per_req); sh=$(med "$v" shim_cpu_us_per_req); cl=$(med "$v" client_cpu_us_per_req)
    [ "$sh" = nan ] && sh=0
    printf '%-12s %10s %10s %10s %10s\n' "$v" "$(fmt "$pg" 0)" "$(fmt "$sh" 0)" "$(fmt "$cl" 0)" \
        "$(fmt "$(awk -v a="$pg" -v b="$sh" -v c="$cl" 'BEGIN{print a+b+c}')" 0)"
done
fi
if has '_shim_(read|write)$'; then
echo
echo "## 6. Through pgbouncer 1.18 (transaction mode) vs direct (issue 12)"
echo "median of $(awk '$2=="part6" {print $1}' "$RAW" | sort -u | wc -l) interleaved rounds (load average at the rounds' start: $(awk '$2=="part6" && $3=="load1" {printf "%s%s", s, $4; s=", "}' "$RAW"))"
echo "shim: wrk over TLS to a shim direct and to one with --db-pooler transaction through pgbouncer;"
echo "pgbench: -M extended (unnamed statements) on the shim's request statement, direct and through pgbouncer"
printf '%-6s %-7s %9s %9s %8s %-24s %8s %8s %8s %8s %8s\n' route client direct pooled ratio "ratio per round" d_p50 d_p99 p_p50 p_p99 bnc_cpu
for r in read write; do
    for c in shim pgx; do
        per=$(awk -v a="pool_${c}_$r" -v b="direct_${c}_$r" '$3=="tps" && $2==a {x[$1]=$4} $3=="tps" && $2==b {y[$1]=$4}
            END { for (k in x) if ((k in y) && y[k] > 0) printf "%d %.2f\n", k, x[k]/y[k] }' "$RAW" | sort -n | awk '{printf "%s%s", s, $2; s=","}')
        if [ "$c" = shim ]; then
            lat="$(fmt "$(med "direct_shim_$r" p50_ms)") $(fmt "$(med "direct_shim_$r" p99_ms)") $(fmt "$(med "pool_shim_$r" p50_ms)") $(fmt "$(med "pool_shim_$r" p99_ms)")"
        else
            lat="$(fmt "$(med "direct_pgx_$r" mean_ms)") - $(fmt "$(med "pool_pgx_$r" mean_ms)") -"
        fi
        read -r a b cc d <<<"$lat"
        printf '%-6s %-7s %9s %9s %8s %-24s %8s %8s %8s %8s %8s\n' "$r" "$c" "$(fmt "$(med "direct_${c}_$r" tps)" 0)" \
            "$(fmt "$(med "pool_${c}_$r" tps)" 0)" "$(fmt "$(ratio "pool_${c}_$r" "direct_${c}_$r" tps)")" "$per" \
            "$a" "$b" "$cc" "$d" "$(fmt "$(med "pool_${c}_$r" bouncer_cpu_us_per_req)" 0)"
    done
done
echo "(shim: p50/p99 in ms from wrk; pgx: mean latency in ms in the p50 columns; bnc_cpu: pgbouncer CPU µs per request)"
echo "CPU per request (µs, median): postgres / shim / pgbouncer / client"
for v in direct_shim_read pool_shim_read direct_pgx_read pool_pgx_read direct_shim_write pool_shim_write direct_pgx_write pool_pgx_write; do
    printf '%-18s %8s %8s %8s %8s\n' "$v" "$(fmt "$(med "$v" pg_cpu_us_per_req)" 0)" "$(fmt "$(med "$v" shim_cpu_us_per_req)" 0)" \
        "$(fmt "$(med "$v" bouncer_cpu_us_per_req)" 0)" "$(fmt "$(med "$v" client_cpu_us_per_req)" 0)"
done
fi
[ -f "$R/jwt.txt" ] && {
echo
echo "## 2. JWT verification, µs per verification (issue 5; bench/shim/jwtbench, ama_shim::jwt::Verifier)"
cat "$R/jwt.txt"
}
if [ -f "$R/idle.txt" ]; then
echo
echo "## 3. Shim RSS with idle keep-alive TLS connections (issue 5; goal <= 64 MB)"
open_kb=$(awk '$1=="rss_open_kb"{print $2}' "$R/idle.txt"); before_kb=$(awk '$1=="rss_before_kb"{print $2}' "$R/idle.txt")
n=$(awk '$1=="open_connections"{print $2}' "$R/idle.txt")
mb=$(awk -v k="$open_kb" 'BEGIN{print k/1024}')
echo "connections open: $n; RSS before: $(fmt "$(awk -v k="$before_kb" 'BEGIN{print k/1024}')" 1) MB; with all open: $(fmt "$mb" 1) MB ($(verdict "$mb" '<=' 64)); per connection: $(fmt "$(awk -v a="$open_kb" -v b="$before_kb" -v n="$n" 'BEGIN{print (a-b)/n}')" 1) kB"
grep -E 'non200|after_close' "$R/idle.txt"
fi
if has '^poll_'; then
echo
echo "## 4. Thread growth: poll latest page and agent send vs messages in the thread (issue 6; goal: growth <= 1.5x)"
echo "pgbench -M prepared -c \$CLIENTS, the shim's request statement; every size in the same table, interleaved"
printf '%-10s %10s %10s %10s %10s %12s %12s\n' messages poll_tps poll_ms send_tps send_ms poll_pg_us send_pg_us
sizes=$(awk '$2 ~ /^poll_/ {sub("poll_","",$2); print $2}' "$RAW" | sort -un)
for n in $sizes; do
    printf '%-10s %10s %10s %10s %10s %12s %12s\n' "$n" "$(fmt "$(med "poll_$n" tps)" 0)" "$(fmt "$(med "poll_$n" mean_ms)")" \
        "$(fmt "$(med "send_$n" tps)" 0)" "$(fmt "$(med "send_$n" mean_ms)")" \
        "$(fmt "$(med "poll_$n" pg_cpu_us_per_req)" 0)" "$(fmt "$(med "send_$n" pg_cpu_us_per_req)" 0)"
done
echo "(poll_pg_us, send_pg_us: PostgreSQL CPU per request, µs, median; load average at the rounds' start: $(awk '$2=="part4" && $3=="load1" {printf "%s%s", s, $4; s=", "}' "$RAW"))"
small=$(echo "$sizes" | head -1); large=$(echo "$sizes" | tail -1)
pg=$(ratio "poll_$large" "poll_$small" mean_ms); sg=$(ratio "send_$small" "send_$large" tps)
echo "poll latency growth $large/$small: $(fmt "$pg") ($(verdict "$pg" '<=' 1.5)); agent-send throughput drop $small/$large: $(fmt "$sg") ($(verdict "$sg" '<=' 1.5))"
[ -f "$R/growth-table.txt" ] && echo "ama.messages during the growth runs (rows | total size): $(cat "$R/growth-table.txt")"
fi
if [ -f "$R/sse.txt" ]; then
echo
echo "## 5. Commit-to-delivery on live SSE streams (issue 6)"
cat "$R/sse.txt"
fi
