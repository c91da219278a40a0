# Shared by bench/shim/frozen.sh and bench/shim/attacks.sh (sourced, not run): building what they
# need, the throwaway cluster, a certificate, a JWT secret, a user with a thread, and the shim.
#
# Outside the cluster: bench_prepare (tools, release build unless BENCH_SKIP_BUILD=1, the release
# ama_pg.so check), then `exec "$ROOT/target/release/ama-harness" exec -- bash "$0" --inside`.
# Inside (PGHOST, PGPORT, PGUSER=postgres, PGDATABASE, PGPASSFILE exported by the harness):
# bench_setup, then start_shim PORT LOG [FLAGS...] as often as needed.

SHIM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SHIM_DIR/../.." && pwd)
RESULTS=${RESULTS:-$SHIM_DIR/results}
PG_CONFIG=${AMA_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
uuid() { cat /proc/sys/kernel/random/uuid; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

. "$SHIM_DIR/load.sh"

bench_prepare() {   # outside the cluster
    for tool in psql openssl curl python3 cargo; do
        command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
    done
    mkdir -p "$RESULTS/logs"
    local so size
    so=$("$PG_CONFIG" --pkglibdir)/ama_pg.so
    if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        log "installing ama_pg (release; waits for the cargo lock if someone else is building)"
        cargo pgrx install --release -p ama_pg --pg-config "$PG_CONFIG" >"$RESULTS/logs/install.log" 2>&1 ||
            { tail -30 "$RESULTS/logs/install.log" >&2; exit 1; }
        log "building ama-shim and the harness (release)"
        (cd "$ROOT" && cargo build --release -q -p ama-shim -p ama-tests)
    fi
    # someone may have installed a debug build meanwhile: a release ama_pg.so is well under 20 MB
    size=$(stat -c %s "$so" 2>/dev/null || echo 0)
    [ "$size" -gt 0 ] && [ "$size" -lt 20000000 ] || { echo "$so missing or a debug build ($size bytes)" >&2; exit 1; }
}

machine_info() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet -- ama_pg sql core shim 2>/dev/null || echo ' (+ uncommitted changes in ama_pg/sql/core/shim)')"
    echo "nproc: $(nproc); memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

SHIM_PIDS=()
WORK=
bench_cleanup() {
    local p
    for p in "${SHIM_PIDS[@]}"; do stop_pid "$p"; done
    [ -n "$WORK" ] && rm -rf "$WORK"
    return 0
}
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
    return 0
}

bench_setup() {   # inside the cluster: $WORK, certificate, secret, $OWNER, $USER0, $AGENT_TOKEN, $AUTH_PW
    WORK=$(mktemp -d /tmp/ama-shim-faults.XXXXXX)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/jwt_secret"
    OWNER=$(uuid); AGENT="agent:$(uuid)"; USER0=$(uuid)
    {
        echo "UPDATE ama.rate_policies SET rate_limit = 100000000;"
        echo "INSERT INTO ama.users (user_id, plan) VALUES ('$OWNER', 'starter'), ('$USER0', 'basic');"
        echo "INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES ('user:$OWNER', 'user', '$OWNER'), ('user:$USER0', 'user', '$USER0');"
    } | q >/dev/null
    AGENT_TOKEN=$(q <<SQL | tail -1
BEGIN;
SELECT ama.impersonate('user:$OWNER') \\g /dev/null
SET LOCAL ROLE authenticated;
SELECT raw_token FROM ama.issue_agent_token('$AGENT', 'bench');
COMMIT;
SQL
)
    [[ $AGENT_TOKEN == ama_eat_* ]] || { log "could not issue an agent token: $AGENT_TOKEN"; exit 1; }
    AUTH_PW=$(awk -F: '$4 == "ama_authenticator" {print $5; exit}' "$PGPASSFILE")
    [ -n "$AUTH_PW" ] || { log "no ama_authenticator password in \$PGPASSFILE"; exit 1; }
    DIRECT_URL="postgres://ama_authenticator:$AUTH_PW@127.0.0.1:$PGPORT/$PGDATABASE"
    JWT0=$(python3 "$SHIM_DIR/tools.py" jwt "$WORK/jwt_secret" "$USER0")
    PG_DATA=$(q -c 'SHOW data_directory')
}

start_shim() {   # port log [flags...] -> $STARTED_PID, once /ready answers
    local port=$1 logf=$2
    shift 2
    AMA_DATABASE_URL=$DIRECT_URL "$ROOT/target/release/ama-shim" --listen "127.0.0.1:$port" \
        --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --jwt-secret-file "$WORK/jwt_secret" \
        --log-level warn "$@" >"$logf" 2>&1 &
    STARTED_PID=$!
    SHIM_PIDS+=("$STARTED_PID")
    for _ in $(seq 100); do
        curl -sf --cacert "$WORK/cert.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/health" >/dev/null && break
        sleep 0.2
    done
    curl -sSf --cacert "$WORK/cert.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/ready" >/dev/null ||
        { log "shim not ready"; cat "$logf" >&2; exit 1; }
}

new_thread_with_messages() {   # port n -> thread id: a thread of the agent and $USER0 with n messages
    local port=$1 n=$2 tid
    tid=$(curl -sSf --cacert "$WORK/cert.pem" --resolve "localhost:$port:127.0.0.1" -X POST \
        "https://localhost:$port/api/v1/chat/threads" -H "Authorization: Bearer $AGENT_TOKEN" \
        -H 'Content-Type: application/json' -d "{\"target_user_ids\": [\"$USER0\"]}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
    q >/dev/null <<SQL
ALTER TABLE ama.messages DISABLE TRIGGER messages_assign_thread_seq, DISABLE TRIGGER messages_notify;
INSERT INTO ama.messages (thread_id, thread_seq, sender_id, role, content, created_at)
SELECT '$tid', t.last_seq + g,
       CASE WHEN g % 2 = 0 THEN 'user:$USER0' ELSE '$AGENT' END,
       CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
       'bulk message number ' || g || ' of a benchmark thread',
       now() - make_interval(secs => $n - g)
FROM ama.threads t, generate_series(1, $n) g WHERE t.thread_id = '$tid';
UPDATE ama.threads SET last_seq = last_seq + $n, last_message_at = now() WHERE thread_id = '$tid';
ALTER TABLE ama.messages ENABLE TRIGGER messages_assign_thread_seq, ENABLE TRIGGER messages_notify;
ANALYZE ama.messages;
SQL
    echo "$tid"
}

metrics_of() {   # port: the shim's /metrics, comments dropped
    curl -sS --cacert "$WORK/cert.pem" --resolve "localhost:$1:127.0.0.1" "https://localhost:$1/metrics" | grep -v '^#'
}
