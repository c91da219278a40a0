#!/usr/bin/env bash
# End-to-end benchmarks of ama-shim and the Thread Runtime API (issues 5 and 6).
#
#   bench/shim/run.sh [--quick]
#   BASELINE_SHIM=/work/baseline/ama-shim-97a9787 bench/shim/run.sh --quick   # before/after
#
# Builds what it needs (release), runs the JWT micro-benchmark, then starts a throwaway cluster
# (target/release/ama-harness exec) and the shim on a free 127.0.0.1 port, and measures:
#   1. TLS keep-alive load (wrk) on a read and a write route vs pgbench running the same
#      ama.request SQL with the same concurrency, interleaved rounds -> TPS ratio, p50/p99/p99.9
#   2. JWT verification (HS256/ES256, cached/uncached), µs per verification (bench/shim/jwtbench)
#   3. shim RSS with 1,000 idle keep-alive TLS connections
#   4. poll latency and agent-send throughput on threads of 10^3..10^6 messages (pgbench)
#   5. commit-to-delivery latency on 100 live SSE streams (SSE_THREADS > 1: the streams spread
#      over that many threads, the messages posted round-robin over them)
#   6. (opt-in: POOLER=1, or PARTS containing 6) the shim through pgbouncer 1.18 in transaction
#      mode vs direct: Debian's /usr/sbin/pgbouncer (apt-get install pgbouncer, installed here when
#      missing) on a free port in front of the same cluster (pool_mode = transaction,
#      default_pool_size = 16, run as the postgres OS user when root), a second shim with
#      --db-pooler transaction through it (LISTEN direct), wrk on the read and the write route
#      through both shims, and pgbench -M extended (unnamed statements, no server-side prepared
#      statement) on the same ama.request SQL direct and through pgbouncer, all interleaved in
#      every round -> TPS, p50/p99 and pooled/direct for the shim and for pgbench alone
# Results: bench/shim/results/summary.txt (also printed), raw numbers in results/raw.txt, logs
# in results/logs/. Nothing asserts a time: numbers are reported, goals marked met/MISSED.
#
# Knobs: BENCH_SECS (per run; default 8, --quick 3), BENCH_ROUNDS (3; --quick 1), CLIENTS (8),
# THREADS (2), SIZES ("1000 10000 100000 1000000"), SSE_STREAMS (100), SSE_MESSAGES (50; --quick
# 20), SSE_THREADS (1), IDLE_CONNS (1000), JWT_N (20000), BENCH_SKIP_BUILD=1 (use the installed extension and
# existing binaries as they are), PARTS (the parts to run, default "1 2 3 4 5"; e.g. PARTS=6 for
# the pooler comparison alone), POOLER=1 (adds part 6 to PARTS).
# BASELINE_SHIM=/path/to/ama-shim: another ama-shim binary (e.g. built from an older commit) that
# part 1 also measures, started with the same flags against the same cluster and data on another
# free port, its runs interleaved with the current shim's in every round (which of the two goes
# first alternates); the report adds the baseline's TPS, its ratio to pgbench and current/baseline.
# Both shims stay up through part 1 and the baseline stops before parts 3-5. Without it, nothing
# changes.
# Binaries are taken from $CARGO_TARGET_DIR when it is set (a private target directory), else
# target/. AMA_PG_CONFIG: the PostgreSQL installation to install into and benchmark (default the
# system one).
set -euo pipefail

SHIM_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SHIM_DIR/../.." && pwd)
cd "$ROOT"
QUICK=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
        *) echo "usage: bench/shim/run.sh [--quick]" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    export BENCH_SECS=${BENCH_SECS:-3} BENCH_ROUNDS=${BENCH_ROUNDS:-1} SSE_MESSAGES=${SSE_MESSAGES:-20}
    JWT_N=${JWT_N:-5000}; JWT_ROUNDS=3
else
    export BENCH_SECS=${BENCH_SECS:-8} BENCH_ROUNDS=${BENCH_ROUNDS:-3} SSE_MESSAGES=${SSE_MESSAGES:-50}
    JWT_N=${JWT_N:-20000}; JWT_ROUNDS=5
fi
export CLIENTS=${CLIENTS:-8} THREADS=${THREADS:-2} SIZES=${SIZES:-"1000 10000 100000 1000000"}
export SSE_STREAMS=${SSE_STREAMS:-100} SSE_THREADS=${SSE_THREADS:-1} IDLE_CONNS=${IDLE_CONNS:-1000} BENCH_QUICK=$QUICK
PARTS=${PARTS:-"1 2 3 4 5"}
[ "${POOLER:-0}" = 1 ] && PARTS="$PARTS 6"
export PARTS
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
export ROOT SHIM_DIR RESULTS=$SHIM_DIR/results TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PG_CONFIG=${AMA_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in psql pgbench openssl curl python3 cargo; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
if ! command -v wrk >/dev/null; then
    log "wrk missing: installing with apt-get"
    apt-get install -y -qq wrk >/dev/null
fi
if has_part 6 && [ ! -x /usr/sbin/pgbouncer ]; then
    log "pgbouncer missing: installing with apt-get (Debian 12: 1.18)"
    apt-get install -y -qq pgbouncer >/dev/null
    # the package enables a system-wide service on port 6432; the benchmark starts its own
    systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi
if [ -n "${BASELINE_SHIM:-}" ]; then
    [ -x "$BASELINE_SHIM" ] || { echo "BASELINE_SHIM=$BASELINE_SHIM is not an executable file" >&2; exit 1; }
    BASELINE_SHIM=$(readlink -f "$BASELINE_SHIM")
    export BASELINE_SHIM
fi
mkdir -p "$RESULTS"
rm -rf "$RESULTS/logs"; mkdir -p "$RESULTS/logs"
# a part that does not run must not leave an older run's file for the report to show
rm -f "$RESULTS"/{raw,jwt,idle,sse,sse-load,growth-table,summary}.txt

SO=$("$PG_CONFIG" --pkglibdir)/ama_pg.so
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "installing ama_pg (release; waits for the cargo lock if someone else is building)"
    cargo pgrx install --release -p ama_pg --pg-config "$PG_CONFIG" >"$RESULTS/logs/install.log" 2>&1 ||
        { tail -30 "$RESULTS/logs/install.log" >&2; exit 1; }
    log "building ama-shim and the harness (release)"
    cargo build --release -q -p ama-shim -p ama-tests
    if has_part 2; then
        log "building the JWT micro-benchmark"
        cargo build --release -q --manifest-path "$SHIM_DIR/jwtbench/Cargo.toml" --target-dir "$TARGET/bench-shim-jwtbench"
    fi
fi
# Someone may have installed a debug build meanwhile: a release ama_pg.so is well under 20 MB.
size=$(stat -c %s "$SO" 2>/dev/null || echo 0)
[ "$size" -gt 0 ] && [ "$size" -lt 20000000 ] || { echo "$SO missing or a debug build ($size bytes)" >&2; exit 1; }

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet -- ama_pg sql core shim 2>/dev/null || echo ' (+ uncommitted changes in ama_pg/sql/core/shim)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); pgbench: $(pgbench --version)"
    [ -n "${BASELINE_SHIM:-}" ] &&
        echo "baseline shim: $BASELINE_SHIM (sha256 $(sha256sum "$BASELINE_SHIM" | cut -c1-12), built $(date -u -r "$BASELINE_SHIM" '+%Y-%m-%d %H:%M UTC'))"
    echo "settings: PARTS='$PARTS' BENCH_SECS=$BENCH_SECS BENCH_ROUNDS=$BENCH_ROUNDS CLIENTS=$CLIENTS THREADS=$THREADS SIZES='$SIZES' SSE_STREAMS=$SSE_STREAMS SSE_THREADS=$SSE_THREADS SSE_MESSAGES=$SSE_MESSAGES IDLE_CONNS=$IDLE_CONNS JWT_N=$JWT_N"
    has_part 6 && echo "pgbouncer: $(/usr/sbin/pgbouncer --version 2>&1 | head -1)"
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

# --- 2. JWT verification (no database needed) -----------------------------------------------------
if has_part 2; then
    log "2. JWT verification micro-benchmark ($JWT_N verifications x $JWT_ROUNDS rounds)"
    KEYDIR=$(mktemp -d /tmp/ama-jwtbench.XXXXXX)
    openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$KEYDIR/es.pem"
    "$TARGET/bench-shim-jwtbench/release/ama-shim-jwtbench" --es-key "$KEYDIR/es.pem" --dir "$KEYDIR" \
        --n "$JWT_N" --rounds "$JWT_ROUNDS" >"$RESULTS/jwt.txt" 2>"$RESULTS/logs/jwt.log"
    rm -rf "$KEYDIR"
fi

# --- 1, 3, 4, 5, 6 in a throwaway cluster -------------------------------------------------------
"$TARGET/release/ama-harness" exec -- bash "$SHIM_DIR/suite.sh"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
bash "$SHIM_DIR/report.sh" | tee "$RESULTS/summary.txt"
