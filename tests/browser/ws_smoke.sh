#!/bin/sh
# Headless-browser smoke test of the user WebSocket stream: Debian's chromium opens
# /api/v1/chat/ws/user/threads from a page with its JWT in Sec-WebSocket-Protocol
# (["ama.v1", "bearer.<jwt>"]) and receives a message (tests/tests/ws_browser.rs).
# Needs: apt-get install -y chromium (or AMA_CHROMIUM=/path/to/chrome), and the environment the
# end-to-end tests need (AMA_PG_CONFIG for a PostgreSQL with ama_pg installed).
set -eu
cd "$(dirname "$0")/../.."
cargo build -p ama-shim
AMA_SHIM_BIN="${CARGO_TARGET_DIR:-target}/debug/ama-shim" \
    cargo test -p ama-tests --test ws_browser -- --nocapture
