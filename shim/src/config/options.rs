//! The options, each declared once: flag, `AMA_*` variable, TOML key, help text and default.

use super::*;

/// The options: each one is a flag, an `AMA_*` environment variable and a key of the TOML file
/// given by `--config` (the long flag name with `_` instead of `-`).
#[derive(Parser, Deserialize, Debug, Clone)]
#[command(
    name = "ama-shim",
    version,
    about = "HTTPS front door for ama_pg: TLS, JWT verification, \
credential forwarding, one database round trip per request.\n\nPrecedence: flag > AMA_* environment variable > TOML file (--config) > default."
)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// TOML configuration file (keys are the long flag names with `_` instead of `-`).
    #[arg(long, env = "AMA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on for HTTPS.
    #[arg(long, env = "AMA_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// PEM file with the TLS certificate chain (reloaded on SIGHUP). Required.
    #[arg(long, env = "AMA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (reloaded on SIGHUP). Required.
    #[arg(long, env = "AMA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PostgreSQL connection string of the authenticator login role (key=value or postgres:// URL). Required.
    #[arg(long, env = "AMA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Maximum number of pooled database connections.
    #[arg(long, env = "AMA_POOL_SIZE", default_value = "16")]
    pub pool_size: usize,
    /// Longest wait for a free pooled connection before answering 503, in ms.
    #[arg(long, env = "AMA_POOL_TIMEOUT_MS", default_value = "2000")]
    pub pool_timeout_ms: u64,
    /// Database connect timeout, in ms.
    #[arg(long, env = "AMA_DB_CONNECT_TIMEOUT_MS", default_value = "2000")]
    pub db_connect_timeout_ms: u64,
    /// statement_timeout sent to PostgreSQL at connect (0 = do not send, e.g. behind a pgbouncer
    /// that rejects startup options), in ms.
    #[arg(long, env = "AMA_DB_STATEMENT_TIMEOUT_MS", default_value = "5000")]
    pub db_statement_timeout_ms: u64,
    /// The whole of one request's database work (pool wait and call), in ms: past it the request
    /// gets 503 with Retry-After and the statement is cancelled, so a frozen database never holds
    /// a client longer.
    #[arg(long, env = "AMA_DB_DEADLINE_MS", default_value = "3000")]
    pub db_deadline_ms: u64,
    /// The share of the pool, in percent, that one route may hold at once (at least one
    /// connection): a slow route (sends queued on one thread's row lock) cannot starve the
    /// others. Past it a request waits within its deadline, then gets 503 with Retry-After.
    #[arg(long, env = "AMA_ROUTE_POOL_SHARE", default_value = "75", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub route_pool_share: u8,
    /// What sits between the shim and PostgreSQL: none (or a session pooler), or transaction
    /// (pgbouncer in transaction mode, Supavisor): then the request statement is sent unnamed in
    /// one round trip, no startup options are sent (set statement_timeout on the role instead),
    /// and --listen-database-url is required.
    #[arg(long, env = "AMA_DB_POOLER", value_enum, default_value = "none")]
    pub db_pooler: DbPooler,
    /// Connection string for the LISTEN connection that wakes event streams; it needs a session,
    /// so behind a transaction pooler it must reach PostgreSQL directly [default: database_url].
    #[arg(long, env = "AMA_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<SecretString>,
    /// HS256 shared secret for user JWTs (prefer --jwt-secret-file).
    #[arg(long, env = "AMA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// File holding the HS256 shared secret (surrounding whitespace is trimmed).
    #[arg(long, env = "AMA_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// JWKS file with ES256/RS256 public keys (re-read on SIGHUP and on the refresh timer).
    #[arg(long, env = "AMA_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (https:// or http://) with ES256/RS256 public keys, fetched at start, on the
    /// refresh timer and on an unknown `kid` (with a cooldown). Body limited to 64 KiB.
    #[arg(long, env = "AMA_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Seconds between scheduled JWKS refreshes.
    #[arg(long, env = "AMA_JWKS_REFRESH_SECS", default_value = "300")]
    pub jwks_refresh_secs: u64,
    /// Minimum seconds between JWKS refreshes triggered by an unknown `kid`.
    #[arg(long, env = "AMA_JWKS_COOLDOWN_SECS", default_value = "30")]
    pub jwks_cooldown_secs: u64,
    /// Required `iss` claim of user JWTs (not checked when unset).
    #[arg(long, env = "AMA_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim of user JWTs.
    #[arg(long, env = "AMA_JWT_AUDIENCE", default_value = "authenticated")]
    pub jwt_audience: String,
    /// Maximum JWT lifetime (`exp - iat`), in seconds.
    #[arg(long, env = "AMA_JWT_MAX_LIFETIME_SECS", default_value = "86400")]
    pub jwt_max_lifetime_secs: u64,
    /// Maximum number of verified JWTs kept in the cache.
    #[arg(long, env = "AMA_JWT_CACHE_SIZE", default_value = "10000")]
    pub jwt_cache_size: usize,
    /// Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is trusted (none when
    /// unset).
    #[arg(long, env = "AMA_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Comma-separated IPs/CIDRs of clients that may read /metrics; anyone else gets 404, as for
    /// an unknown path. The client IP is the socket peer, or X-Forwarded-For from a trusted proxy
    /// only. An empty value hides /metrics from everyone.
    #[arg(
        long,
        env = "AMA_METRICS_ALLOW",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    pub metrics_allow: Vec<String>,
    /// Credentials the shim refuses by itself (malformed tokens or keys, JWTs with a bad
    /// signature, expired, wrong audience, ...) allowed per minute per client IP and credential
    /// kind; past it they get 429 instead of 401. A credential that verifies is always served.
    #[arg(long, env = "AMA_AUTH_FAILURE_LIMIT", default_value = "10")]
    pub auth_failure_limit: u32,
    /// Requests per minute per client IP to /health, /ready, /metrics and the OpenAPI document
    /// (429 above).
    #[arg(long, env = "AMA_SHIM_ENDPOINT_LIMIT", default_value = "600")]
    pub shim_endpoint_limit: u32,
    /// Keys each of the two limits above remembers at most (bounded memory, about 130 bytes a
    /// key); a forgotten key starts with a fresh allowance.
    #[arg(long, env = "AMA_LIMITER_KEYS", default_value = "65536")]
    pub limiter_keys: usize,
    /// Maximum request body size in bytes (413 above).
    #[arg(long, env = "AMA_BODY_LIMIT", default_value = "65536")]
    pub body_limit: usize,
    /// Maximum size of the request head (HTTP/1 buffer, HTTP/2 header list), bytes (at least 8192).
    #[arg(long, env = "AMA_MAX_HEADER_BYTES", default_value = "16384")]
    pub max_header_bytes: usize,
    /// Maximum number of request headers (HTTP/1).
    #[arg(long, env = "AMA_MAX_HEADERS", default_value = "64")]
    pub max_headers: usize,
    /// Time allowed for the TLS handshake and for reading a request head (slowloris), in ms.
    #[arg(long, env = "AMA_HEADER_READ_TIMEOUT_MS", default_value = "10000")]
    pub header_read_timeout_ms: u64,
    /// Time allowed for reading a request body (408 after it), in ms; the database call is bounded
    /// separately by the pool and statement timeouts.
    #[arg(long, env = "AMA_REQUEST_TIMEOUT_MS", default_value = "30000")]
    pub request_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 keep-alive and
    /// HTTP/2 alike; an event stream is a request in flight), in ms. A connection that has not
    /// begun its first request within the header-read timeout is closed too.
    #[arg(long, env = "AMA_IDLE_TIMEOUT_MS", default_value = "60000")]
    pub idle_timeout_ms: u64,
    /// Maximum concurrent client connections (at most 1000000).
    #[arg(long, env = "AMA_MAX_CONNECTIONS", default_value = "10000")]
    pub max_connections: usize,
    /// Maximum concurrent client connections from one client address (an IPv6 client by its
    /// /64); peers in --trusted-proxies are exempt. One address cannot take every slot.
    #[arg(long, env = "AMA_MAX_CONNECTIONS_PER_IP", default_value = "256")]
    pub max_connections_per_ip: usize,
    /// Longest wait for in-flight requests at shutdown, in ms.
    #[arg(long, env = "AMA_SHUTDOWN_TIMEOUT_MS", default_value = "10000")]
    pub shutdown_timeout_ms: u64,
    /// Seconds between SSE heartbeat comments.
    #[arg(long, env = "AMA_SSE_HEARTBEAT_SECS", default_value = "15")]
    pub sse_heartbeat_secs: u64,
    /// Seconds between a stream's (SSE or WebSocket) re-checks with its own credential without a
    /// notification: a revoked stream lives at most this plus one database round trip (4 s, so
    /// under 5 s with the round trip).
    #[arg(long, env = "AMA_SSE_RECHECK_SECS", default_value = "4")]
    pub sse_recheck_secs: u64,
    /// WebSocket streams open at once for one principal (user or agent), across its sockets.
    #[arg(long, env = "AMA_WS_MAX_PER_USER", default_value = "16")]
    pub ws_max_per_user: usize,
    /// WebSocket streams open at once from one client address (an IPv6 client by its /64),
    /// counted from the upgrade, before the credential is checked.
    #[arg(long, env = "AMA_WS_MAX_PER_IP", default_value = "64")]
    pub ws_max_per_ip: usize,
    /// Largest WebSocket message (and frame) a client may send, in bytes; larger closes the
    /// socket with 1009.
    #[arg(long, env = "AMA_WS_MAX_MESSAGE_BYTES", default_value = "4096")]
    pub ws_max_message_bytes: usize,
    /// A WebSocket that sends nothing (no message, no pong to the shim's pings) for this many
    /// seconds is closed; the shim pings at a third of it.
    #[arg(long, env = "AMA_WS_IDLE_TIMEOUT_SECS", default_value = "60")]
    pub ws_idle_timeout_secs: u64,
    /// Frames queued for one WebSocket client; a client that lets the queue fill (a slow
    /// consumer) is disconnected with 1008 instead of buffered without bound.
    #[arg(long, env = "AMA_WS_SEND_QUEUE", default_value = "256")]
    pub ws_send_queue: usize,
    /// Seconds a WebSocket opened without a credential has to send its `auth` message.
    #[arg(long, env = "AMA_WS_AUTH_TIMEOUT_SECS", default_value = "5")]
    pub ws_auth_timeout_secs: u64,
    /// `typing` messages one WebSocket may send per second (more get a `rate_limited` error).
    #[arg(long, env = "AMA_WS_TYPING_PER_SEC", default_value = "5")]
    pub ws_typing_per_sec: u32,
    /// Webhook deliverer workers: deliveries in flight at once from this shim (0 turns the
    /// deliverer off; other shims or a restart deliver what is pending). Each is a task holding
    /// at most one body and a 64 KiB answer; many, so slow receivers cannot take them all.
    #[arg(long, env = "AMA_WEBHOOK_WORKERS", default_value = "32")]
    pub webhook_workers: usize,
    /// Let webhook deliveries reach loopback, private, link-local and other blocked addresses.
    /// For tests with a local receiver only: it turns the SSRF guard off.
    #[arg(long, env = "AMA_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
    pub webhook_allow_private_networks: bool,
    /// PEM file of extra root certificates trusted for webhook receivers (besides the webpki
    /// roots), e.g. a test receiver's self-signed certificate.
    #[arg(long, env = "AMA_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "AMA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level or tracing filter (e.g. info, debug, ama_shim=debug).
    #[arg(long, env = "AMA_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Default for Options {
    /// The declared defaults: an empty command line, the environment ignored.
    fn default() -> Options {
        let matches = Options::command()
            .mut_args(|a| a.env(None::<&'static str>))
            .try_get_matches_from(["ama-shim"])
            .expect("the declared defaults parse");
        Options::from_arg_matches(&matches).expect("the declared defaults parse")
    }
}

impl Options {
    /// The options from `args` (the program name first) and the `AMA_*` environment over the
    /// `--config` file over the defaults.
    pub fn from_sources<I, T>(args: I) -> Result<Options, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        // the whole declaration first: --help, --version and every refusal, defaults shown
        let all = Options::command().try_get_matches_from(&args)?;
        let file = match all.get_one::<PathBuf>("config") {
            Some(path) => Options::from_file(path)?,
            None => Options::default(),
        };
        file.with_args(args)
    }

    /// `self` (the file over the defaults) with the values that `args` (the program name first)
    /// and the `AMA_*` environment give laid over it; the defaults do not count here.
    pub fn with_args<I, T>(mut self, args: I) -> Result<Options, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let given = Options::command()
            .mut_args(|a| a.default_value(None::<&'static str>))
            .try_get_matches_from(args)?;
        self.update_from_arg_matches(&given)?;
        Ok(self)
    }

    /// The TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Options, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}
