//! A streaming standby of a throwaway cluster, for failover tests: `pg_basebackup -R` with a
//! replication slot, started on its own free port in its own temporary directory (with its own
//! cleanup watchdog), made synchronous on the primary, promoted with `pg_ctl promote`.
//!
//! The standby is a copy of the primary, so it has the same roles and passwords (the harness's
//! superuser and `ama_authenticator` passwords work on it) and the same `ama_pg` installation;
//! it is started with `shared_preload_libraries = 'ama_pg'` like every harness cluster, so its
//! rate-limit ledger exists, empty, from the start.

use super::{
    chown_to_server_user, free_port, make_temp_dir, run, server_command, set_mode, spawn_watchdog,
    sql_literal, wait_until, write_secret, Cluster, HarnessError, PASSWORD_FILE, SUPERUSER,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// `postgresql.conf` settings a primary needs for [`Cluster::start_standby`] and a synchronous
/// standby: every commit is flushed locally and waits for the standby once
/// [`Cluster::require_synchronous_standby`] has named it (the harness's throwaway clusters turn
/// `fsync`, `synchronous_commit` and `full_page_writes` off; these turn them back on). Pass them
/// to the standby too, so that it is configured as the primary it may become.
pub fn replication_settings() -> Vec<(String, String)> {
    [
        ("fsync", "on"),
        ("full_page_writes", "on"),
        ("synchronous_commit", "on"),
        ("wal_level", "replica"),
        ("max_wal_senders", "4"),
        ("max_replication_slots", "4"),
        ("hot_standby", "on"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Cluster {
    /// Makes and starts a streaming standby of this (throwaway, running) cluster:
    /// `pg_basebackup -R -X stream` through a new physical replication slot named `name`, with
    /// `application_name = name` in its `primary_conninfo` (the name
    /// [`Cluster::require_synchronous_standby`] expects). Returns once the primary reports it
    /// streaming. `settings` are its `-c` settings (use [`replication_settings`]).
    pub fn start_standby(
        &self,
        name: &str,
        settings: &[(String, String)],
    ) -> Result<Cluster, HarnessError> {
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(HarnessError(format!(
                "standby name {name:?}: use lower-case letters, digits and _ (it names a replication slot)"
            )));
        }
        let password = self
            .password(SUPERUSER)
            .ok_or_else(|| HarnessError("the primary has no superuser password".into()))?;
        let dir = make_temp_dir()?;
        let data = dir.join("data");
        let mut standby = Cluster {
            port: 0,
            dir: dir.clone(),
            data: data.clone(),
            bindir: self.bindir.clone(),
            throwaway: true,
            watchdog: None,
            // a copy of the primary: the same roles with the same passwords
            passwords: Mutex::new(
                self.passwords
                    .lock()
                    .expect("passwords")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
            ),
        };
        standby.watchdog = Some(spawn_watchdog(&standby.bindir, &dir, &data)?);
        set_mode(&dir, 0o700)?;
        write_secret(&dir.join(PASSWORD_FILE), &password)?;
        chown_to_server_user(&dir)?;
        // As the server's OS user, so the copy has the right owner and modes. The password goes
        // through the environment; -R writes it into the standby's postgresql.auto.conf (0600,
        // in a directory only the server's OS user may enter), which is where a standby keeps it.
        let mut c = server_command(&self.bindir, "pg_basebackup")?;
        c.arg("-d")
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPERUSER} application_name={name}",
                self.port
            ))
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "-C", "-S", name])
            .env("PGPASSWORD", &password);
        run(c, "pg_basebackup")?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            match standby.pg_ctl_start(port, settings) {
                Ok(()) => {
                    standby.port = port;
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        standby.write_pgpass()?;
        let streaming = wait_until(Duration::from_secs(30), || {
            self.psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_replication WHERE application_name = {} AND state = 'streaming'",
                    sql_literal(name)
                ),
            )
            .map(|n| n == "1")
            .unwrap_or(false)
        });
        if !streaming {
            return Err(HarnessError(format!(
                "the standby {name} did not start streaming within 30 s; its log: {}",
                standby.dir.join("server.log").display()
            )));
        }
        Ok(standby)
    }

    /// Names `name` in `synchronous_standby_names` (`ALTER SYSTEM`, reload) and waits until the
    /// primary reports it `sync`: from then on every commit waits for the standby's flush. Done
    /// after the base backup, so the standby does not inherit the setting (a promoted standby
    /// with no standby of its own would otherwise wait forever on every commit).
    pub fn require_synchronous_standby(&self, name: &str) -> Result<(), HarnessError> {
        self.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET synchronous_standby_names = {}",
                sql_literal(&format!("\"{name}\""))
            ),
        )?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        let sync = wait_until(Duration::from_secs(30), || {
            self.psql(
                "postgres",
                &format!(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = {}",
                    sql_literal(name)
                ),
            )
            .map(|s| s == "sync")
            .unwrap_or(false)
        });
        if !sync {
            return Err(HarnessError(format!(
                "the standby {name} did not become synchronous within 30 s"
            )));
        }
        Ok(())
    }

    /// Stops the server at once, without a checkpoint (`pg_ctl stop -m immediate`): every backend
    /// is killed and clients see their connections break, as when the machine dies.
    pub fn stop_immediate(&self) -> Result<(), HarnessError> {
        let mut c = server_command(&self.bindir, "pg_ctl")?;
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        run(c, "pg_ctl stop -m immediate")
    }

    /// Promotes a standby (`pg_ctl promote -w`): returns once it accepts writes.
    pub fn promote(&self) -> Result<(), HarnessError> {
        let mut c = server_command(&self.bindir, "pg_ctl")?;
        c.arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "30", "promote"]);
        run(c, "pg_ctl promote")
    }

    /// Whether the server is in recovery (a standby), asked as the superuser.
    pub fn in_recovery(&self) -> Result<bool, HarnessError> {
        Ok(self.psql("postgres", "SELECT pg_is_in_recovery()")? == "t")
    }
}

/// A libpq/tokio-postgres key=value connection string for `user` on database `postgres` naming
/// several servers on 127.0.0.1, tried in order, keeping the first that accepts writes
/// (`target_session_attrs=read-write`): how the shim follows a failover. Carries the password:
/// pass it through the environment, never a command line.
pub fn multi_host_conninfo(user: &str, password: &str, ports: &[u16]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "host={hosts} port={ports} user={} password={} dbname=postgres target_session_attrs=read-write",
        quote(user),
        quote(password)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multi_host_string_parses_with_both_hosts_and_read_write() {
        let s = multi_host_conninfo("ama_authenticator", "p'w\\x", &[5432, 5433]);
        let cfg: tokio_postgres::Config = s.parse().expect("parses");
        assert_eq!(cfg.get_hosts().len(), 2);
        assert_eq!(cfg.get_ports(), &[5432, 5433]);
        assert_eq!(cfg.get_password(), Some(&b"p'w\\x"[..]));
        assert_eq!(
            cfg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
    }
}
