//! Development credentials: a self-signed TLS certificate for 127.0.0.1/localhost, an HS256
//! secret, and user JWTs minted with it. Used by the run command and the end-to-end tests.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::json;
use std::path::Path;

/// PEM certificate and key for `localhost` and `127.0.0.1` (an end-entity certificate, not a CA).
pub fn tls_cert() -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::KeyPair::generate().expect("key generation");
    let params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// A random 256-bit HS256 secret, hex encoded.
pub fn hs256_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A user JWT signed with `secret`, valid for `ttl_secs`.
pub fn user_jwt(secret: &str, sub: &str, email: &str, ttl_secs: i64) -> String {
    let now = now();
    let claims = json!({
        "sub": sub, "aud": "authenticated", "role": "authenticated", "email": email,
        "iat": now, "exp": now + ttl_secs,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("HS256 key"),
    )
    .expect("HS256 signing")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes `content` to `path` with mode 0600 (secrets) unless it exists; returns the content now
/// there. An existing file is made 0600 too (older runs left some readable by everyone).
pub fn write_once(path: &Path, content: impl FnOnce() -> String) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(existing) = std::fs::read_to_string(path) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        return Ok(existing);
    }
    let c = content();
    crate::cluster::write_secret(path, &c).map_err(|e| std::io::Error::other(e.0))?;
    Ok(c)
}

/// The environment variable that names an existing database for the run command to change.
pub const ADMIN_URL_VAR: &str = "AMA_ADMIN_DATABASE_URL";

/// Where the run command gets its database from.
#[derive(Debug, PartialEq, Eq)]
pub struct DatabaseChoice {
    /// A superuser connection string of an existing database to change, or `None` for the
    /// private cluster in `.ama/pg`.
    pub existing: Option<String>,
    /// One line for each variable that was set but is deliberately ignored.
    pub ignored: Vec<String>,
}

/// Decides which database the run command may change, from the environment (`var` looks a
/// variable up). Only [`ADMIN_URL_VAR`], a name of the project's own, selects an existing
/// database. A generic `DATABASE_URL` (another project's, left in the shell) and the shim's
/// `AMA_DATABASE_URL` (an `ama_authenticator` connection) never do.
pub fn choose_database(var: impl Fn(&str) -> Option<String>) -> DatabaseChoice {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(url) = set(ADMIN_URL_VAR) {
        return DatabaseChoice {
            existing: Some(url),
            ignored: Vec::new(),
        };
    }
    let ignored = ["DATABASE_URL", "AMA_DATABASE_URL"]
        .into_iter()
        .filter(|name| set(name).is_some())
        .map(|name| {
            format!(
                "{name} is set but ignored: ./ama run changes an existing database only through {ADMIN_URL_VAR}; using the private cluster in .ama/pg"
            )
        })
        .collect();
    DatabaseChoice {
        existing: None,
        ignored,
    }
}

/// What a connection URL points at, for telling the user which database is about to change.
#[derive(Debug, PartialEq, Eq)]
pub struct DatabaseTarget {
    pub host: String,
    pub port: String,
    pub dbname: String,
    pub user: String,
}

impl std::fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "database {} on {}:{} as user {}",
            self.dbname, self.host, self.port, self.user
        )
    }
}

/// Reads host, port, database and user (never the password) from a `postgres://` URL, with
/// libpq's defaults for what is left out; `None` when it is not such a URL.
pub fn database_target(url: &str) -> Option<DatabaseTarget> {
    use crate::cluster::percent_decode;
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split(':').next().unwrap_or("");
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
            (h, p.strip_prefix(':').unwrap_or(""))
        }
        None => hostport.rsplit_once(':').unwrap_or((hostport, "")),
    };
    let mut t = DatabaseTarget {
        host: percent_decode(host),
        port: port.to_string(),
        dbname: percent_decode(path),
        user: percent_decode(user),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "host" => t.host = v,
            "port" => t.port = v,
            "dbname" => t.dbname = v,
            "user" => t.user = v,
            _ => {}
        }
    }
    if t.host.is_empty() {
        t.host = "the default unix socket".into();
    }
    if t.port.is_empty() {
        t.port = "5432".into();
    }
    if t.user.is_empty() {
        t.user = "(the OS user's name)".into();
    }
    if t.dbname.is_empty() {
        t.dbname = format!("(named like the user, {})", t.user);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_generic_database_url_never_selects_a_database_to_change() {
        let c = choose_database(env(&[("DATABASE_URL", "postgres://postgres@prod/app")]));
        assert_eq!(c.existing, None);
        assert_eq!(c.ignored.len(), 1);
        assert!(c.ignored[0].starts_with("DATABASE_URL is set but ignored"));
        assert!(c.ignored[0].contains(ADMIN_URL_VAR));
        assert!(!c.ignored[0].contains("prod"), "the value is never echoed");
    }

    #[test]
    fn the_shims_authenticator_url_never_selects_a_database_to_change() {
        let c = choose_database(env(&[(
            "AMA_DATABASE_URL",
            "postgres://ama_authenticator:pw@db/app",
        )]));
        assert_eq!(c.existing, None);
        assert_eq!(c.ignored.len(), 1);
        assert!(c.ignored[0].starts_with("AMA_DATABASE_URL is set but ignored"));
    }

    #[test]
    fn only_the_projects_own_variable_selects_an_existing_database() {
        let c = choose_database(env(&[
            ("DATABASE_URL", "postgres://postgres@other/other"),
            (ADMIN_URL_VAR, "postgres://postgres:s@db:5433/app"),
        ]));
        assert_eq!(
            c.existing.as_deref(),
            Some("postgres://postgres:s@db:5433/app")
        );
        assert!(c.ignored.is_empty());
    }

    #[test]
    fn nothing_set_or_empty_means_the_private_cluster_silently() {
        assert_eq!(
            choose_database(env(&[])),
            DatabaseChoice {
                existing: None,
                ignored: vec![]
            }
        );
        let c = choose_database(env(&[(ADMIN_URL_VAR, " "), ("DATABASE_URL", "")]));
        assert_eq!(c.existing, None);
        assert!(c.ignored.is_empty());
    }

    #[test]
    fn the_target_names_host_port_database_and_user_but_never_the_password() {
        let t = database_target("postgres://postgres:s%40cret@db.example:5433/app").unwrap();
        assert_eq!(
            t,
            DatabaseTarget {
                host: "db.example".into(),
                port: "5433".into(),
                dbname: "app".into(),
                user: "postgres".into()
            }
        );
        assert!(!t.to_string().contains("cret"));
        let t = database_target("postgresql://admin@[::1]/x?port=6000").unwrap();
        assert_eq!((t.host.as_str(), t.port.as_str()), ("::1", "6000"));
        let t = database_target("postgres:///app?host=/var/run/postgresql&user=me").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port.as_str(), t.user.as_str()),
            ("/var/run/postgresql", "5432", "me")
        );
        assert!(database_target("host=db user=postgres").is_none());
    }
}
