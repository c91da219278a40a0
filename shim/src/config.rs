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

mod options;
pub use options::Options;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What sits between the shim and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbPooler {
    /// PostgreSQL itself, or a session pooler: the request statement is prepared once per
    /// connection.
    None,
    /// A transaction pooler (pgbouncer in transaction mode, Supavisor): the statement is sent
    /// unnamed with its parameter types in one round trip, no startup options are sent, and the
    /// LISTEN connection goes direct (`--listen-database-url`).
    Transaction,
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
    #[error("db_pooler = transaction needs --listen-database-url (AMA_LISTEN_DATABASE_URL): LISTEN needs a session, so it must reach PostgreSQL directly")]
    ListenUrlRequired,
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
    /// Percent of the pool one route may hold at once.
    pub route_pool_share: u8,
    pub db_pooler: DbPooler,
    /// The LISTEN connection's own connection string (`database_url` when unset).
    pub listen_database_url: Option<SecretString>,
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
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub shutdown_timeout: Duration,
    pub sse_heartbeat: Duration,
    pub sse_recheck: Duration,
    pub ws_max_per_user: usize,
    pub ws_max_per_ip: usize,
    pub ws_max_message_bytes: usize,
    pub ws_idle_timeout: Duration,
    pub ws_send_queue: usize,
    pub ws_auth_timeout: Duration,
    pub ws_typing_per_sec: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Webhook deliverer workers (0: off).
    pub webhook_workers: usize,
    /// The SSRF guard off (tests only).
    pub webhook_allow_private_networks: bool,
    /// Extra trusted roots for webhook receivers.
    pub webhook_ca_file: Option<PathBuf>,
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
        if o.db_pooler == DbPooler::Transaction && o.listen_database_url.is_none() {
            return Err(ConfigError::ListenUrlRequired);
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
            route_pool_share: o.route_pool_share,
            db_pooler: o.db_pooler,
            listen_database_url: o.listen_database_url,
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
            idle_timeout: ms(o.idle_timeout_ms.max(1)),
            max_connections: at_least_one("max_connections", o.max_connections.min(1_000_000))?,
            max_connections_per_ip: at_least_one(
                "max_connections_per_ip",
                o.max_connections_per_ip.min(1_000_000),
            )?,
            shutdown_timeout: ms(o.shutdown_timeout_ms),
            sse_heartbeat: secs_min_1(o.sse_heartbeat_secs),
            sse_recheck: secs_min_1(o.sse_recheck_secs),
            ws_max_per_user: at_least_one("ws_max_per_user", o.ws_max_per_user)?,
            ws_max_per_ip: at_least_one("ws_max_per_ip", o.ws_max_per_ip)?,
            ws_max_message_bytes: o.ws_max_message_bytes.clamp(256, 1 << 20),
            ws_idle_timeout: Duration::from_secs(o.ws_idle_timeout_secs.max(3)),
            ws_send_queue: at_least_one("ws_send_queue", o.ws_send_queue)?,
            ws_auth_timeout: secs_min_1(o.ws_auth_timeout_secs),
            ws_typing_per_sec: at_least_one("ws_typing_per_sec", o.ws_typing_per_sec)?,
            log_format: o.log_format,
            log_level: o.log_level,
            webhook_workers: o.webhook_workers.min(1024),
            webhook_allow_private_networks: o.webhook_allow_private_networks,
            webhook_ca_file: o.webhook_ca_file,
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
