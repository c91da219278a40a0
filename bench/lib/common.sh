# Shared helpers for the benchmark suites (sourced; runs inside `ama-harness exec`, which
# exports PGHOST/PGPORT/PGUSER/PGDATABASE for a throwaway cluster on 127.0.0.1, and PGPASSFILE:
# a 0600 pgpass file with the passwords of postgres and ama_authenticator).
# Settings from run.sh: BENCH_SECS, BENCH_ROUNDS, BENCH_QUICK, RESULTS (dir), BENCH_DIR.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# pgpass_password ROLE: the password the harness set for ROLE (from $PGPASSFILE).
pgpass_password() { awk -F: -v r="$1" '$4 == r {print $5; exit}' "$PGPASSFILE"; }

# pgbench_run NAME SCRIPT [extra pgbench args...]
# Prints "tps latency_ms" and keeps the full output in $RESULTS/pgbench/NAME.<n>.log.
pgbench_run() {
    local name=$1 script=$2; shift 2
    mkdir -p "$RESULTS/pgbench"
    local n=1; while [ -e "$RESULTS/pgbench/$name.$n.log" ]; do n=$((n + 1)); done
    local out="$RESULTS/pgbench/$name.$n.log"
    "$PGBIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$BENCH_SECS" -r -f "$script" "$@" >"$out" 2>&1 || {
        log "pgbench $name failed:"; tail -20 "$out" >&2; return 1; }
    if grep -q '^number of failed transactions: [1-9]' "$out"; then log "pgbench $name had failed transactions"; tail -20 "$out" >&2; return 1; fi
    local tps lat
    tps=$(awk '/^tps = /{print $3; exit}' "$out")
    lat=$(awk '/^latency average = /{print $4; exit}' "$out")
    echo "$tps $lat"
}

# stmt_latency LOGFILE PATTERN: per-statement latency (ms) of the first statement matching PATTERN (from -r).
stmt_latency() {
    awk -v pat="$2" 'seen && index($0, pat) {print $1; exit} /statement latencies/{seen=1}' "$1"
}

# last pgbench log written for NAME
last_log() { ls -1 "$RESULTS/pgbench/$1".*.log | sort -t. -k2 -n | tail -1; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

# raw file lines: "round variant metric value"; get_vals FILE VARIANT METRIC -> values, one a line
get_vals() { awk -v v="$2" -v m="$3" '$2==v && $3==m {print $4}' "$1"; }

# median over rounds of (A/B) where both are measured in the same round
ratio_median() {
    local file=$1 a=$2 b=$3 metric=$4
    awk -v a="$a" -v b="$b" -v m="$metric" '$3==m && $2==a {x[$1]=$4} $3==m && $2==b {y[$1]=$4}
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r]/y[r] }' "$file" | median
}

# Restart the server (e.g. after ALTER SYSTEM of a postmaster setting); keeps its port and options.
restart_server() {
    local data dir
    data=$(q -c 'show data_directory')
    dir=$(dirname "$data")
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 restart >/dev/null
    else
        "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 restart >/dev/null
    fi
}

fmt() { awk -v x="$1" -v d="${2:-2}" 'BEGIN{ if (x=="nan" || x=="") print "n/a"; else printf "%.*f\n", d, x }'; }
# verdict VALUE OP GOAL -> met/MISSED
verdict() { awk -v x="$1" -v op="$2" -v g="$3" 'BEGIN{ ok = (op==">=") ? (x>=g) : (x<=g); print (ok ? "met" : "MISSED") }'; }
