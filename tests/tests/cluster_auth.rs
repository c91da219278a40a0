//! Every cluster the harness starts authenticates every connection: no `trust` in pg_hba.conf,
//! scram-sha-256 with a generated password over TCP and on the (private) unix socket, secrets in
//! 0600 files, and a cluster left by an older harness is converted on its next start.

use ama_tests::cluster::{self, Cluster, Options, AUTHENTICATOR, PASSWORD_FILE, SUPERUSER};
use ama_tests::fixtures::start_cluster as start;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use tokio_postgres::error::SqlState;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn superuser_password(c: &Cluster) -> String {
    std::fs::read_to_string(c.dir.join(PASSWORD_FILE))
        .expect("password file")
        .trim()
        .to_string()
}

/// Connects with an explicit configuration; `host` is 127.0.0.1 or the socket directory.
async fn try_connect(
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host).port(port).user(user).dbname("postgres");
    if let Some(pw) = password {
        cfg.password(pw);
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn assert_refused(host: &str, port: u16, user: &str, password: Option<&str>) {
    let e = match try_connect(host, port, user, password).await {
        Ok(_) => panic!("{user} got in over {host} with password {password:?}"),
        Err(e) => e,
    };
    match password {
        // The server refuses the wrong password with 28P01.
        Some(_) => assert_eq!(
            e.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user} over {host}: {e}"
        ),
        // Without one the server asks for a password the client does not have (the client
        // reports that as a configuration error whose cause says so).
        None => assert!(
            format!("{e:?}").contains("password missing"),
            "{user} over {host}: {e:?}"
        ),
    }
}

#[tokio::test]
async fn connections_need_the_generated_password_over_tcp_and_the_socket() {
    let c = start(Options::default());
    let socket_dir = c.dir.to_string_lossy().into_owned();
    for host in ["127.0.0.1", socket_dir.as_str()] {
        assert_refused(host, c.port, SUPERUSER, None).await;
        assert_refused(host, c.port, SUPERUSER, Some("wrong")).await;
        assert_refused(host, c.port, AUTHENTICATOR, None).await;
        assert_refused(host, c.port, AUTHENTICATOR, Some("wrong")).await;
    }

    // The right passwords work: the superuser's from its file, the authenticator's through url().
    let pw = superuser_password(&c);
    assert!(pw.len() >= 32, "at least 128 bits of hex");
    for host in ["127.0.0.1", socket_dir.as_str()] {
        let client = try_connect(host, c.port, SUPERUSER, Some(&pw))
            .await
            .unwrap_or_else(|e| panic!("superuser over {host}: {e}"));
        let row = client.query_one("SELECT current_user::text", &[]).await;
        assert_eq!(row.expect("query").get::<_, String>(0), SUPERUSER);
    }
    let auth = c.connect(AUTHENTICATOR).await;
    let row = auth.query_one("SELECT current_user::text", &[]).await;
    assert_eq!(row.expect("query").get::<_, String>(0), AUTHENTICATOR);
    assert_eq!(c.psql("postgres", "SELECT 1").expect("psql"), "1");

    // No rule the server loaded trusts anybody; every one asks for scram-sha-256.
    let admin = c.connect(SUPERUSER).await;
    let methods: Vec<String> = admin
        .query(
            "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE error IS NULL",
            &[],
        )
        .await
        .expect("pg_hba_file_rules")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(methods, vec![cluster::AUTH_METHOD.to_string()]);
    let hba = std::fs::read_to_string(c.data.join("pg_hba.conf")).expect("pg_hba.conf");
    assert!(!cluster::hba_has_trust(&hba), "pg_hba.conf:\n{hba}");
    assert!(!hba.to_lowercase().contains("trust"), "pg_hba.conf:\n{hba}");

    // Secrets are 0600, the socket directory 0700.
    assert_eq!(mode(&c.dir.join(PASSWORD_FILE)), 0o600);
    assert_eq!(mode(&c.pgpass_path()), 0o600);
    assert_eq!(mode(&c.dir), 0o700);

    // The password never reaches the server log.
    assert!(
        !c.log().contains(&pw),
        "superuser password in the server log"
    );
}

/// The original report: another local OS user (`nobody`) must not get a session. Needs root
/// (to become `nobody`); skipped otherwise.
#[test]
fn another_os_user_gets_nothing_over_tcp_or_the_socket() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run psql as nobody");
        return;
    }
    let c = start(Options::default());
    let psql = cluster::bindir().expect("bindir").join("psql");
    let socket_dir = c.dir.to_string_lossy().into_owned();
    for host in ["127.0.0.1", socket_dir.as_str()] {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&psql)
            .args(["-X", "-w", "-A", "-t", "-h", host, "-p"])
            .arg(c.port.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 1"])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .current_dir("/")
            .output()
            .expect("runuser psql");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nobody got in over {host}");
        assert!(
            stderr.contains("no password supplied") || stderr.contains("Permission denied"),
            "nobody over {host}: {stderr}"
        );
    }
}

/// `ama-harness exec` gives its command a 0600 pgpass file, no password in the environment.
#[test]
fn exec_children_authenticate_through_a_private_pgpass_file() {
    let script = r#"
        set -e
        test -z "${PGPASSWORD:-}"
        case "$DATABASE_URL" in *:*:*@*) echo "password in DATABASE_URL"; exit 1;; esac
        test "$(stat -c %a "$PGPASSFILE")" = 600
        psql -X -w -A -t -c 'SELECT current_user'
        psql -X -w -A -t -U ama_authenticator -c 'SELECT current_user'
    "#;
    let out = Command::new(env!("CARGO_BIN_EXE_ama-harness"))
        .args(["exec", "--", "sh", "-c", script])
        .env("PGPASSWORD", "a stale one from the caller's shell")
        .output()
        .expect("ama-harness exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["postgres", "ama_authenticator"]
    );
}

/// A data directory made by an older harness (`initdb --auth=trust`, no password file) is given a
/// password and a scram-only pg_hba.conf before it listens again.
#[tokio::test]
async fn a_trusting_cluster_from_an_older_harness_is_converted_on_start() {
    let base = std::env::var("AMA_TMPDIR").unwrap_or_else(|_| "/tmp".into());
    let dir = Path::new(&base).join(format!("ama-pg-auth-{}", uuid::Uuid::new_v4()));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _cleanup = Remove(&dir);
    let opts = || Options {
        data_dir: Some(dir.clone()),
        create_extension: false,
        ..Options::default()
    };

    // What the old harness left: trust everywhere and no password.
    drop(start(opts()));
    let hba_path = dir.join("data/pg_hba.conf");
    std::fs::write(
        &hba_path,
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n",
    )
    .expect("write trusting pg_hba.conf");
    std::fs::remove_file(dir.join(PASSWORD_FILE)).expect("remove password file");

    let c = start(opts());
    let hba = std::fs::read_to_string(&hba_path).expect("pg_hba.conf");
    assert!(!hba.to_lowercase().contains("trust"), "pg_hba.conf:\n{hba}");
    assert_eq!(mode(&dir.join(PASSWORD_FILE)), 0o600);
    let pw = superuser_password(&c);
    assert_refused("127.0.0.1", c.port, SUPERUSER, None).await;
    assert_refused("127.0.0.1", c.port, SUPERUSER, Some("wrong")).await;
    try_connect("127.0.0.1", c.port, SUPERUSER, Some(&pw))
        .await
        .expect("the new password works");
    drop(c);
}
