//! A real pgbouncer (Debian's, 1.18) in transaction mode in front of a throwaway cluster, for the
//! end-to-end tests that run the shim behind a transaction pooler.

use crate::cluster::{self, Cluster, HarnessError, AUTHENTICATOR};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// Where Debian installs pgbouncer.
pub const PGBOUNCER_DIR: &str = "/usr/sbin";

pub struct Pgbouncer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Pgbouncer {
    /// Starts pgbouncer on a free port, pooling `ama_authenticator` connections to the cluster's
    /// `postgres` database in transaction mode (SCRAM on both sides, no Unix socket).
    /// `server_login_retry = 1`: after one failed server login pgbouncer refuses every client
    /// for that long (15 s by default), which would outlast the restart test's wait for recovery.
    /// `default_pool_size = 20`: more server connections than the largest shim pool of the
    /// tests (16, `route_budget.rs`), so the shim's own limits are what a test meets; with fewer,
    /// the pooler's pool is the bottleneck (8 sends waiting on a lock there starved every read).
    pub fn start(cluster: &Cluster) -> Result<Pgbouncer, HarnessError> {
        let bin = Path::new(PGBOUNCER_DIR).join("pgbouncer");
        if !bin.exists() {
            return Err(HarnessError(
                "pgbouncer is not installed (apt-get install pgbouncer; ./ama test installs it)"
                    .into(),
            ));
        }
        let password = cluster
            .password(AUTHENTICATOR)
            .ok_or_else(|| HarnessError("the authenticator has no password".into()))?;
        let dir = cluster.dir.join("pgbouncer");
        std::fs::create_dir_all(&dir).map_err(|e| HarnessError(format!("pgbouncer dir: {e}")))?;
        let port = cluster::free_port()?;
        cluster::write_secret(
            &dir.join("userlist.txt"),
            &format!("\"{AUTHENTICATOR}\" \"{password}\"\n"),
        )?;
        let ini = format!(
            "[databases]\n\
             postgres = host=127.0.0.1 port={db_port} dbname=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = 20\n\
             max_client_conn = 500\n\
             server_reset_query =\n\
             server_login_retry = 1\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            db_port = cluster.port,
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini)
            .map_err(|e| HarnessError(format!("pgbouncer.ini: {e}")))?;
        cluster::chown_to_server_user(&dir)?;
        let child = cluster::server_command(Path::new(PGBOUNCER_DIR), "pgbouncer")?
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError(format!("cannot start pgbouncer: {e}")))?;
        let mut p = Pgbouncer { port, dir, child };
        if !cluster::wait_until(Duration::from_secs(10), || cluster::port_in_use(port)) {
            let log = std::fs::read_to_string(p.dir.join("pgbouncer.log")).unwrap_or_default();
            let _ = p.child.kill();
            return Err(HarnessError(format!(
                "pgbouncer did not listen within 10 s: {log}"
            )));
        }
        Ok(p)
    }

    /// The authenticator's connection string through pgbouncer (carries the password: pass it
    /// through the environment).
    pub fn url(&self, cluster: &Cluster) -> String {
        let pw = cluster.password(AUTHENTICATOR).unwrap_or_default();
        format!(
            "postgres://{AUTHENTICATOR}:{pw}@127.0.0.1:{}/postgres",
            self.port
        )
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL, and to pgbouncer itself (its pid file) when it can: as root the
        // child is runuser, which forwards a SIGTERM but then sleeps 2 s before it SIGKILLs
        // pgbouncer, and a killed runuser would leave pgbouncer running. When pgbouncer exits
        // by itself, runuser exits at once.
        let pid = std::fs::read_to_string(self.dir.join("pgbouncer.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|&p| p > 1)
            .unwrap_or(self.child.id() as i32);
        // SAFETY: kill(2) on the pgbouncer (or the child) this harness started
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !cluster::wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
