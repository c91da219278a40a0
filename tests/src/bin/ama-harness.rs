//! `ama-harness`: the throwaway-cluster harness and the development runner.
//!
//! ```text
//! ama-harness exec [--no-extension] -- CMD [ARGS...]   run CMD against a throwaway cluster
//! ama-harness dev                                       run the whole system (the README's run command)
//! ```
//!
//! `exec` exports PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE (a 0600 pgpass file with the
//! passwords of `postgres` and `ama_authenticator`) and DATABASE_URL (without a password) to CMD,
//! and removes the cluster afterwards whatever happens to CMD. `dev` keeps its data in `.ama/`
//! (git-ignored), or changes the existing database named by `AMA_ADMIN_DATABASE_URL` (never by a
//! generic `DATABASE_URL`), then starts the shim on https://127.0.0.1:8443.

use ama_tests::cluster::{self, Cluster, Options};
use ama_tests::{dev, fail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEV_USER: &str = "00000000-0000-4000-8000-00000000a001";
const DEV_AGENT: &str = "agent:00000000-0000-4000-8000-00000000b001";
const DEV_PG_PORT: u16 = 54329;
const SHIM_ADDR: &str = "127.0.0.1:8443";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("exec") => exec(&args[1..]),
        Some("dev") => {
            if let Err(e) = run_dev() {
                fail(e)
            }
        }
        _ => {
            eprintln!(
                "usage: ama-harness exec [--no-extension] -- CMD [ARGS...]\n       ama-harness dev"
            );
            std::process::exit(2)
        }
    }
}

fn exec(args: &[String]) {
    let mut create_extension = true;
    let mut rest = args;
    while let Some(first) = rest.first() {
        match first.as_str() {
            "--no-extension" => create_extension = false,
            "--" => {
                rest = &rest[1..];
                break;
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    let Some((cmd, cmd_args)) = rest.split_first() else {
        fail("exec needs a command after --")
    };
    let cluster = Cluster::start(Options {
        create_extension,
        ..Options::default()
    })
    .unwrap_or_else(|e| fail(e));
    let status = Command::new(cmd)
        .args(cmd_args)
        .env_remove("PGPASSWORD")
        .envs(cluster.env())
        .status();
    drop(cluster);
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => fail(format!("cannot run {cmd}: {e}")),
    }
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    cluster::psql_at(Path::new("psql"), url, sql).map_err(|e| e.0)
}

/// For SQL that carries a secret: sent through psql's stdin, not its command line.
fn psql_url_stdin(url: &str, sql: &str) -> Result<String, String> {
    cluster::psql_at_stdin(Path::new("psql"), url, sql).map_err(|e| e.0)
}

/// Runs the whole system; returns an error line after stopping what it started.
fn run_dev() -> Result<(), String> {
    let root = PathBuf::from(std::env::var("AMA_HOME").unwrap_or_else(|_| ".ama".into()));
    std::fs::create_dir_all(root.join("tls"))
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    if cluster::port_in_use(8443) {
        return Err("port 8443 on 127.0.0.1 is already in use; stop the other ama-shim (or whatever listens there) and run again".into());
    }

    // Database: the existing one named by AMA_ADMIN_DATABASE_URL, or the private cluster in
    // .ama/pg. A generic DATABASE_URL is never a reason to change a database.
    let choice = dev::choose_database(|name| std::env::var(name).ok());
    for line in &choice.ignored {
        eprintln!("ama-harness: {line}");
    }
    let (admin_url, cluster) = match choice.existing {
        Some(url) => {
            let target = dev::database_target(&url).ok_or_else(|| {
                format!(
                    "{} must look like postgres://user[:password]@host:port/db",
                    dev::ADMIN_URL_VAR
                )
            })?;
            println!(
                "ama-harness: about to change the existing {target} ({}): CREATE EXTENSION ama_pg, ama_authenticator's password, a development user and agent token",
                dev::ADMIN_URL_VAR
            );
            psql_url(&url, "CREATE EXTENSION IF NOT EXISTS ama_pg").map_err(|e| {
                format!("cannot install ama_pg through {}: {e} (the server needs shared_preload_libraries = 'ama_pg' and the extension files installed)", dev::ADMIN_URL_VAR)
            })?;
            // the harness writes the webhook key into its own clusters' postgresql.conf; an
            // existing server needs one from its DBA (README, Webhooks)
            let no_key = psql_url(
                &url,
                "SELECT coalesce(current_setting('ama.webhook_secret_key', true), '') = ''",
            )
            .is_ok_and(|o| o.trim() == "t");
            if no_key {
                eprintln!("ama-harness: note: ama.webhook_secret_key is not set on that server, so webhook registration answers 503; add 64 hex characters to its postgresql.conf (README, Webhooks)");
            }
            (url, None)
        }
        None => {
            let c = Cluster::start(Options {
                data_dir: Some(root.join("pg")),
                port: Some(DEV_PG_PORT),
                ..Options::default()
            })
            .map_err(|e| e.to_string())?;
            (c.url(cluster::SUPERUSER), Some(c))
        }
    };
    let password = dev::write_once(&root.join("authenticator.password"), dev::hs256_secret)
        .map_err(|e| format!("cannot write the authenticator password: {e}"))?;
    psql_url_stdin(
        &admin_url,
        &format!(
            "ALTER ROLE ama_authenticator LOGIN PASSWORD {}",
            sql_quote(password.trim())
        ),
    )
    .map_err(|e| format!("cannot configure ama_authenticator: {e}"))?;
    let shim_url = authenticator_url(&admin_url, password.trim())?;

    // Development TLS certificate and JWT secret, made once.
    let (cert_path, key_path) = (root.join("tls/cert.pem"), root.join("tls/key.pem"));
    if !cert_path.exists() || !key_path.exists() {
        let (cert, key) = dev::tls_cert();
        let _ = std::fs::remove_file(&cert_path);
        let _ = std::fs::remove_file(&key_path);
        dev::write_once(&cert_path, || cert).map_err(|e| e.to_string())?;
        dev::write_once(&key_path, || key).map_err(|e| e.to_string())?;
    }
    let secret_path = root.join("jwt_secret");
    let secret = dev::write_once(&secret_path, dev::hs256_secret).map_err(|e| e.to_string())?;

    // A starter user with an agent, and a fresh agent token for the curl lines.
    let users = format!(
        "INSERT INTO ama.users (user_id, email, display_name, plan) VALUES ('{DEV_USER}', 'dev@example.com', 'Dev User', 'starter') ON CONFLICT (user_id) DO NOTHING;
         INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES ('user:{DEV_USER}', 'user', '{DEV_USER}', 'Dev User') ON CONFLICT DO NOTHING"
    );
    psql_url(&admin_url, &users).map_err(|e| format!("cannot create the development user: {e}"))?;
    // One implicit transaction: act as the dev user, then issue; psql prints the last result only.
    let issue = format!(
        "SELECT ama.impersonate('user:{DEV_USER}'); SET LOCAL ROLE authenticated;
         SELECT raw_token FROM ama.issue_agent_token('{DEV_AGENT}', 'Dev Agent')"
    );
    let agent_token = psql_url(&admin_url, &issue)
        .map_err(|e| format!("cannot issue the development agent token: {e}"))?
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let jwt = dev::user_jwt(secret.trim(), DEV_USER, "dev@example.com", 12 * 3600);

    // The shim.
    let shim_bin =
        std::env::var("AMA_SHIM_BIN").unwrap_or_else(|_| "target/release/ama-shim".into());
    if !Path::new(&shim_bin).exists() {
        return Err(format!(
            "{shim_bin} not found; build it with: cargo build --release -p ama-shim"
        ));
    }
    let mut shim = Command::new(&shim_bin)
        .args(["--listen", SHIM_ADDR])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .arg("--jwt-secret-file")
        .arg(&secret_path)
        .env("AMA_DATABASE_URL", &shim_url)
        .spawn()
        .map_err(|e| format!("cannot start {shim_bin}: {e}"))?;
    if !cluster::wait_until(Duration::from_secs(15), || cluster::port_in_use(8443)) {
        let _ = shim.kill();
        return Err(
            "ama-shim did not start listening on 127.0.0.1:8443 within 15 s; see its log above"
                .into(),
        );
    }

    let cacert = cert_path.display();
    println!(
        "\nama_pg is running.\n\
         \n  shim:      https://{SHIM_ADDR}   (TLS; certificate {cacert})\
         \n  database:  {}\
         \n\nTry it:\n\
         \n  curl --cacert {cacert} https://{SHIM_ADDR}/health\
         \n  curl --cacert {cacert} -H 'Authorization: Bearer {jwt}' https://{SHIM_ADDR}/api/v1/chat/threads\
         \n  curl --cacert {cacert} -H 'Authorization: Bearer {agent_token}' -H 'Content-Type: application/json' \\\
         \n       -d '{{\"target_user_ids\":[\"{DEV_USER}\"],\"initial_message\":\"hello from the dev agent\"}}' https://{SHIM_ADDR}/api/v1/chat/threads\
         \n\n  user JWT (12 h):   {jwt}\
         \n  agent token:       {agent_token}\
         \n\nPress Ctrl-C to stop.\n",
        redact_url(&admin_url)
    );

    wait_for_signal();
    eprintln!("stopping ...");
    unsafe { libc::kill(shim.id() as i32, libc::SIGTERM) };
    let _ = shim.wait();
    drop(cluster);
    Ok(())
}

fn authenticator_url(admin_url: &str, password: &str) -> Result<String, String> {
    // postgres://user[:pw]@host... -> postgres://ama_authenticator:pw@host...
    match admin_url
        .split_once("://")
        .and_then(|(scheme, rest)| rest.split_once('@').map(|(_, host)| (scheme, host)))
    {
        Some((scheme, host)) => Ok(format!("{scheme}://ama_authenticator:{password}@{host}")),
        None => Err(format!(
            "{} must look like postgres://user[:password]@host:port/db",
            dev::ADMIN_URL_VAR
        )),
    }
}

fn redact_url(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(s, rest)| rest.split_once('@').map(|(cred, host)| (s, cred, host)))
    {
        Some((s, cred, host)) => format!("{s}://{}@{host}", cred.split(':').next().unwrap_or("")),
        None => url.to_string(),
    }
}

fn wait_for_signal() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
