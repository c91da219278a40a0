use super::*;
use std::sync::{Mutex, MutexGuard};

/// clap reads the process environment and some tests here set it: one test at a time, with
/// every `AMA_*` variable removed first.
static ENV: Mutex<()> = Mutex::new(());

fn clean_env() -> MutexGuard<'static, ()> {
    let guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AMA_") {
            std::env::remove_var(k);
        }
    }
    guard
}

const REQUIRED: [&str; 7] = [
    "ama-shim",
    "--tls-cert",
    "c.pem",
    "--tls-key",
    "k.pem",
    "--database-url",
    "host=x password=hunter2",
];

fn config(extra: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args(REQUIRED.iter().chain(extra).copied())
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "ama-shim-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every option: its declared default (as `--help` shows it) and what the default gives in
/// the effective configuration's `Debug` output. The one place the defaults are asserted.
const DEFAULTS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("config", None, None),
    (
        "listen",
        Some("127.0.0.1:8443"),
        Some("listen: 127.0.0.1:8443"),
    ),
    ("tls_cert", None, None),
    ("tls_key", None, None),
    ("database_url", None, None),
    ("pool_size", Some("16"), Some("pool_size: 16")),
    ("pool_timeout_ms", Some("2000"), Some("pool_timeout: 2s")),
    (
        "db_connect_timeout_ms",
        Some("2000"),
        Some("db_connect_timeout: 2s"),
    ),
    (
        "db_statement_timeout_ms",
        Some("5000"),
        Some("db_statement_timeout: 5s"),
    ),
    ("db_deadline_ms", Some("3000"), Some("db_deadline: 3s")),
    ("route_pool_share", Some("75"), Some("route_pool_share: 75")),
    ("db_pooler", Some("none"), Some("db_pooler: None")),
    (
        "listen_database_url",
        None,
        Some("listen_database_url: None"),
    ),
    ("jwt_secret", None, Some("jwt_secret: None")),
    ("jwt_secret_file", None, None),
    ("jwks_file", None, Some("jwks_file: None")),
    ("jwks_url", None, Some("jwks_url: None")),
    ("jwks_refresh_secs", Some("300"), Some("jwks_refresh: 300s")),
    ("jwks_cooldown_secs", Some("30"), Some("jwks_cooldown: 30s")),
    ("jwt_issuer", None, Some("jwt_issuer: None")),
    (
        "jwt_audience",
        Some("authenticated"),
        Some("jwt_audience: \"authenticated\""),
    ),
    (
        "jwt_max_lifetime_secs",
        Some("86400"),
        Some("jwt_max_lifetime_secs: 86400"),
    ),
    (
        "jwt_cache_size",
        Some("10000"),
        Some("jwt_cache_size: 10000"),
    ),
    ("trusted_proxies", None, Some("trusted_proxies: []")),
    (
        "metrics_allow",
        Some("127.0.0.0/8,::1/128"),
        Some("metrics_allow: [127.0.0.0/8, ::1/128]"),
    ),
    (
        "auth_failure_limit",
        Some("10"),
        Some("auth_failure_limit: 10"),
    ),
    (
        "shim_endpoint_limit",
        Some("600"),
        Some("shim_endpoint_limit: 600"),
    ),
    ("limiter_keys", Some("65536"), Some("limiter_keys: 65536")),
    ("body_limit", Some("65536"), Some("body_limit: 65536")),
    (
        "max_header_bytes",
        Some("16384"),
        Some("max_header_bytes: 16384"),
    ),
    ("max_headers", Some("64"), Some("max_headers: 64")),
    (
        "header_read_timeout_ms",
        Some("10000"),
        Some("header_read_timeout: 10s"),
    ),
    (
        "request_timeout_ms",
        Some("30000"),
        Some("request_timeout: 30s"),
    ),
    ("idle_timeout_ms", Some("60000"), Some("idle_timeout: 60s")),
    (
        "max_connections",
        Some("10000"),
        Some("max_connections: 10000"),
    ),
    (
        "max_connections_per_ip",
        Some("256"),
        Some("max_connections_per_ip: 256"),
    ),
    (
        "shutdown_timeout_ms",
        Some("10000"),
        Some("shutdown_timeout: 10s"),
    ),
    ("sse_heartbeat_secs", Some("15"), Some("sse_heartbeat: 15s")),
    ("sse_recheck_secs", Some("4"), Some("sse_recheck: 4s")),
    ("ws_max_per_user", Some("16"), Some("ws_max_per_user: 16")),
    ("ws_max_per_ip", Some("64"), Some("ws_max_per_ip: 64")),
    (
        "ws_max_message_bytes",
        Some("4096"),
        Some("ws_max_message_bytes: 4096"),
    ),
    (
        "ws_idle_timeout_secs",
        Some("60"),
        Some("ws_idle_timeout: 60s"),
    ),
    ("ws_send_queue", Some("256"), Some("ws_send_queue: 256")),
    (
        "ws_auth_timeout_secs",
        Some("5"),
        Some("ws_auth_timeout: 5s"),
    ),
    ("ws_typing_per_sec", Some("5"), Some("ws_typing_per_sec: 5")),
    ("webhook_workers", Some("32"), Some("webhook_workers: 32")),
    (
        "webhook_allow_private_networks",
        None,
        Some("webhook_allow_private_networks: false"),
    ),
    ("webhook_ca_file", None, Some("webhook_ca_file: None")),
    ("log_format", Some("text"), Some("log_format: Text")),
    ("log_level", Some("info"), Some("log_level: \"info\"")),
];

#[test]
fn defaults() {
    let _env = clean_env();
    let command = Options::command();
    let ids: Vec<&str> = command
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| !matches!(*id, "help" | "version"))
        .collect();
    let table: Vec<&str> = DEFAULTS.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, table, "the table lists every option, in order");
    let help = Options::command().render_long_help().to_string();
    // every field followed by a comma, the last one too
    let debug = format!("{:?}", config(&[]).expect("config")).replace(" }", ", }");
    for (id, declared, effective) in DEFAULTS {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .expect("arg");
        let values: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        assert_eq!(values.first().map(String::as_str), *declared, "{id}");
        assert!(values.len() <= 1, "{id}: {values:?}");
        if let Some(d) = declared {
            assert!(help.contains(&format!("[default: {d}]")), "{id} in --help");
        }
        let env = arg.get_env().and_then(|e| e.to_str()).expect("env");
        assert_eq!(env, format!("AMA_{}", id.to_uppercase()), "{id}");
        assert!(help.contains(&format!("[env: {env}")), "{env} in --help");
        if let Some(e) = effective {
            assert!(debug.contains(&format!(" {e},")), "{e} in {debug}");
        }
    }
    // the file's keys have the same defaults
    let file: Options = toml::from_str("").expect("toml");
    assert_eq!(format!("{file:?}"), format!("{:?}", Options::default()));
}

/// One option of each type, each set in the file, the environment and on the command line:
/// flag > environment > file > default.
#[test]
fn precedence() {
    type Field = fn(&Config) -> String;
    let cases: [(&str, [&str; 3], [&str; 4], Field); 10] = [
        // option, [file, env, flag] values and the effective value of [default, file, env, flag]
        ("pool_size", ["3", "5", "7"], ["16", "3", "5", "7"], |c| {
            c.pool_size.to_string()
        }),
        (
            "auth_failure_limit",
            ["3", "5", "7"],
            ["10", "3", "5", "7"],
            |c| c.auth_failure_limit.to_string(),
        ),
        (
            "pool_timeout_ms",
            ["1", "2", "3"],
            ["2s", "1ms", "2ms", "3ms"],
            |c| format!("{:?}", c.pool_timeout),
        ),
        (
            "listen",
            ["\"0.0.0.0:9000\"", "0.0.0.0:9001", "[::1]:9002"],
            [
                "127.0.0.1:8443",
                "0.0.0.0:9000",
                "0.0.0.0:9001",
                "[::1]:9002",
            ],
            |c| c.listen.to_string(),
        ),
        (
            "jwt_audience",
            ["\"f\"", "e", "g"],
            ["authenticated", "f", "e", "g"],
            |c| c.jwt_audience.clone(),
        ),
        (
            "jwt_issuer",
            ["\"f\"", "e", "g"],
            ["None", "Some(\"f\")", "Some(\"e\")", "Some(\"g\")"],
            |c| format!("{:?}", c.jwt_issuer),
        ),
        (
            "jwks_file",
            ["\"f.json\"", "e.json", "g.json"],
            [
                "None",
                "Some(\"f.json\")",
                "Some(\"e.json\")",
                "Some(\"g.json\")",
            ],
            |c| format!("{:?}", c.jwks_file),
        ),
        (
            "log_format",
            ["\"json\"", "text", "json"],
            ["Text", "Json", "Text", "Json"],
            |c| format!("{:?}", c.log_format),
        ),
        (
            "trusted_proxies",
            ["[\"10.0.0.0/8\", \"::1\"]", "10.0.0.1,10.0.0.2", "::2"],
            [
                "[]",
                "[10.0.0.0/8, ::1/128]",
                "[10.0.0.1/32, 10.0.0.2/32]",
                "[::2/128]",
            ],
            |c| format!("{:?}", c.trusted_proxies),
        ),
        (
            "database_url",
            ["\"host=f\"", "host=e", "host=g"],
            [
                "error: missing --database-url (AMA_DATABASE_URL)",
                "host=f",
                "host=e",
                "host=g",
            ],
            |c| c.database_url.expose_secret().to_string(),
        ),
    ];
    let _env = clean_env();
    for (key, [file_value, env_value, flag_value], expected, field) in cases {
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("AMA_{}", key.to_uppercase());
        let file = TempFile::new(key, &format!("{key} = {file_value}\n"));
        let mut args = vec!["ama-shim", "--tls-cert", "c.pem", "--tls-key", "k.pem"];
        if key != "database_url" {
            args.extend(["--database-url", "host=x"]);
        }
        let eval = |args: &[&str]| match Config::from_args(args) {
            Ok(c) => field(&c),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(eval(&args), expected[0], "{key}: default");
        args.extend(["--config", file.arg()]);
        assert_eq!(eval(&args), expected[1], "{key}: file beats default");
        std::env::set_var(&env, env_value);
        assert_eq!(eval(&args), expected[2], "{key}: environment beats file");
        args.extend([flag.as_str(), flag_value]);
        assert_eq!(eval(&args), expected[3], "{key}: flag beats environment");
        std::env::remove_var(&env);
    }
}

#[test]
fn limits_and_metrics_allow_list() {
    let _env = clean_env();
    let c = config(&[
        "--metrics-allow",
        "10.0.0.0/8, 192.0.2.7",
        "--auth-failure-limit",
        "3",
        "--shim-endpoint-limit",
        "5",
        "--limiter-keys",
        "100",
    ])
    .expect("config");
    let allow: Vec<String> = c.metrics_allow.iter().map(ToString::to_string).collect();
    assert_eq!(allow, ["10.0.0.0/8", "192.0.2.7/32"]);
    assert_eq!(
        (c.auth_failure_limit, c.shim_endpoint_limit, c.limiter_keys),
        (3, 5, 100)
    );
    // an empty list hides /metrics from everyone, from the file or the flag
    let file = TempFile::new("empty-allow", "metrics_allow = []\n");
    let c = config(&["--config", file.arg()]).expect("config");
    assert!(c.metrics_allow.is_empty());
    let c = config(&["--metrics-allow", ""]).expect("config");
    assert!(c.metrics_allow.is_empty());
    for (field, value) in [
        ("auth_failure_limit", "0"),
        ("shim_endpoint_limit", "0"),
        ("limiter_keys", "0"),
        ("pool_size", "0"),
        ("max_connections", "0"),
        ("max_connections_per_ip", "0"),
        ("metrics_allow", "[\"localhost\"]"),
        ("trusted_proxies", "[\"10.0.0.0/8\", \"\", \"not-an-ip\"]"),
        ("jwks_url", "\"ftp://example.com/jwks\""),
    ] {
        let file = TempFile::new(field, &format!("{field} = {value}"));
        let e = config(&["--config", file.arg()]).expect_err(field);
        assert!(e.to_string().starts_with(field), "{e}");
    }
}

#[test]
fn floors_and_ceilings() {
    let _env = clean_env();
    let c = config(&[
        "--max-header-bytes",
        "100",
        "--max-headers",
        "0",
        "--max-connections",
        "5000000",
        "--jwks-refresh-secs",
        "0",
        "--jwks-cooldown-secs",
        "0",
        "--sse-heartbeat-secs",
        "0",
        "--sse-recheck-secs",
        "0",
    ])
    .expect("config");
    assert_eq!((c.max_header_bytes, c.max_headers), (8192, 1));
    assert_eq!(c.max_connections, 1_000_000);
    let one = Duration::from_secs(1);
    assert_eq!(
        (c.jwks_refresh, c.sse_heartbeat, c.sse_recheck),
        (one, one, one)
    );
    assert_eq!(c.jwks_cooldown, Duration::ZERO);
}

#[test]
fn missing_required_and_bad_values() {
    let _env = clean_env();
    let e = Config::from_args(["ama-shim"]).expect_err("nothing given");
    assert_eq!(e.to_string(), "missing --tls-cert (AMA_TLS_CERT)");
    assert!(matches!(
        config(&["--log-format", "xml"]),
        Err(ConfigError::Args(_))
    ));
    let e = config(&["--trusted-proxies", "not-an-ip"]).expect_err("bad proxy");
    assert_eq!(
        e.to_string(),
        "trusted_proxies: `not-an-ip` is not an IP address or CIDR"
    );
    assert!(config(&["--jwt-secret", ""]).is_err());
    assert!(matches!(
        config(&["--config", "/nonexistent/ama-shim.toml"]),
        Err(ConfigError::ReadFile { .. })
    ));
}

#[test]
fn unknown_file_keys_are_refused() {
    let _env = clean_env();
    assert!(toml::from_str::<Options>("unknown_key = 1").is_err());
    // `config` is a flag only; the file keys use `_`, not `-`
    assert!(toml::from_str::<Options>("config = \"x.toml\"").is_err());
    assert!(toml::from_str::<Options>("pool-size = 3").is_err());
    assert!(toml::from_str::<Options>("log_format = \"xml\"").is_err());
    let file = TempFile::new("unknown", "pool_size = 3\nunknown_key = 1\n");
    let e = config(&["--config", file.arg()]).expect_err("unknown key");
    assert!(matches!(e, ConfigError::ParseFile { .. }), "{e}");
    assert!(e.to_string().contains("unknown_key"), "{e}");
}

#[test]
fn jwt_secret_file_is_read_and_trimmed() {
    let _env = clean_env();
    let secret = TempFile::new("secret", "  s3cret-from-file\n");
    let c = config(&["--jwt-secret-file", secret.arg()]).expect("config");
    let got = c.jwt_secret.as_ref().map(|s| s.expose_secret().to_string());
    assert_eq!(got.as_deref(), Some("s3cret-from-file"));
    // the secret itself wins over the file
    let c = config(&["--jwt-secret-file", secret.arg(), "--jwt-secret", "direct"]).expect("config");
    let got = c.jwt_secret.as_ref().map(|s| s.expose_secret().to_string());
    assert_eq!(got.as_deref(), Some("direct"));
    let blank = TempFile::new("blank-secret", " \n");
    let e = config(&["--jwt-secret-file", blank.arg()]).expect_err("blank");
    assert!(matches!(e, ConfigError::EmptyJwtSecret), "{e}");
    let e = config(&["--jwt-secret-file", "/nonexistent/secret"]).expect_err("missing");
    assert!(matches!(e, ConfigError::ReadSecretFile { .. }), "{e}");
}

#[test]
fn debug_hides_secrets() {
    let _env = clean_env();
    let file = TempFile::new("secrets", "jwt_secret = \"file-secret-value\"\n");
    let args = ["--config", file.arg(), "--jwt-secret", "super-secret-value"];
    let o = Options::from_sources(REQUIRED.iter().chain(&args).copied()).expect("options");
    let c = Config::try_from(o.clone()).expect("config");
    for d in [format!("{o:?}"), format!("{c:?}")] {
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.contains("secret-value"), "{d}");
        assert!(d.contains("REDACTED"), "{d}");
    }
    let got = c.jwt_secret.as_ref().map(|s| s.expose_secret().to_string());
    assert_eq!(got.as_deref(), Some("super-secret-value"));
}

#[test]
fn cli_is_consistent() {
    Options::command().debug_assert();
}

#[test]
fn a_transaction_pooler_needs_a_direct_listen_url() {
    let _env = clean_env();
    let e = config(&["--db-pooler", "transaction"]).expect_err("no listen URL");
    assert!(matches!(e, ConfigError::ListenUrlRequired), "{e}");
    let c = config(&[
        "--db-pooler",
        "transaction",
        "--listen-database-url",
        "host=/tmp user=auth password=direct-secret",
    ])
    .expect("config");
    assert_eq!(c.db_pooler, DbPooler::Transaction);
    assert!(!format!("{c:?}").contains("direct-secret"));
    assert!(
        config(&["--db-pooler", "session"]).is_err(),
        "only none | transaction"
    );
}
