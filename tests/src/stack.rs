//! A whole running system for end-to-end tests: a throwaway cluster, an internal API key, and
//! `ama-shim` started as a subprocess on a free port with a fresh certificate and HS256 secret.
//! The shim's logs are captured to a file so tests can check that no secret ever appears there.

use crate::client::Client;
use crate::cluster::{self, Cluster, Options};
use crate::dev;
use crate::pooler::Pgbouncer;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Stack {
    pub cluster: Cluster,
    pub client: Client,
    pub cert_pem: String,
    pub secret: String,
    pub internal_key: String,
    pub port: u16,
    pub log_path: PathBuf,
    shim: Option<Child>,
    /// pgbouncer in transaction mode between the shim and the cluster, when started with
    /// [`Stack::start_behind_pooler`] or with `AMA_E2E_POOLER=transaction`.
    pub pooler: Option<Pgbouncer>,
}

/// The environment switch that runs every [`Stack::start`] behind pgbouncer:
/// `AMA_E2E_POOLER=transaction` (`./ama test` runs the end-to-end suite a second time with it).
/// Unset, empty or `none`: direct.
pub const POOLER_ENV: &str = "AMA_E2E_POOLER";

/// Whether [`POOLER_ENV`] asks for pgbouncer in transaction mode; any other value than the
/// documented ones panics, so a typo cannot quietly run the suite direct.
pub fn pooler_from_env() -> bool {
    match std::env::var(POOLER_ENV).as_deref() {
        Err(_) | Ok("") | Ok("none") => false,
        Ok("transaction") => true,
        Ok(other) => panic!("{POOLER_ENV}={other}: expected transaction, none or nothing"),
    }
}

impl Stack {
    /// Starts the cluster and the shim; `extra` are additional shim flags. With
    /// `AMA_E2E_POOLER=transaction` ([`POOLER_ENV`]) this is [`Stack::start_behind_pooler`].
    pub fn start(extra: &[&str]) -> Stack {
        Self::start_with(extra, pooler_from_env())
    }

    /// Like [`Stack::start`], with a real pgbouncer in transaction mode between the shim and the
    /// cluster (`--db-pooler transaction`); the LISTEN connection goes direct.
    pub fn start_behind_pooler(extra: &[&str]) -> Stack {
        Self::start_with(extra, true)
    }

    fn start_with(extra: &[&str], behind_pooler: bool) -> Stack {
        let cluster = crate::fixtures::start_cluster(Options::default());
        let pooler =
            behind_pooler.then(|| Pgbouncer::start(&cluster).unwrap_or_else(|e| panic!("{e}")));
        let internal_key = cluster
            .psql(
                "postgres",
                "SELECT raw_key FROM ama.create_internal_key('e2e')",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let (cert_pem, key_pem) = dev::tls_cert();
        let secret = dev::hs256_secret();
        let dir = cluster.dir.join("shim");
        std::fs::create_dir_all(&dir).expect("shim dir");
        let (cert, key, secret_file) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("jwt_secret"),
        );
        std::fs::write(&cert, &cert_pem).expect("cert");
        cluster::write_secret(&key, &key_pem).expect("key");
        cluster::write_secret(&secret_file, &secret).expect("secret");
        let port = cluster::free_port().expect("port");
        let log_path = dir.join("shim.log");
        let shim = spawn_shim(&cluster, pooler.as_ref(), &dir, port, &log_path, extra);
        let ok = cluster::wait_until(Duration::from_secs(20), || cluster::port_in_use(port));
        let client = Client::new(&format!("127.0.0.1:{port}"), &cert_pem);
        let stack = Stack {
            cluster,
            client,
            cert_pem,
            secret,
            internal_key,
            port,
            log_path,
            shim: Some(shim),
            pooler,
        };
        assert!(ok, "ama-shim did not listen within 20 s:\n{}", stack.logs());
        stack
    }

    /// A second shim on the same database (same certificate, secret and pooler), on its own
    /// port; it stops when the returned value drops.
    pub fn another_shim(&self, extra: &[&str]) -> OtherShim {
        let dir = self.cluster.dir.join("shim");
        let port = cluster::free_port().expect("port");
        let log_path = dir.join(format!("shim-{port}.log"));
        let child = spawn_shim(
            &self.cluster,
            self.pooler.as_ref(),
            &dir,
            port,
            &log_path,
            extra,
        );
        let mut other = OtherShim {
            client: Client::new(&format!("127.0.0.1:{port}"), &self.cert_pem),
            child,
        };
        if !cluster::wait_until(Duration::from_secs(20), || cluster::port_in_use(port)) {
            let _ = other.child.kill();
            panic!(
                "the second ama-shim did not listen within 20 s:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        other
    }

    /// A user JWT for `sub`, valid for an hour.
    pub fn jwt(&self, sub: &str) -> String {
        dev::user_jwt(&self.secret, sub, &format!("{sub}@example.com"), 3600)
    }

    /// Everything the shim has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Creates or updates a user through the internal endpoint.
    pub async fn put_user(&self, user_id: &str, plan: &str) -> crate::client::Response {
        let body = serde_json::json!({"email": format!("{user_id}@example.com"), "plan": plan});
        let bytes = serde_json::to_vec(&body).expect("json");
        self.client
            .send(
                "PUT",
                &format!("/internal/v1/users/{user_id}"),
                &[
                    ("x-internal-api-key", self.internal_key.as_str()),
                    ("content-type", "application/json"),
                ],
                Some(&bytes),
            )
            .await
            .expect("PUT user")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut shim) = self.shim.take() {
            unsafe { libc::kill(shim.id() as i32, libc::SIGTERM) };
            if !cluster::wait_until(Duration::from_secs(10), || {
                matches!(shim.try_wait(), Ok(Some(_)))
            }) {
                let _ = shim.kill();
            }
            let _ = shim.wait();
        }
        if let Some(p) = self.pooler.take() {
            // the cluster directory (and the log in it) goes with the cluster: a failing test
            // shows what pgbouncer saw
            if std::thread::panicking() {
                let log = std::fs::read_to_string(p.dir.join("pgbouncer.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("pgbouncer.log (last {} lines):", tail.len());
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
            // before the cluster: pgbouncer stops while its directory still exists
            drop(p);
        }
    }
}

/// Starts `ama-shim` on `port` against the stack's cluster (through `pooler` when given), with
/// the certificate, key and secret in `dir`; its output goes to `log_path`.
fn spawn_shim(
    cluster: &Cluster,
    pooler: Option<&Pgbouncer>,
    dir: &std::path::Path,
    port: u16,
    log_path: &std::path::Path,
    extra: &[&str],
) -> Child {
    let (cert, key, secret_file) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("jwt_secret"),
    );
    let log = std::fs::File::create(log_path).expect("log file");
    let bin = std::env::var("AMA_SHIM_BIN").unwrap_or_else(|_| {
        let root = env!("CARGO_MANIFEST_DIR");
        format!("{root}/../target/debug/ama-shim")
    });
    let mut shim = Command::new(&bin);
    shim.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--jwt-secret-file")
        .arg(&secret_file)
        // Through the environment: the URL carries the authenticator's password.
        .env("AMA_DATABASE_URL", cluster.url(cluster::AUTHENTICATOR))
        .args(["--log-level", "debug"])
        .args(extra);
    if let Some(p) = pooler {
        shim.env("AMA_DATABASE_URL", p.url(cluster))
            .env(
                "AMA_LISTEN_DATABASE_URL",
                cluster.url(cluster::AUTHENTICATOR),
            )
            .args(["--db-pooler", "transaction"]);
    }
    shim.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}); build it with cargo build -p ama-shim")
        })
}

/// Another shim process of a [`Stack`], with a client for it.
pub struct OtherShim {
    pub client: Client,
    child: Child,
}

impl Drop for OtherShim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
