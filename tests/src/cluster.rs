//! A PostgreSQL cluster for tests and for the development runner.
//!
//! - Throwaway clusters live in a fresh temporary directory, on a free loopback port, and are
//!   removed when the [`Cluster`] is dropped. A watchdog process (in its own session, so Ctrl-C
//!   does not reach it) stops the server and removes the directory if the owning process dies
//!   without dropping it: a failed, panicking or interrupted test run leaves nothing behind.
//! - Persistent clusters (the run command's) keep their data in a given directory.
//! - When invoked as root, every server program runs as the unprivileged `postgres` OS user,
//!   because PostgreSQL refuses to run as root.
//! - `shared_preload_libraries = 'ama_pg'` is always set: the rate-limit ledger needs it.
//! - Every connection authenticates: `pg_hba.conf` has `scram-sha-256` for TCP and for the unix
//!   socket, never `trust`. The superuser's password is random (256 bits) and lives in
//!   `<dir>/superuser.password` (mode 0600); the socket lives in `<dir>` itself, which is mode
//!   0700 and owned by the server's OS user. A cluster made by an older harness (trust, no
//!   password file) is converted on its next start, before it listens.
//! - Passwords never appear on a command line or in a log: `psql` gets them through
//!   `PGPASSWORD` in its own environment, SQL that carries one goes through its stdin, and tools
//!   run by `ama-harness exec` read them from a 0600 pgpass file (`PGPASSFILE`).

pub mod standby;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// OS user the server runs as when the harness runs as root.
pub const SERVER_OS_USER: &str = "postgres";
/// Database superuser created by initdb.
pub const SUPERUSER: &str = "postgres";
/// The role the shim logs in as; throwaway clusters with the extension give it a password.
pub const AUTHENTICATOR: &str = "ama_authenticator";
/// File in the cluster directory holding the superuser's password (mode 0600).
pub const PASSWORD_FILE: &str = "superuser.password";
/// File in the cluster directory in libpq's pgpass format for the roles with known passwords.
pub const PGPASS_FILE: &str = "pgpass";
/// The server setting that holds the webhook sealing key.
pub const WEBHOOK_KEY_SETTING: &str = "ama.webhook_secret_key";
/// The only authentication method of every `pg_hba.conf` line.
pub const AUTH_METHOD: &str = "scram-sha-256";

/// Errors, each a single line telling what is wrong and how to fix it.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn err<T>(msg: impl Into<String>) -> Result<T, HarnessError> {
    Err(HarnessError(msg.into()))
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep data here (persistent); `None` for a throwaway cluster in a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Port; `None` picks a free loopback port.
    pub port: Option<u16>,
    /// Run `CREATE EXTENSION ama_pg` in database `postgres`.
    pub create_extension: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_dir: None,
            port: None,
            create_extension: true,
            settings: Vec::new(),
        }
    }
}

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    pub data: PathBuf,
    bindir: PathBuf,
    throwaway: bool,
    watchdog: Option<Child>,
    /// Passwords of the roles this harness set, by role name.
    passwords: Mutex<BTreeMap<String, String>>,
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The directory of the PostgreSQL server programs (`AMA_PG_CONFIG` or Debian's PostgreSQL 15).
pub fn bindir() -> Result<PathBuf, HarnessError> {
    let pg_config = std::env::var("AMA_PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(&pg_config).arg("--bindir").output().map_err(|e| {
        HarnessError(format!(
            "cannot run {pg_config} ({e}); install PostgreSQL 15 (apt-get install postgresql-15 postgresql-server-dev-15) or set AMA_PG_CONFIG"
        ))
    })?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs SQL through the `psql` at `bin` against `conninfo`, failing on the first error; returns
/// the unaligned, tuples-only output. A password in a URL `conninfo` is passed to psql through
/// `PGPASSWORD` in its environment, never on its command line (which every local user can read).
pub fn psql_at(bin: &Path, conninfo: &str, sql: &str) -> Result<String, HarnessError> {
    psql_run(bin, conninfo, sql, false)
}

/// Like [`psql_at`], but the SQL goes through psql's stdin instead of its command line: for
/// statements that carry a secret (`ALTER ROLE ... PASSWORD`). Each statement runs on its own.
pub fn psql_at_stdin(bin: &Path, conninfo: &str, sql: &str) -> Result<String, HarnessError> {
    psql_run(bin, conninfo, sql, true)
}

fn psql_run(bin: &Path, conninfo: &str, sql: &str, stdin: bool) -> Result<String, HarnessError> {
    let (conninfo, password) = split_password(conninfo);
    let mut cmd = Command::new(bin);
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(&conninfo);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    if stdin {
        cmd.args(["-f", "-"]).stdin(Stdio::piped());
    } else {
        cmd.arg("-c").arg(sql).stdin(Stdio::null());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError(format!("cannot run psql: {e}")))?;
    if stdin {
        let mut input = child.stdin.take().expect("piped stdin");
        input
            .write_all(sql.as_bytes())
            .map_err(|e| HarnessError(format!("cannot write to psql: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HarnessError(format!("cannot run psql: {e}")))?;
    if !out.status.success() {
        return err(format!(
            "psql: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Splits the password out of a `postgres://user:password@host/...` URL: the URL without it,
/// and the password percent-decoded. Other connection strings come back unchanged.
pub fn split_password(conninfo: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = conninfo.split_once("://") else {
        return (conninfo.to_string(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, hosts)) = authority.rsplit_once('@') else {
        return (conninfo.to_string(), None);
    };
    match userinfo.split_once(':') {
        Some((user, password)) => (
            format!("{scheme}://{user}@{hosts}{tail}"),
            Some(percent_decode(password)),
        ),
        None => (conninfo.to_string(), None),
    }
}

/// Decodes `%XX` escapes (as in URLs); anything malformed is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random password: 256 bits from the OS, hex encoded.
pub fn new_password() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Writes `content` to `path`, created with mode 0600 (and forced to 0600 if it existed).
pub fn write_secret(path: &Path, content: &str) -> Result<(), HarnessError> {
    let fail = |e: std::io::Error| HarnessError(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    f.write_all(content.as_bytes()).map_err(fail)
}

/// Sets the mode of `path`.
fn set_mode(path: &Path, mode: u32) -> Result<(), HarnessError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| HarnessError(format!("cannot chmod {}: {e}", path.display())))
}

/// A SQL string literal.
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier.
fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The `pg_hba.conf` of every cluster the harness starts: a password for everything.
pub fn hba_conf() -> String {
    format!(
        "# Written by ama-harness: every connection authenticates with a password ({AUTH_METHOD}).\n\
         # TYPE  DATABASE        USER            ADDRESS                 METHOD\n\
         local   all             all                                     {AUTH_METHOD}\n\
         host    all             all             127.0.0.1/32            {AUTH_METHOD}\n\
         host    all             all             ::1/128                 {AUTH_METHOD}\n\
         local   replication     all                                     {AUTH_METHOD}\n\
         host    replication     all             127.0.0.1/32            {AUTH_METHOD}\n\
         host    replication     all             ::1/128                 {AUTH_METHOD}\n"
    )
}

/// Whether a `pg_hba.conf` text has a `trust` line (comments ignored).
pub fn hba_has_trust(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .any(|l| {
            l.split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("trust"))
        })
}

/// A command that runs as the server's OS user when we are root.
pub(crate) fn server_command(bindir: &Path, program: &str) -> Result<Command, HarnessError> {
    let path = bindir.join(program);
    if is_root() {
        if Command::new("id")
            .arg("-u")
            .arg(SERVER_OS_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return err(format!(
                "running as root needs the unprivileged OS user '{SERVER_OS_USER}' (apt-get install postgresql-15 creates it)"
            ));
        }
        let mut c = Command::new("runuser");
        c.arg("-u").arg(SERVER_OS_USER).arg("--").arg(path);
        Ok(c)
    } else {
        Ok(Command::new(path))
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), HarnessError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError(format!("{what}: cannot start ({e})")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        return err(format!("{what} failed: {last}"));
    }
    Ok(())
}

pub(crate) fn chown_to_server_user(path: &Path) -> Result<(), HarnessError> {
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("-R").arg(format!("{SERVER_OS_USER}:")).arg(path);
                c
            },
            "chown",
        )?;
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError(format!("cannot bind a loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError(e.to_string()))
}

/// Whether something already listens on 127.0.0.1:port.
pub fn port_in_use(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

impl Cluster {
    /// Starts a cluster (creating it first when its data directory is empty).
    pub fn start(opts: Options) -> Result<Cluster, HarnessError> {
        let bindir = bindir()?;
        let throwaway = opts.data_dir.is_none();
        let dir = match &opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| HarnessError(format!("cannot create {}: {e}", d.display())))?;
                d.canonicalize().map_err(|e| HarnessError(e.to_string()))?
            }
            None => make_temp_dir()?,
        };
        let data = dir.join("data");
        let mut cluster = Cluster {
            port: 0,
            dir: dir.clone(),
            data: data.clone(),
            bindir,
            throwaway,
            watchdog: None,
            passwords: Mutex::new(BTreeMap::new()),
        };
        if throwaway {
            cluster.watchdog = Some(spawn_watchdog(&cluster.bindir, &dir, &data)?);
        }
        // The directory holds the socket, the log and the password files: only the server's OS
        // user (and root) may enter it.
        set_mode(&dir, 0o700)?;
        let password_file = dir.join(PASSWORD_FILE);
        let password = match std::fs::read_to_string(&password_file) {
            Ok(p) if !p.trim().is_empty() => {
                set_mode(&password_file, 0o600)?;
                Some(p.trim().to_string())
            }
            _ => None,
        };
        let fresh = !data.join("PG_VERSION").exists();
        let password = match password {
            Some(p) => p,
            None => {
                let p = new_password();
                if !fresh {
                    // A cluster from before passwords: give the superuser one while it is down,
                    // then keep it (the file only ever holds a password the role really has).
                    cluster.clear_stale_pid()?;
                    chown_to_server_user(&dir)?;
                    cluster.set_password_offline(&p)?;
                }
                write_secret(&password_file, &p)?;
                p
            }
        };
        // initdb (as the server user) reads the password file; the server writes in the directory.
        chown_to_server_user(&dir)?;
        if fresh {
            let mut c = server_command(&cluster.bindir, "initdb")?;
            c.arg("-D")
                .arg(&data)
                .arg(format!("--auth-local={AUTH_METHOD}"))
                .arg(format!("--auth-host={AUTH_METHOD}"))
                .arg(format!("--pwfile={}", password_file.display()))
                .args(["-E", "UTF8", "--locale=C.UTF-8", "-U", SUPERUSER]);
            run(c, "initdb")?;
            // initdb's file is already scram-only, but its comments talk about `trust`: ours
            // does not, so `grep trust pg_hba.conf` finds nothing.
            cluster.write_hba()?;
        } else {
            cluster.clear_stale_pid()?;
            cluster.secure_hba()?;
        }
        cluster.ensure_webhook_key()?;
        cluster
            .passwords
            .lock()
            .expect("passwords")
            .insert(SUPERUSER.to_string(), password);
        let mut last = None;
        for _ in 0..5 {
            let port = match opts.port {
                Some(p) => {
                    if port_in_use(p) {
                        return err(format!(
                            "port {p} on 127.0.0.1 is already in use; stop what listens there or choose another port"
                        ));
                    }
                    p
                }
                None => free_port()?,
            };
            match cluster.pg_ctl_start(port, &opts.settings) {
                Ok(()) => {
                    cluster.port = port;
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    if opts.port.is_some() {
                        break;
                    }
                }
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        cluster.write_pgpass()?;
        if opts.create_extension {
            cluster.psql("postgres", "CREATE EXTENSION IF NOT EXISTS ama_pg")?;
            if throwaway {
                cluster.set_password(AUTHENTICATOR)?;
            }
        }
        Ok(cluster)
    }

    /// Gives the cluster a webhook sealing key (`ama.webhook_secret_key`, 64 hex characters of fresh
    /// randomness) in its `postgresql.conf` unless it has one: a setting only the server's files
    /// hold, never a command line, and not in any dump. A `-c ama.webhook_secret_key=` setting
    /// overrides it (the tests of a server without a key).
    fn ensure_webhook_key(&self) -> Result<(), HarnessError> {
        let path = self.data.join("postgresql.conf");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError(format!("cannot read {}: {e}", path.display())))?;
        if text
            .lines()
            .any(|l| l.trim_start().starts_with(WEBHOOK_KEY_SETTING))
        {
            return Ok(());
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| HarnessError(format!("cannot write {}: {e}", path.display())))?;
        writeln!(
            f,
            "\n# ama_pg: the key that seals webhook signing secrets (keep it secret; losing it voids every secret)\n{WEBHOOK_KEY_SETTING} = '{}'",
            hex::encode(key)
        )
        .map_err(|e| HarnessError(format!("cannot write {}: {e}", path.display())))
    }

    /// Sets the superuser's password in single-user mode (the server must be down): converts a
    /// cluster made without passwords before it ever listens again.
    fn set_password_offline(&self, password: &str) -> Result<(), HarnessError> {
        let mut c = server_command(&self.bindir, "postgres")?;
        c.arg("--single")
            .arg("-D")
            .arg(&self.data)
            .arg("postgres")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| HarnessError(format!("postgres --single: cannot start ({e})")))?;
        let sql = format!(
            "ALTER ROLE {} PASSWORD {}\n",
            sql_ident(SUPERUSER),
            sql_literal(password)
        );
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(sql.as_bytes())
            .map_err(|e| HarnessError(format!("postgres --single: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| HarnessError(format!("postgres --single: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || text.contains("ERROR") || text.contains("FATAL") {
            let last = text
                .lines()
                .find(|l| l.contains("ERROR") || l.contains("FATAL"))
                .unwrap_or("")
                .trim()
                .to_string();
            return err(format!(
                "cannot set the superuser password of {} in single-user mode: {last}",
                self.data.display()
            ));
        }
        Ok(())
    }

    /// Replaces a `pg_hba.conf` that has a `trust` line with [`hba_conf`] (other edits stay).
    fn secure_hba(&self) -> Result<(), HarnessError> {
        let path = self.data.join("pg_hba.conf");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError(format!("cannot read {}: {e}", path.display())))?;
        if hba_has_trust(&text) {
            self.write_hba()?;
        }
        Ok(())
    }

    /// Writes [`hba_conf`] over `pg_hba.conf` (keeping its owner and mode).
    fn write_hba(&self) -> Result<(), HarnessError> {
        let path = self.data.join("pg_hba.conf");
        std::fs::write(&path, hba_conf())
            .map_err(|e| HarnessError(format!("cannot write {}: {e}", path.display())))
    }

    /// Gives `role` a new random password (through psql's stdin, as the superuser), remembers it
    /// for [`Cluster::url`], [`Cluster::connect`] and the pgpass file, and returns it.
    pub fn set_password(&self, role: &str) -> Result<String, HarnessError> {
        let password = new_password();
        self.psql_stdin(
            "postgres",
            &format!(
                "ALTER ROLE {} PASSWORD {}",
                sql_ident(role),
                sql_literal(&password)
            ),
        )?;
        self.passwords
            .lock()
            .expect("passwords")
            .insert(role.to_string(), password.clone());
        self.write_pgpass()?;
        Ok(password)
    }

    /// The password the harness set for `role`, if any.
    pub fn password(&self, role: &str) -> Option<String> {
        self.passwords.lock().expect("passwords").get(role).cloned()
    }

    /// The pgpass file (mode 0600) with every role whose password the harness set.
    pub fn pgpass_path(&self) -> PathBuf {
        self.dir.join(PGPASS_FILE)
    }

    fn write_pgpass(&self) -> Result<(), HarnessError> {
        let mut text = String::new();
        for (role, password) in self.passwords.lock().expect("passwords").iter() {
            let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            for host in ["127.0.0.1", "localhost"] {
                text.push_str(&format!(
                    "{host}:{}:*:{}:{}\n",
                    self.port,
                    esc(role),
                    esc(password)
                ));
            }
        }
        write_secret(&self.pgpass_path(), &text)
    }

    fn clear_stale_pid(&self) -> Result<(), HarnessError> {
        let pidfile = self.data.join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pidfile) else {
            return Ok(());
        };
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
            return err(format!(
                "a PostgreSQL server (pid {pid}) is already running on {}; stop it with: pg_ctl -D {} stop",
                self.data.display(),
                self.data.display()
            ));
        }
        // A killed run left its pid file behind; the server is gone, so the file is stale.
        std::fs::remove_file(&pidfile)
            .map_err(|e| HarnessError(format!("cannot remove stale {}: {e}", pidfile.display())))
    }

    fn pg_ctl_start(&self, port: u16, settings: &[(String, String)]) -> Result<(), HarnessError> {
        let mut opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c shared_preload_libraries=ama_pg -c max_connections=200",
            self.dir.display()
        );
        if self.throwaway {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        for (k, v) in settings {
            opts.push_str(&format!(" -c {k}={v}"));
        }
        let log = self.dir.join("server.log");
        let mut c = server_command(&self.bindir, "pg_ctl")?;
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(opts)
            .args(["-w", "-t", "30", "start"]);
        run(c, "pg_ctl start").map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let last = tail
                .lines()
                .rev()
                .find(|l| l.contains("FATAL") || l.contains("ERROR"))
                .unwrap_or("")
                .to_string();
            HarnessError(format!("{e} {last}"))
        })
    }

    /// Runs SQL through psql as the superuser, failing on the first error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        psql_at(&self.bindir.join("psql"), &self.url_db(SUPERUSER, db), sql)
    }

    /// Like [`Cluster::psql`], with the SQL sent through psql's stdin (for secrets).
    pub fn psql_stdin(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        psql_at_stdin(&self.bindir.join("psql"), &self.url_db(SUPERUSER, db), sql)
    }

    /// A libpq/tokio-postgres connection string for `user` on database `postgres`, with the
    /// password the harness set for `user` (the superuser's, the authenticator's, or one from
    /// [`Cluster::set_password`]). Do not print it; pass it through an environment variable, not
    /// a command line.
    pub fn url(&self, user: &str) -> String {
        self.url_db(user, "postgres")
    }

    fn url_db(&self, user: &str, db: &str) -> String {
        match self.password(user) {
            Some(pw) => format!("postgres://{user}:{pw}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://{user}@127.0.0.1:{}/{db}", self.port),
        }
    }

    /// A tokio-postgres connection as `user` (its connection task is spawned on the runtime).
    pub async fn connect(&self, user: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(user), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test cluster as {user}: {e}"));
        tokio::spawn(conn);
        client
    }

    /// Environment variables that point libpq tools (psql, pg_prove, pgbench) at this cluster:
    /// the passwords come from `PGPASSFILE` (mode 0600); `DATABASE_URL` carries none. A
    /// `PGPASSWORD` of the caller would take precedence over the file: remove it from the child.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
            ("PGDATABASE".into(), "postgres".into()),
            (
                "PGPASSFILE".into(),
                self.pgpass_path().to_string_lossy().into_owned(),
            ),
            (
                "DATABASE_URL".into(),
                format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port),
            ),
        ]
    }

    /// Stops the server (fast shutdown), e.g. to test a database restart.
    pub fn stop(&self) -> Result<(), HarnessError> {
        let mut c = server_command(&self.bindir, "pg_ctl")?;
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        run(c, "pg_ctl stop")
    }

    /// Starts a stopped server again on the same port.
    pub fn restart_stopped(&self) -> Result<(), HarnessError> {
        self.pg_ctl_start(self.port, &[])
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(mut w) = self.watchdog.take() {
            // Closing the watchdog's stdin makes it remove the directory and exit.
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}

fn make_temp_dir() -> Result<PathBuf, HarnessError> {
    let base = std::env::var("AMA_TMPDIR").unwrap_or_else(|_| "/tmp".into());
    let mut template = format!("{base}/ama-pg-XXXXXX\0").into_bytes();
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr() as *mut libc::c_char) };
    if p.is_null() {
        return err(format!("cannot create a temporary directory under {base}"));
    }
    template.pop();
    let dir = PathBuf::from(String::from_utf8_lossy(&template).into_owned());
    // mkdtemp made it 0700; when we are root it is handed to the server's OS user.
    Ok(dir)
}

/// Starts the watchdog: it waits for its stdin to close (our exit, however it happens), then
/// stops the server immediately and removes the directory.
fn spawn_watchdog(bindir: &Path, dir: &Path, data: &Path) -> Result<Child, HarnessError> {
    let pg_ctl = bindir.join("pg_ctl");
    let stop = if is_root() {
        format!(
            "runuser -u {SERVER_OS_USER} -- '{}' -D '{}' -m immediate -w stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' -m immediate -w stop",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "trap '' INT TERM HUP; cat >/dev/null; if [ -f '{data}/postmaster.pid' ]; then {stop} >/dev/null 2>&1; fi; rm -rf '{dir}'",
        data = data.display(),
        dir = dir.display()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError(format!("cannot start the cleanup watchdog: {e}")))?;
    // Keep the pipe open; write nothing.
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    Ok(child)
}

/// Waits until `f` returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        assert_eq!(
            split_password("postgres://postgres:s%40c%3Aret@127.0.0.1:5432/db?sslmode=disable"),
            (
                "postgres://postgres@127.0.0.1:5432/db?sslmode=disable".to_string(),
                Some("s@c:ret".to_string())
            )
        );
        for unchanged in [
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres:///db?host=/run/postgresql",
            "host=127.0.0.1 user=postgres",
        ] {
            assert_eq!(split_password(unchanged), (unchanged.to_string(), None));
        }
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn trust_is_found_outside_comments_only() {
        assert!(!hba_has_trust(&hba_conf()));
        assert!(hba_has_trust("host all all 127.0.0.1/32 trust\n"));
        assert!(hba_has_trust("local all all TRUST # old\n"));
        assert!(!hba_has_trust(
            "# local all all trust\nlocal all all scram-sha-256\n"
        ));
    }

    #[test]
    fn passwords_are_long_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
