//! Configuration: TOML file (`--config`), overridden by `AMA_*` environment variables, overridden
//! by command-line flags. Secrets never appear in `Debug` output.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

/// Command-line flags; each one can also be set by its `AMA_*` environment variable or by the
/// key of the same name (with `_` instead of `-`) in the TOML file given by `--config`.
#[derive(Parser, Default)]
#[command(
    name = "ama-shim",
    version,
    about = "HTTPS front door for ama_pg: TLS, JWT verification, \
credential forwarding, one database round trip per request.\n\nPrecedence: flag > AMA_* environment variable > TOML file (--config) > default."
)]
pub struct Cli {
    /// TOML configuration file (keys are the long flag names with `_` instead of `-`).
    #[arg(long, env = "AMA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on for HTTPS [default: 127.0.0.1:8443].
    #[arg(long, env = "AMA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM file with the TLS certificate chain (reloaded on SIGHUP). Required.
    #[arg(long, env = "AMA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (reloaded on SIGHUP). Required.
    #[arg(long, env = "AMA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PostgreSQL connection string of the authenticator login role (key=value or postgres:// URL). Required.
    #[arg(long, env = "AMA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Maximum number of pooled database connections [default: 16].
    #[arg(long, env = "AMA_POOL_SIZE")]
    pub pool_size: Option<usize>,
    /// Longest wait for a free pooled connection before answering 503, in ms [default: 2000].
    #[arg(long, env = "AMA_POOL_TIMEOUT_MS")]
    pub pool_timeout_ms: Option<u64>,
    /// Database connect timeout, in ms [default: 2000].
    #[arg(long, env = "AMA_DB_CONNECT_TIMEOUT_MS")]
    pub db_connect_timeout_ms: Option<u64>,
    /// statement_timeout sent to PostgreSQL at connect (0 = do not send, e.g. behind a pgbouncer
    /// that rejects startup options); the shim also gives up 1 s after it, in ms [default: 5000].
    #[arg(long, env = "AMA_DB_STATEMENT_TIMEOUT_MS")]
    pub db_statement_timeout_ms: Option<u64>,
    /// HS256 shared secret for user JWTs (prefer --jwt-secret-file).
    #[arg(long, env = "AMA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
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
    /// Seconds between scheduled JWKS refreshes [default: 300].
    #[arg(long, env = "AMA_JWKS_REFRESH_SECS")]
    pub jwks_refresh_secs: Option<u64>,
    /// Minimum seconds between JWKS refreshes triggered by an unknown `kid` [default: 30].
    #[arg(long, env = "AMA_JWKS_COOLDOWN_SECS")]
    pub jwks_cooldown_secs: Option<u64>,
    /// Required `iss` claim of user JWTs (not checked when unset).
    #[arg(long, env = "AMA_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim of user JWTs [default: authenticated].
    #[arg(long, env = "AMA_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Maximum JWT lifetime (`exp - iat`), in seconds [default: 86400].
    #[arg(long, env = "AMA_JWT_MAX_LIFETIME_SECS")]
    pub jwt_max_lifetime_secs: Option<u64>,
    /// Maximum number of verified JWTs kept in the cache [default: 10000].
    #[arg(long, env = "AMA_JWT_CACHE_SIZE")]
    pub jwt_cache_size: Option<usize>,
    /// Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is trusted [default: none].
    #[arg(long, env = "AMA_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Comma-separated IPs/CIDRs of clients that may read /metrics; anyone else gets 404, as for
    /// an unknown path. The client IP is the socket peer, or X-Forwarded-For from a trusted proxy
    /// only. An empty value hides /metrics from everyone [default: 127.0.0.0/8,::1].
    #[arg(long, env = "AMA_METRICS_ALLOW", value_delimiter = ',')]
    pub metrics_allow: Option<Vec<String>>,
    /// Credentials the shim refuses by itself (malformed tokens or keys, JWTs with a bad
    /// signature, expired, wrong audience, ...) allowed per minute per client IP and credential
    /// kind; past it they get 429 instead of 401. A credential that verifies is always served
    /// [default: 10].
    #[arg(long, env = "AMA_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<u32>,
    /// Requests per minute per client IP to /health, /ready, /metrics and the OpenAPI document
    /// (429 above) [default: 600].
    #[arg(long, env = "AMA_SHIM_ENDPOINT_LIMIT")]
    pub shim_endpoint_limit: Option<u32>,
    /// Keys each of the two limits above remembers at most (bounded memory, about 130 bytes a
    /// key); a forgotten key starts with a fresh allowance [default: 65536].
    #[arg(long, env = "AMA_LIMITER_KEYS")]
    pub limiter_keys: Option<usize>,
    /// Maximum request body size in bytes (413 above) [default: 65536].
    #[arg(long, env = "AMA_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Maximum size of the request head (HTTP/1 buffer, HTTP/2 header list), bytes [default: 16384].
    #[arg(long, env = "AMA_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Maximum number of request headers (HTTP/1) [default: 64].
    #[arg(long, env = "AMA_MAX_HEADERS")]
    pub max_headers: Option<usize>,
    /// Time allowed for the TLS handshake and for reading a request head (slowloris), in ms [default: 10000].
    #[arg(long, env = "AMA_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Time allowed for reading a request body (408 after it), in ms; the database call is bounded
    /// separately by the pool and statement timeouts [default: 30000].
    #[arg(long, env = "AMA_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Maximum concurrent client connections [default: 10000].
    #[arg(long, env = "AMA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Longest wait for in-flight requests at shutdown, in ms [default: 10000].
    #[arg(long, env = "AMA_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Seconds between SSE heartbeat comments [default: 15].
    #[arg(long, env = "AMA_SSE_HEARTBEAT_SECS")]
    pub sse_heartbeat_secs: Option<u64>,
    /// Seconds between SSE re-polls without a notification (bounds how long a revoked stream lives) [default: 5].
    #[arg(long, env = "AMA_SSE_RECHECK_SECS")]
    pub sse_recheck_secs: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "AMA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log level or tracing filter (e.g. info, debug, ama_shim=debug) [default: info].
    #[arg(long, env = "AMA_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// The TOML file: the same keys as the flags.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub database_url: Option<String>,
    pub pool_size: Option<usize>,
    pub pool_timeout_ms: Option<u64>,
    pub db_connect_timeout_ms: Option<u64>,
    pub db_statement_timeout_ms: Option<u64>,
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub jwks_refresh_secs: Option<u64>,
    pub jwks_cooldown_secs: Option<u64>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_max_lifetime_secs: Option<u64>,
    pub jwt_cache_size: Option<usize>,
    pub trusted_proxies: Option<Vec<String>>,
    pub metrics_allow: Option<Vec<String>>,
    pub auth_failure_limit: Option<u32>,
    pub shim_endpoint_limit: Option<u32>,
    pub limiter_keys: Option<usize>,
    pub body_limit: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub shutdown_timeout_ms: Option<u64>,
    pub sse_heartbeat_secs: Option<u64>,
    pub sse_recheck_secs: Option<u64>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub database_url: Secret,
    pub pool_size: usize,
    pub pool_timeout: Duration,
    pub db_connect_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub jwt_secret: Option<Secret>,
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
    pub shutdown_timeout: Duration,
    pub sse_heartbeat: Duration,
    pub sse_recheck: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// Parses one address-list entry: an IP address or a CIDR.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}

/// Parses an address list (empty entries skipped); errors name the option.
fn parse_nets(option: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_net(s).map_err(|e| format!("{option}: {e}")))
        .collect()
}

/// Who may read /metrics when `metrics_allow` is not set: loopback only.
pub const DEFAULT_METRICS_ALLOW: &[&str] = &["127.0.0.0/8", "::1/128"];

fn at_least_one<T: PartialEq + Default>(option: &str, v: T) -> Result<T, String> {
    if v == T::default() {
        Err(format!("{option} must be at least 1"))
    } else {
        Ok(v)
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// Merges flags/env (already merged by clap) over the file over the defaults.
    pub fn from_sources(cli: Cli, file: FileConfig) -> Result<Config, String> {
        let tls_cert = cli
            .tls_cert
            .or(file.tls_cert)
            .ok_or("missing --tls-cert (AMA_TLS_CERT)")?;
        let tls_key = cli
            .tls_key
            .or(file.tls_key)
            .ok_or("missing --tls-key (AMA_TLS_KEY)")?;
        let database_url = cli
            .database_url
            .or(file.database_url)
            .ok_or("missing --database-url (AMA_DATABASE_URL)")?;
        let secret_file = cli.jwt_secret_file.or(file.jwt_secret_file);
        let jwt_secret = match (cli.jwt_secret.or(file.jwt_secret), secret_file) {
            (Some(s), _) => Some(s),
            (None, Some(p)) => Some(
                std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read jwt secret file {}: {e}", p.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if jwt_secret.as_deref() == Some("") {
            return Err("the JWT secret is empty".into());
        }
        let jwks_url = cli.jwks_url.or(file.jwks_url);
        if let Some(u) = &jwks_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err("jwks_url must start with https:// or http://".into());
            }
        }
        let trusted_proxies = parse_nets(
            "trusted_proxies",
            &cli.trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or_default(),
        )?;
        let metrics_allow = parse_nets(
            "metrics_allow",
            &cli.metrics_allow.or(file.metrics_allow).unwrap_or_else(|| {
                DEFAULT_METRICS_ALLOW
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }),
        )?;
        let auth_failure_limit = at_least_one(
            "auth_failure_limit",
            cli.auth_failure_limit
                .or(file.auth_failure_limit)
                .unwrap_or(10),
        )?;
        let shim_endpoint_limit = at_least_one(
            "shim_endpoint_limit",
            cli.shim_endpoint_limit
                .or(file.shim_endpoint_limit)
                .unwrap_or(600),
        )?;
        let limiter_keys = at_least_one(
            "limiter_keys",
            cli.limiter_keys.or(file.limiter_keys).unwrap_or(65_536),
        )?;
        let log_format = match cli.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(format!("log_format must be text or json, not `{other}`")),
        };
        let pool_size = cli.pool_size.or(file.pool_size).unwrap_or(16);
        let max_connections = cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(10_000);
        let max_connections = max_connections.min(1_000_000);
        if pool_size == 0 || max_connections == 0 {
            return Err("pool_size and max_connections must be at least 1".into());
        }
        Ok(Config {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            tls_cert,
            tls_key,
            database_url: Secret(database_url),
            pool_size,
            pool_timeout: ms(cli.pool_timeout_ms.or(file.pool_timeout_ms).unwrap_or(2000)),
            db_connect_timeout: ms(cli
                .db_connect_timeout_ms
                .or(file.db_connect_timeout_ms)
                .unwrap_or(2000)),
            db_statement_timeout: ms(cli
                .db_statement_timeout_ms
                .or(file.db_statement_timeout_ms)
                .unwrap_or(5000)),
            jwt_secret: jwt_secret.map(Secret),
            jwks_file: cli.jwks_file.or(file.jwks_file),
            jwks_url,
            jwks_refresh: Duration::from_secs(
                cli.jwks_refresh_secs
                    .or(file.jwks_refresh_secs)
                    .unwrap_or(300)
                    .max(1),
            ),
            jwks_cooldown: Duration::from_secs(
                cli.jwks_cooldown_secs
                    .or(file.jwks_cooldown_secs)
                    .unwrap_or(30),
            ),
            jwt_issuer: cli.jwt_issuer.or(file.jwt_issuer),
            jwt_audience: cli
                .jwt_audience
                .or(file.jwt_audience)
                .unwrap_or_else(|| "authenticated".into()),
            jwt_max_lifetime_secs: cli
                .jwt_max_lifetime_secs
                .or(file.jwt_max_lifetime_secs)
                .unwrap_or(86_400),
            jwt_cache_size: cli.jwt_cache_size.or(file.jwt_cache_size).unwrap_or(10_000),
            trusted_proxies,
            metrics_allow,
            auth_failure_limit,
            shim_endpoint_limit,
            limiter_keys,
            body_limit: cli.body_limit.or(file.body_limit).unwrap_or(65_536),
            max_header_bytes: cli
                .max_header_bytes
                .or(file.max_header_bytes)
                .unwrap_or(16_384)
                .max(8192),
            max_headers: cli.max_headers.or(file.max_headers).unwrap_or(64).max(1),
            header_read_timeout: ms(cli
                .header_read_timeout_ms
                .or(file.header_read_timeout_ms)
                .unwrap_or(10_000)),
            request_timeout: ms(cli
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .unwrap_or(30_000)),
            max_connections,
            shutdown_timeout: ms(cli
                .shutdown_timeout_ms
                .or(file.shutdown_timeout_ms)
                .unwrap_or(10_000)),
            sse_heartbeat: Duration::from_secs(
                cli.sse_heartbeat_secs
                    .or(file.sse_heartbeat_secs)
                    .unwrap_or(15)
                    .max(1),
            ),
            sse_recheck: Duration::from_secs(
                cli.sse_recheck_secs
                    .or(file.sse_recheck_secs)
                    .unwrap_or(5)
                    .max(1),
            ),
            log_format,
            log_level: cli
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
        })
    }

    /// Parses the process arguments and environment, reads the TOML file, merges.
    pub fn load() -> Result<Config, String> {
        let cli = Cli::parse();
        let file = match &cli.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read config file {}: {e}", p.display()))?;
                toml::from_str(&text)
                    .map_err(|e| format!("invalid config file {}: {e}", p.display()))?
            }
            None => FileConfig::default(),
        };
        Config::from_sources(cli, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_cli() -> Cli {
        Cli::try_parse_from([
            "ama-shim",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--database-url",
            "host=x password=hunter2",
        ])
        .expect("parse")
    }

    #[test]
    fn defaults_and_precedence() {
        let file: FileConfig =
            toml::from_str("pool_size = 3\nlisten = \"0.0.0.0:9000\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n")
                .expect("toml");
        let mut cli = base_cli();
        cli.pool_size = Some(7);
        let c = Config::from_sources(cli, file).expect("config");
        assert_eq!(c.pool_size, 7, "flag beats file");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000", "file beats default");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.body_limit, 65_536);
        assert_eq!(c.jwt_audience, "authenticated");
        assert_eq!(c.jwt_max_lifetime_secs, 86_400);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.auth_failure_limit, 10);
        assert_eq!(c.shim_endpoint_limit, 600);
        assert_eq!(c.limiter_keys, 65_536);
        let allow: Vec<String> = c.metrics_allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn limits_and_metrics_allow_list() {
        let cli = Cli::try_parse_from([
            "ama-shim",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--database-url",
            "x",
            "--metrics-allow",
            "10.0.0.0/8, 192.0.2.7",
            "--auth-failure-limit",
            "3",
            "--shim-endpoint-limit",
            "5",
            "--limiter-keys",
            "100",
        ])
        .expect("parse");
        let c = Config::from_sources(cli, FileConfig::default()).expect("config");
        let allow: Vec<String> = c.metrics_allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["10.0.0.0/8", "192.0.2.7/32"]);
        assert_eq!(
            (c.auth_failure_limit, c.shim_endpoint_limit, c.limiter_keys),
            (3, 5, 100)
        );
        // an empty list hides /metrics from everyone; the file works like the flags
        let file: FileConfig =
            toml::from_str("metrics_allow = []\nauth_failure_limit = 7\n").expect("toml");
        let c = Config::from_sources(base_cli(), file).expect("config");
        assert!(c.metrics_allow.is_empty());
        assert_eq!(c.auth_failure_limit, 7);
        for (field, value) in [
            ("auth_failure_limit", "0"),
            ("shim_endpoint_limit", "0"),
            ("limiter_keys", "0"),
            ("metrics_allow", "[\"localhost\"]"),
        ] {
            let file: FileConfig = toml::from_str(&format!("{field} = {value}")).expect("toml");
            let e = Config::from_sources(base_cli(), file).expect_err(field);
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn missing_required_and_bad_values() {
        assert!(Config::from_sources(Cli::default(), FileConfig::default()).is_err());
        let mut cli = base_cli();
        cli.log_format = Some("xml".into());
        assert!(Config::from_sources(cli, FileConfig::default()).is_err());
        let mut cli = base_cli();
        cli.trusted_proxies = Some(vec!["not-an-ip".into()]);
        assert!(Config::from_sources(cli, FileConfig::default()).is_err());
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut cli = base_cli();
        cli.jwt_secret = Some("super-secret-value".into());
        let c = Config::from_sources(cli, FileConfig::default()).expect("config");
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"));
        assert!(!d.contains("super-secret-value"));
        assert!(d.contains("redacted"));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
