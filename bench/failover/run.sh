#!/usr/bin/env bash
# Failover to a synchronous standby, measured (issue 12, item 5).
#
#   bench/failover/run.sh [RUNS]          # default 3 runs, about 25 s each after the build
#
# Each run is the end-to-end test tests/tests/failover.rs: two throwaway PostgreSQL 15 clusters
# (a primary with ama_pg and a synchronous standby made with pg_basebackup -R), one ama-shim
# pointed at both (host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write), 8
# clients posting messages over HTTPS; mid-load the primary dies (pg_ctl stop -m immediate) and
# the standby is promoted (pg_ctl promote). Reported per run: writes acknowledged, the write
# outage the clients saw, 503s, acknowledged writes lost, duplicates, thread_seq gaps, replays,
# and the rate-limit ledger before and after.
#
# Builds the shim in release (what runs in production; a debug shim spends about 0.5 s of CPU
# per new database connection on SCRAM, which then dominates the outage) and the test. Installs
# ama_pg only when it is not installed at all (a clean clone), in release mode; an installed one
# is used as it is (other engineers and benchmarks may be using it), and the report says which.
# Runs as root (PostgreSQL then runs as the postgres OS user) or as a user with sudo.
#
# Knobs (environment): the test's FAILOVER_CLIENTS (8), FAILOVER_INTERVAL_MS (20),
# FAILOVER_RETRY_MS (50), FAILOVER_BEFORE_MS (3000), FAILOVER_AFTER_MS (3000),
# FAILOVER_PROMOTE_DELAY_MS (0); AMA_SHIM_BIN (another shim binary; skips the release build).
# Results (git-ignored): bench/failover/results/summary.txt (also printed), run-N.json, and
# logs/run-N/ (shim.log, primary.log, standby.log, test.log).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
RUNS=${1:-3}
case $RUNS in
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    ''|*[!0-9]*) echo "usage: bench/failover/run.sh [RUNS]" >&2; exit 2 ;;
esac
RESULTS=$HERE/results
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

source scripts/lib.sh
ensure_prereqs
SO=$("$PG_CONFIG" --pkglibdir)/ama_pg.so
if [ ! -f "$SO" ]; then
    install_extension release
fi
size=$(stat -c %s "$SO")
if [ "$size" -lt 20000000 ]; then so_kind="release build"; else so_kind="debug build"; fi
command -v python3 >/dev/null || die "python3 not found (it formats the summary): apt-get install python3"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${AMA_SHIM_BIN:-}" ]; then
    log "building ama-shim (release)"
    cargo build --release -q -p ama-shim || die "cargo build --release -p ama-shim failed"
    AMA_SHIM_BIN=$TARGET/release/ama-shim
fi
[ -x "$AMA_SHIM_BIN" ] || die "AMA_SHIM_BIN=$AMA_SHIM_BIN is not an executable file"
export AMA_SHIM_BIN
log "building the failover test"
cargo test -q -p ama-tests --test failover --no-run || die "cargo test --no-run failed"

rm -rf "$RESULTS"; mkdir -p "$RESULTS/logs"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- tests shim 2>/dev/null || echo ' (+ uncommitted changes in tests/ or shim/)')"
    echo "nproc: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "postgres: $("$("$PG_CONFIG" --bindir)/postgres" --version); ama_pg.so: $so_kind ($size bytes)"
    echo "shim: $AMA_SHIM_BIN"
    echo "settings: FAILOVER_CLIENTS=${FAILOVER_CLIENTS:-8} FAILOVER_INTERVAL_MS=${FAILOVER_INTERVAL_MS:-20} FAILOVER_RETRY_MS=${FAILOVER_RETRY_MS:-50} FAILOVER_BEFORE_MS=${FAILOVER_BEFORE_MS:-3000} FAILOVER_AFTER_MS=${FAILOVER_AFTER_MS:-3000} FAILOVER_PROMOTE_DELAY_MS=${FAILOVER_PROMOTE_DELAY_MS:-0}"
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

failed=0
for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS"
    mkdir -p "$RESULTS/logs/run-$i"
    t0=$(date +%s.%N)
    if AMA_FAILOVER_REPORT="$RESULTS/run-$i.json" AMA_FAILOVER_LOGS="$RESULTS/logs/run-$i" \
        cargo test -q -p ama-tests --test failover -- --nocapture >"$RESULTS/logs/run-$i/test.log" 2>&1; then
        status=passed
    else
        status=FAILED; failed=1
        tail -20 "$RESULTS/logs/run-$i/test.log" >&2
    fi
    t1=$(date +%s.%N)
    echo "$i $status $(python3 -c "print(round($t1 - $t0, 1))")" >>"$RESULTS/runs.txt"
    grep '^failover:' "$RESULTS/logs/run-$i/test.log" >&2 || true
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"

python3 - "$RESULTS" <<'EOF' | tee "$RESULTS/summary.txt"
import json, os, sys
res = sys.argv[1]
print(open(os.path.join(res, "machine.txt")).read().rstrip())
print()
cols = ["run", "result", "wall s", "acked", "writes/s", "outage ms", "503s", "lost", "dups",
        "seq gaps", "replays", "kill ms", "promote ms", "1st ack after promote ms",
        "LISTEN back ms", "ledger reads admitted before / after"]
rows = []
for line in open(os.path.join(res, "runs.txt")):
    i, status, wall = line.split()
    path = os.path.join(res, f"run-{i}.json")
    if not os.path.exists(path):
        rows.append([i, status, wall] + ["-"] * (len(cols) - 3))
        continue
    r = json.load(open(path))
    led = r["ledger"]
    before = sum(1 for s in led["before"] if s == 200)
    rows.append([i, status, wall, r["writes_acknowledged"], int(r["writes_per_s"]),
                 r["outage_ms"], r["status_503"], r["lost"], r["duplicates"],
                 r["thread_seq_gaps"], r["replayed_acks"], r["kill_ms"], r["promote_ms"],
                 r["first_ack_after_promote_started_ms"],
                 r["listener_connected_after_promote_started_ms"],
                 f"{before}/{len(led['before'])} / {led['admitted_after']}/{len(led['after'])} "
                 f"({led['seconds_since_exhausted']} s apart)"])
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")
EOF
exit $failed
