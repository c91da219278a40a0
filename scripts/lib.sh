# Shared by ./ama run and ./ama test. Every failure prints one line saying what is wrong and how
# to fix it, then exits non-zero.

PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_CONFIG="${AMA_PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}"
APT_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-pgtap"
  libtap-parser-sourcehandler-pgtap-perl postgresql-client-$PG_MAJOR
  clang libclang-dev pkg-config build-essential ca-certificates openssl curl sudo iproute2
  pgbouncer
)

die() { echo "ama: $*" >&2; exit 1; }
step() { echo "==> $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n true 2>/dev/null || echo "ama: sudo may ask for your password to run: $*" >&2
    sudo "$@"
  else
    die "this step needs root and sudo is missing: install sudo (as root: apt-get install sudo) or run as root"
  fi
}

ensure_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these packages by hand: ${missing[*]}"
  step "installing apt packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed: check the network or the apt sources"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
}

ensure_cargo_pgrx() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
  if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    step "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet \
      || die "cargo install cargo-pgrx $PGRX_VERSION failed"
  fi
  if ! grep -qs "pg$PG_MAJOR" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    step "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG" >/dev/null || die "cargo pgrx init failed"
  fi
}

ensure_prereqs() {
  ensure_apt_packages
  ensure_cargo_pgrx
}

# pgrx copies ama_pg.so over the installed file in place, which crashes every running server
# that has it mapped (a dev cluster from `./ama run`, a benchmark). Unlinking it first makes the
# copy a new file: running servers keep the old one until they restart.
unlink_installed_library() {
  as_root rm -f "$("$PG_CONFIG" --pkglibdir)/ama_pg.so"
}

# install_extension [release|debug]: ./ama run installs the release build; the tests install the
# debug build (the same SQL and code, built in a fraction of the time, without link-time optimisation).
install_extension() {
  local mode=${1:-release} profile=()
  [ "$mode" = release ] && profile=(--release)
  step "building and installing the ama_pg extension ($mode)"
  unlink_installed_library
  # PostgreSQL's directories belong to root: as another user pgrx copies the files with sudo.
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(--sudo)
  cargo pgrx install "${sudo[@]}" "${profile[@]}" -p ama_pg --pg-config "$PG_CONFIG" >/dev/null 2>&1 \
    || die "cargo pgrx install failed (run it by hand to see why: cargo pgrx install ${profile[*]} -p ama_pg)"
}

run_system() {
  install_extension
  step "building ama-shim and the harness (release)"
  cargo build --release -p ama-shim -p ama-tests --quiet || die "cargo build failed"
  step "starting PostgreSQL and ama-shim"
  AMA_SHIM_BIN=target/release/ama-shim exec target/release/ama-harness dev
}

# pgrx's #[pg_test] cluster trusts every connection on localhost (its client sends no password),
# so as root it runs in a network namespace of its own, where no other user of the machine can
# reach its port; its socket directory is private too (pg_test_dir). Without unshare it runs as is.
pg_test_isolated() {
  if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 && unshare --net true 2>/dev/null; then
    cargo fetch --quiet || die "cargo fetch failed"
    unshare --net sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null; exec "$@"' sh "$@"
  else
    echo "ama: note: the #[pg_test] cluster runs outside a network namespace (needs root and unshare)" >&2
    "$@"
  fi
}

# A directory for pgrx's #[pg_test] cluster, owned by the postgres OS user that runs it.
pg_test_dir() {
  local d
  d=$(mktemp -d /tmp/ama-pgrx-test-XXXXXX)
  chmod 700 "$d"
  as_root chown postgres: "$d"
  echo "$d"
}

run_tests() {
  local failed=()
  step "unit tests (ama_core, ama-shim)"
  cargo test -p ama_core -p ama-shim || failed+=("unit")

  step "#[pg_test] (ama_pg inside PostgreSQL)"
  PG_TEST_DIR=$(pg_test_dir)
  trap 'as_root rm -rf "${PG_TEST_DIR:-}"' EXIT
  # --runas: pgrx copies the test build with sudo and runs the server as the postgres OS user,
  # which works the same for root and for a user with sudo.
  unlink_installed_library
  pg_test_isolated cargo pgrx test "pg$PG_MAJOR" -p ama_pg --runas postgres --pgdata "$PG_TEST_DIR/data" || failed+=("pg_test")

  # pg_test installed a test build; the other layers need the real one.
  install_extension debug

  step "SQL suite (pgTAP through pg_prove, as the real request roles)"
  cargo build -p ama-tests -p ama-shim --quiet || die "cargo build failed"
  target/debug/ama-harness exec -- pg_prove --ext .sql -r tests/sql || failed+=("pgTAP")

  step "end-to-end tests (PostgreSQL + ama-shim over TLS)"
  AMA_SHIM_BIN="$PWD/target/debug/ama-shim" cargo test -p ama-tests || failed+=("e2e")

  # Again with a real pgbouncer 1.18 in transaction mode in front of every cluster
  # (AMA_E2E_POOLER, read by Stack::start: the shim gets --db-pooler transaction and a direct
  # LISTEN URL), about a minute. route_budget and stream_fanout pass behind it too but are left
  # out for CI time; ledger, membership and cluster_auth talk to PostgreSQL only, failover runs
  # its own shim, and pooler always runs behind pgbouncer.
  step "end-to-end tests behind pgbouncer (transaction mode)"
  AMA_SHIM_BIN="$PWD/target/debug/ama-shim" AMA_E2E_POOLER=transaction cargo test -p ama-tests \
    --test e2e --test matrix --test openapi --test hardening --test two_shims --test webhooks --test ws \
    || failed+=("e2e-pooler")

  if [ ${#failed[@]} -gt 0 ]; then
    echo "ama test: FAILED layers: ${failed[*]}" >&2
    return 1
  fi
  echo "ama test: all layers passed"
}
