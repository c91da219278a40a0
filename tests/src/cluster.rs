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

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// OS user the server runs as when the harness runs as root.
pub const SERVER_OS_USER: &str = "postgres";
/// Database superuser created by initdb.
pub const SUPERUSER: &str = "postgres";

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
/// the unaligned, tuples-only output.
pub fn psql_at(bin: &Path, conninfo: &str, sql: &str) -> Result<String, HarnessError> {
    let out = Command::new(bin)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError(format!("cannot run psql: {e}")))?;
    if !out.status.success() {
        return err(format!(
            "psql: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A command that runs as the server's OS user when we are root.
fn server_command(bindir: &Path, program: &str) -> Result<Command, HarnessError> {
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

fn chown_to_server_user(path: &Path) -> Result<(), HarnessError> {
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
        };
        if throwaway {
            cluster.watchdog = Some(spawn_watchdog(&cluster.bindir, &dir, &data)?);
        }
        // On some systems /tmp is not traversable by the server user; make our directory so.
        chown_to_server_user(&dir)?;
        if !data.join("PG_VERSION").exists() {
            let mut c = server_command(&cluster.bindir, "initdb")?;
            c.arg("-D").arg(&data).args([
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-U",
                SUPERUSER,
            ]);
            run(c, "initdb")?;
        } else {
            cluster.clear_stale_pid()?;
        }
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
        if opts.create_extension {
            cluster.psql("postgres", "CREATE EXTENSION IF NOT EXISTS ama_pg")?;
        }
        Ok(cluster)
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
        let conninfo = format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port);
        psql_at(&self.bindir.join("psql"), &conninfo, sql)
    }

    /// A libpq/tokio-postgres connection string for `user` on database `postgres`.
    pub fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }

    /// A tokio-postgres connection as `user` (its connection task is spawned on the runtime).
    pub async fn connect(&self, user: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(user), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test cluster as {user}: {e}"));
        tokio::spawn(conn);
        client
    }

    /// Environment variables that point libpq tools (psql, pg_prove, pgbench) at this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
            ("PGDATABASE".into(), "postgres".into()),
            ("DATABASE_URL".into(), self.url(SUPERUSER)),
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
    // The server user must be able to reach its data directory.
    let mut perms = std::fs::metadata(&dir)
        .map_err(|e| HarnessError(e.to_string()))?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&dir, perms).map_err(|e| HarnessError(e.to_string()))?;
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
