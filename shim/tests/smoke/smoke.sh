#!/usr/bin/env bash
# Manual smoke test of ama-shim against a throwaway PostgreSQL with a STUB ama.request
# (tests/smoke/stub.sql), to exercise the database path, SSE and restart recovery without the
# real extension. Needs initdb/pg_ctl, curl, openssl, python3; run as root from the workspace.
#   CARGO_TARGET_DIR=target-shim cargo build -p ama-shim && bash shim/tests/smoke/smoke.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$(pwd)/target-shim/debug/ama-shim}
PORT=${PGPORT_SMOKE:-55987}
W=$(mktemp -d)
chown postgres "$W"
runuser -u postgres -- initdb -D "$W/data" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
pgstart() { runuser -u postgres -- pg_ctl -D "$W/data" -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W" -l "$W/pg.log" -w start >/dev/null; }
pgstart
P="psql -h 127.0.0.1 -p $PORT -U postgres -qAt postgres"
$P -f "$HERE/stub.sql"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" \
  -days 2 -subj "/CN=localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
SECRET=$(printf 'x%.0s' {1..40})
"$BIN" --listen 127.0.0.1:58443 --tls-cert "$W/cert.pem" --tls-key "$W/key.pem" \
  --database-url "postgres://authenticator:authpw@127.0.0.1:$PORT/postgres" --jwt-secret "$SECRET" \
  --db-statement-timeout-ms 2000 --log-level debug >"$W/shim.log" 2>&1 &
SHIM=$!
trap 'kill $SHIM 2>/dev/null; runuser -u postgres -- pg_ctl -D "$W/data" -m immediate stop >/dev/null 2>&1; rm -rf "$W"' EXIT
sleep 1
T=$(python3 "$HERE/mint.py" 11111111-2222-3333-4444-555555555555)
TH=0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50
U=https://127.0.0.1:58443
code() { curl -sk -o /dev/null -w "%{http_code}" "$@"; }
[ "$(code "$U/api/v1/chat/threads/$TH" -H "Authorization: Bearer $T")" = 200 ]
[ "$(code "$U/api/v1/chat/threads/bad" -H "Authorization: Bearer $T")" = 400 ]
[ "$(code -XPOST "$U/api/v1/chat/threads" -d '{}')" = 429 ]
[ "$(code -XPOST "$U/api/v1/chat/threads/x/mode" -d '{}')" = 500 ]
[ "$(code "$U/api/v1/chat/threads" -H "Authorization: Bearer $T")" = 503 ]   # statement timeout
$P -c "select ama.add('$TH', 250)"
timeout 6 curl -skN "$U/api/v1/chat/threads/$TH/events/stream?after_seq=245" -H "Authorization: Bearer $T" >"$W/sse" &
SSE=$!
sleep 1; $P -c "select ama.add('$TH', 3)"; sleep 1
$P -c "insert into ama.revoked values ('11111111-2222-3333-4444-555555555555')"
wait $SSE || true
[ "$(grep -c '^id:' "$W/sse")" = 8 ]
runuser -u postgres -- pg_ctl -D "$W/data" -m fast stop >/dev/null
[ "$(code "$U/api/v1/chat/threads/$TH" -H "Authorization: Bearer $T")" = 503 ]
pgstart; sleep 1
[ "$(code "$U/api/v1/chat/threads/$TH" -H "Authorization: Bearer $T")" = 200 ]
grep -q '"request"\|request' "$W/shim.log"
! grep -qF "$T" "$W/shim.log"
! grep -qF "$SECRET" "$W/shim.log"
! grep -qF "authpw" "$W/shim.log"
echo "smoke OK"
