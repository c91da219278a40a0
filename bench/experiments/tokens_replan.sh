#!/usr/bin/env bash
# EXPERIMENT: see tokens_replan.sql.   target/release/ama-harness exec -- bash bench/experiments/tokens_replan.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${RESULTS:-$BENCH_DIR/results}; mkdir -p "$RESULTS"
psql -X -q -v ON_ERROR_STOP=1 -v ntokens=20000 -f "$BENCH_DIR/tokens/setup.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -f "$BENCH_DIR/experiments/tokens_replan.sql" | tee "$RESULTS/tokens-replan-experiment.txt"
