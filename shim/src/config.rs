//! Configuration. Every option is declared once, in [`Options`]: its flag, its `AMA_*`
//! environment variable, its help text and its default (clap), and its key in the TOML file given
//! by `--config` (serde: the long flag name with `_` instead of `-`).
//!
//! Precedence: flag > `AMA_*` environment variable > TOML file > default. [`Options::default`] is
//! the declaration's defaults (an empty command line, the environment ignored); the file is
//! deserialised over it; then the values that the command line or the environment gave (a second
//! parse with the defaults removed) are laid over that. [`Config`] is the effective, validated
//! configuration. Secrets are [`SecretString`]s: `Debug` never shows them.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

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
    /// Seconds between SSE re-polls without a notification (bounds how long a revoked stream lives).
    #[arg(long, env = "AMA_SSE_RECHECK_SECS", default_value = "5")]
    pub sse_recheck_secs: u64,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Refused by clap (or `--help`, `--version`): [`clap::Error::exit`] prints it.
    #[error("{0}")]
    Args(#[from] clap::Error),
    #[error("missing --{flag} ({env})")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {}: {source}", path.display())]
    ParseFile {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("cannot read jwt secret file {}: {source}", path.display())]
    ReadSecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT secret is empty")]
    EmptyJwtSecret,
    #[error("jwks_url must start with https:// or http://")]
    JwksUrlScheme,
    #[error("{option}: {source}")]
    Net {
        option: &'static str,
        source: BadNet,
    },
    #[error("{0} must be at least 1")]
    AtLeastOne(&'static str),
}

/// An address-list entry that is neither an IP address nor a CIDR.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR")]
pub struct BadNet(pub String);

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub database_url: SecretString,
    pub pool_size: usize,
    pub pool_timeout: Duration,
    pub db_connect_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub db_deadline: Duration,
    pub jwt_secret: Option<SecretString>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    pub jwks_cooldown: Duration,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: String,
    pub jwt_max_lifetime_secs: u64,
    pub jwt_cache_size: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub metrics_allow: Vec<IpNet>,
    pub auth_failure_limit: u32,
    pub shim_endpoint_limit: u32,
    pub limiter_keys: usize,
    pub body_limit: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub shutdown_timeout: Duration,
    pub sse_heartbeat: Duration,
    pub sse_recheck: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// Parses one address-list entry: an IP address or a CIDR.
pub fn parse_net(s: &str) -> Result<IpNet, BadNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| BadNet(s.to_string()))
}

/// Parses an address list (empty entries skipped); errors name the option.
fn parse_nets(option: &'static str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_net(s).map_err(|source| ConfigError::Net { option, source }))
        .collect()
}

fn at_least_one<T: PartialEq + Default>(option: &'static str, v: T) -> Result<T, ConfigError> {
    if v == T::default() {
        Err(ConfigError::AtLeastOne(option))
    } else {
        Ok(v)
    }
}

fn required<T>(v: Option<T>, flag: &'static str, env: &'static str) -> Result<T, ConfigError> {
    v.ok_or(ConfigError::Missing { flag, env })
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Seconds, at least one.
fn secs_min_1(v: u64) -> Duration {
    Duration::from_secs(v.max(1))
}

impl TryFrom<Options> for Config {
    type Error = ConfigError;

    /// Validates the options and applies the documented floors and ceilings.
    fn try_from(o: Options) -> Result<Config, ConfigError> {
        let tls_cert = required(o.tls_cert, "tls-cert", "AMA_TLS_CERT")?;
        let tls_key = required(o.tls_key, "tls-key", "AMA_TLS_KEY")?;
        let database_url = required(o.database_url, "database-url", "AMA_DATABASE_URL")?;
        let jwt_secret = match (o.jwt_secret, o.jwt_secret_file) {
            (Some(s), _) => Some(s),
            (None, Some(path)) => Some(SecretString::from(
                std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::ReadSecretFile { path, source })?
                    .trim(),
            )),
            (None, None) => None,
        };
        if jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().is_empty())
        {
            return Err(ConfigError::EmptyJwtSecret);
        }
        if let Some(u) = &o.jwks_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(ConfigError::JwksUrlScheme);
            }
        }
        Ok(Config {
            listen: o.listen,
            tls_cert,
            tls_key,
            database_url,
            pool_size: at_least_one("pool_size", o.pool_size)?,
            pool_timeout: ms(o.pool_timeout_ms),
            db_connect_timeout: ms(o.db_connect_timeout_ms),
            db_statement_timeout: ms(o.db_statement_timeout_ms),
            db_deadline: ms(o.db_deadline_ms.max(1)),
            jwt_secret,
            jwks_file: o.jwks_file,
            jwks_url: o.jwks_url,
            jwks_refresh: secs_min_1(o.jwks_refresh_secs),
            jwks_cooldown: Duration::from_secs(o.jwks_cooldown_secs),
            jwt_issuer: o.jwt_issuer,
            jwt_audience: o.jwt_audience,
            jwt_max_lifetime_secs: o.jwt_max_lifetime_secs,
            jwt_cache_size: o.jwt_cache_size,
            trusted_proxies: parse_nets("trusted_proxies", &o.trusted_proxies)?,
            metrics_allow: parse_nets("metrics_allow", &o.metrics_allow)?,
            auth_failure_limit: at_least_one("auth_failure_limit", o.auth_failure_limit)?,
            shim_endpoint_limit: at_least_one("shim_endpoint_limit", o.shim_endpoint_limit)?,
            limiter_keys: at_least_one("limiter_keys", o.limiter_keys)?,
            body_limit: o.body_limit,
            max_header_bytes: o.max_header_bytes.max(8192),
            max_headers: o.max_headers.max(1),
            header_read_timeout: ms(o.header_read_timeout_ms),
            request_timeout: ms(o.request_timeout_ms),
            max_connections: at_least_one("max_connections", o.max_connections.min(1_000_000))?,
            max_connections_per_ip: at_least_one(
                "max_connections_per_ip",
                o.max_connections_per_ip.min(1_000_000),
            )?,
            shutdown_timeout: ms(o.shutdown_timeout_ms),
            sse_heartbeat: secs_min_1(o.sse_heartbeat_secs),
            sse_recheck: secs_min_1(o.sse_recheck_secs),
            log_format: o.log_format,
            log_level: o.log_level,
        })
    }
}

impl Config {
    /// The configuration from `args` (the program name first), the `AMA_*` environment and the
    /// `--config` file.
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Options::from_sources(args)?.try_into()
    }

    /// The configuration of this process. A refusal by clap (and `--help`, `--version`) prints
    /// clap's message and exits, as `Parser::parse` does.
    pub fn load() -> Result<Config, ConfigError> {
        match Config::from_args(std::env::args_os()) {
            Err(ConfigError::Args(e)) => e.exit(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
