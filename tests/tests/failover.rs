//! Failover to a synchronous standby, measured (issue 12). `bench/failover/run.sh` runs it and
//! records its figures; see `docs/benchmarks.md` ("Failover") and `docs/scale-out.md`.
//!
//! Two throwaway PostgreSQL 15 clusters on this machine: a primary with `ama_pg`, and a standby
//! made with `pg_basebackup -R` through a replication slot and named in the primary's
//! `synchronous_standby_names` (`synchronous_commit = on`, `fsync = on`), so a commit returns only
//! once the standby has flushed it. One `ama-shim` is pointed at both with
//! `host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write` (its LISTEN connection
//! too). Several clients post messages over HTTPS, each to its own thread, one at a time, every
//! message with a `client_message_id`; a write that fails (503, or anything but 200) is retried
//! with the same id after a short pause, so an ambiguous failure (committed, answer lost) comes
//! back as a replay of the same message, never a second one. Mid-load the primary dies
//! (`pg_ctl stop -m immediate`) and the standby is promoted (`pg_ctl promote`).
//!
//! Measured: the write outage as the clients saw it (the longest time with no acknowledged write
//! anywhere, which spans the failover), the 503s and other failures, the acknowledged writes, and
//! on the promoted server: acknowledged writes missing (lost; must be 0), messages stored twice
//! for one `client_message_id` (must be 0), `thread_seq` gaps (must be 0) and stored messages no
//! client saw acknowledged (must be 0: every failed write is retried until acknowledged). Also the
//! rate-limit ledger: a route limit exhausted just before the failover is whole again after it,
//! because the ledger lives in the server's shared memory and the promoted server's starts empty.
//!
//! Knobs (environment): FAILOVER_CLIENTS (8), FAILOVER_INTERVAL_MS (20: each client's pause
//! between acknowledged writes), FAILOVER_RETRY_MS (50: pause before retrying a failed write),
//! FAILOVER_BEFORE_MS (3000: load before the primary dies), FAILOVER_AFTER_MS (3000: load after
//! the promotion), FAILOVER_PROMOTE_DELAY_MS (0: time between the primary's death and
//! `pg_ctl promote`, a stand-in for failure detection), AMA_FAILOVER_REPORT (write the figures
//! there as JSON), AMA_FAILOVER_LOGS (copy the shim's and both servers' logs into this directory),
//! AMA_SHIM_BIN (the shim to run; default target/debug/ama-shim).
//!
//! It takes about 20 s (half of it making the two clusters), so it runs with the other
//! end-to-end tests (`./ama test`, CI), where only the correctness figures are asserted (lost,
//! duplicates, gaps, the ledger), never a time. `bench/failover/run.sh` runs it several times
//! with a release shim and records the figures; by hand:
//! `cargo test -p ama-tests --test failover -- --nocapture` (prints them).

use ama_tests::client::Client;
use ama_tests::cluster::standby::{multi_host_conninfo, replication_settings};
use ama_tests::cluster::{self, Cluster, Options, AUTHENTICATOR, SUPERUSER};
use ama_tests::dev;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STANDBY: &str = "ama_standby";
/// The route limit the ledger check exhausts: `reads` at this many a minute, no burst.
const READS_PER_MINUTE: u32 = 5;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn user_id(n: usize) -> String {
    format!("eeeeeeee-0000-4000-8000-{n:012}")
}

/// `ama-shim` as a child process; SIGTERM on drop.
struct Shim {
    child: Child,
    log: std::path::PathBuf,
}

impl Shim {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this test started
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if !cluster::wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts the shim on a free port with a fresh certificate and HS256 secret, its pool and its
/// LISTEN connection both on `conninfo` (through the environment: it carries a password).
fn start_shim(dir: &std::path::Path, conninfo: &str) -> (Shim, Client, String) {
    let (cert_pem, key_pem) = dev::tls_cert();
    let secret = dev::hs256_secret();
    std::fs::create_dir_all(dir).expect("shim dir");
    let (cert, key, secret_file) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("jwt_secret"),
    );
    std::fs::write(&cert, &cert_pem).expect("cert");
    cluster::write_secret(&key, &key_pem).expect("key");
    cluster::write_secret(&secret_file, &secret).expect("secret");
    let port = cluster::free_port().expect("port");
    let log = dir.join("shim.log");
    let out = std::fs::File::create(&log).expect("log file");
    let bin = std::env::var("AMA_SHIM_BIN")
        .unwrap_or_else(|_| format!("{}/../target/debug/ama-shim", env!("CARGO_MANIFEST_DIR")));
    let child = Command::new(&bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--jwt-secret-file")
        .arg(&secret_file)
        .env("AMA_DATABASE_URL", conninfo)
        .env("AMA_LISTEN_DATABASE_URL", conninfo)
        .args(["--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}); build it with cargo build -p ama-shim")
        });
    let shim = Shim { child, log };
    assert!(
        cluster::wait_until(Duration::from_secs(20), || cluster::port_in_use(port)),
        "ama-shim did not listen within 20 s:\n{}",
        shim.logs()
    );
    let client = Client::new(&format!("127.0.0.1:{port}"), &cert_pem);
    (shim, client, secret)
}

/// One request with a bound (a request that hangs counts as a failure, not a stuck test).
async fn send(
    client: &Client,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> Result<ama_tests::client::Response, String> {
    let auth = format!("Bearer {bearer}");
    let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
    let mut headers = vec![("authorization", auth.as_str())];
    if bytes.is_some() {
        headers.push(("content-type", "application/json"));
    }
    match tokio::time::timeout(
        Duration::from_secs(10),
        client.send(method, path, &headers, bytes.as_deref()),
    )
    .await
    {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err("io".into()),
        Err(_) => Err("timeout".into()),
    }
}

/// An acknowledged write: status 200 with its message id and `thread_seq`.
#[derive(Debug, Clone)]
struct Ack {
    thread_id: String,
    client_message_id: String,
    message_id: String,
    thread_seq: i64,
    replayed: bool,
    /// When the answer arrived, since the start of the load.
    done: Duration,
}

#[derive(Debug, Default)]
struct ClientTally {
    acks: Vec<Ack>,
    /// Failed attempts by what they got: "503", "500", "io", "timeout", "unresolved".
    failures: BTreeMap<String, u64>,
    /// Each failed attempt: (sent, answered) since the start of the load.
    failed_at: Vec<(Duration, Duration)>,
    /// The longest attempt, failed or not.
    longest: Duration,
}

/// What a client needs.
#[derive(Clone)]
struct Load {
    client: Client,
    start: Instant,
    stop: Arc<AtomicBool>,
    /// Pause after each acknowledged write.
    interval: Duration,
    /// Pause before retrying a failed write.
    retry: Duration,
}

/// One client: posts `content = client_message_id = w<i>-<n>` to its thread, one at a time, until
/// `stop`; a failed write is retried with the same id until it is acknowledged (also after
/// `stop`, for at most 20 s; past that it counts as "unresolved"), so every write it started
/// ends acknowledged.
async fn run_client(i: usize, jwt: String, thread_id: String, load: Load) -> ClientTally {
    let mut tally = ClientTally::default();
    let path = format!("/api/v1/chat/threads/{thread_id}/messages");
    let mut n = 0u64;
    let mut stopped_at: Option<Instant> = None;
    'writes: while !load.stop.load(Ordering::Relaxed) {
        n += 1;
        let cmid = format!("w{i}-{n}");
        let body = json!({"content": cmid, "client_message_id": cmid});
        loop {
            let sent = load.start.elapsed();
            let r = send(&load.client, "POST", &path, &jwt, Some(&body)).await;
            let answered = load.start.elapsed();
            tally.longest = tally.longest.max(answered - sent);
            let failure = match r {
                Ok(r) if r.status == 200 => {
                    let v = r.json();
                    tally.acks.push(Ack {
                        thread_id: thread_id.clone(),
                        client_message_id: cmid.clone(),
                        message_id: v["message_id"].as_str().unwrap_or_default().to_string(),
                        thread_seq: v["thread_seq"].as_i64().unwrap_or(-1),
                        replayed: v["replayed"].as_bool().unwrap_or(false),
                        done: answered,
                    });
                    break;
                }
                Ok(r) => r.status.to_string(),
                Err(e) => e,
            };
            *tally.failures.entry(failure).or_default() += 1;
            tally.failed_at.push((sent, answered));
            tokio::time::sleep(load.retry).await;
            if load.stop.load(Ordering::Relaxed) {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(20) {
                    *tally.failures.entry("unresolved".into()).or_default() += 1;
                    break 'writes;
                }
            }
        }
        if !load.interval.is_zero() {
            tokio::time::sleep(load.interval).await;
        }
    }
    tally
}

/// Reads `GET /api/v1/chat/threads` `tries` times as `jwt`; the statuses.
async fn reads(client: &Client, jwt: &str, tries: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..tries {
        out.push(
            send(client, "GET", "/api/v1/chat/threads", jwt, None)
                .await
                .map(|r| r.status)
                .unwrap_or(0),
        );
    }
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_synchronous_standby_loses_no_acknowledged_write() {
    let clients = knob("FAILOVER_CLIENTS", 8) as usize;
    let interval = Duration::from_millis(knob("FAILOVER_INTERVAL_MS", 20));
    let retry = Duration::from_millis(knob("FAILOVER_RETRY_MS", 50));
    let before = Duration::from_millis(knob("FAILOVER_BEFORE_MS", 3000));
    let after = Duration::from_millis(knob("FAILOVER_AFTER_MS", 3000));
    let promote_delay = Duration::from_millis(knob("FAILOVER_PROMOTE_DELAY_MS", 0));
    let setup_started = Instant::now();

    // --- two clusters: the primary (with ama_pg, as every harness cluster) and its standby
    let settings = replication_settings();
    let primary = Arc::new(
        Cluster::start(Options {
            settings: settings.clone(),
            ..Options::default()
        })
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let standby = Arc::new(
        primary
            .start_standby(STANDBY, &settings)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    primary
        .require_synchronous_standby(STANDBY)
        .unwrap_or_else(|e| panic!("{e}"));
    // the harness's throwaway clusters run without durability; these two must not
    let durability = primary
        .psql(
            "postgres",
            "SELECT current_setting('synchronous_commit') || ' ' || current_setting('fsync') || ' ' || current_setting('synchronous_standby_names')",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(durability, format!("on on \"{STANDBY}\""));
    let internal_key = primary
        .psql(
            "postgres",
            "SELECT raw_key FROM ama.create_internal_key('failover')",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // sends are not what is measured here: lift their limit; reads get a small exact one, for
    // the ledger check (rows in ama.rate_policies replicate; the ledger itself does not)
    primary
        .psql(
            "postgres",
            &format!(
                "UPDATE ama.rate_policies SET rate_limit = 1000000 WHERE name = 'user_send';
                 UPDATE ama.rate_policies SET rate_limit = {READS_PER_MINUTE}, burst = 0 WHERE name = 'reads'"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));

    // --- the shim, pointed at both servers
    let password = primary
        .password(AUTHENTICATOR)
        .expect("authenticator password");
    let conninfo = multi_host_conninfo(AUTHENTICATOR, &password, &[primary.port, standby.port]);
    let (shim, client, secret) = start_shim(&primary.dir.join("shim"), &conninfo);
    let put_user = |id: String| {
        let client = client.clone();
        let key = internal_key.clone();
        async move {
            let body =
                serde_json::to_vec(&json!({"email": format!("{id}@example.com"), "plan": "basic"}))
                    .expect("json");
            let r = client
                .send(
                    "PUT",
                    &format!("/internal/v1/users/{id}"),
                    &[
                        ("x-internal-api-key", key.as_str()),
                        ("content-type", "application/json"),
                    ],
                    Some(&body),
                )
                .await
                .expect("PUT user");
            assert_eq!(r.status, 200, "PUT user {id}: {:?}", r.json());
        }
    };
    let partner = user_id(0);
    let reader = user_id(clients + 1);
    put_user(partner.clone()).await;
    put_user(reader.clone()).await;
    let mut writers = Vec::new();
    for i in 1..=clients {
        let id = user_id(i);
        put_user(id.clone()).await;
        let jwt = dev::user_jwt(&secret, &id, &format!("{id}@example.com"), 3600);
        let r = send(
            &client,
            "POST",
            "/api/v1/chat/threads",
            &jwt,
            Some(&json!({"target_user_ids": [partner]})),
        )
        .await
        .expect("create thread");
        assert_eq!(r.status, 200, "create thread: {:?}", r.json());
        let tid = r.json()["thread_id"]
            .as_str()
            .expect("thread_id")
            .to_string();
        writers.push((jwt, tid));
    }
    let reader_jwt = dev::user_jwt(&secret, &reader, &format!("{reader}@example.com"), 3600);
    let setup = setup_started.elapsed();

    // --- steady write load
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        client: client.clone(),
        start,
        stop: stop.clone(),
        interval,
        retry,
    };
    let mut tasks = Vec::new();
    for (i, (jwt, tid)) in writers.iter().enumerate() {
        tasks.push(tokio::spawn(run_client(
            i + 1,
            jwt.clone(),
            tid.clone(),
            load.clone(),
        )));
    }
    tokio::time::sleep(before).await;

    // --- the ledger before: the reader uses up its reads
    let reads_before = reads(&client, &reader_jwt, READS_PER_MINUTE as usize + 2).await;
    let exhausted_at = Instant::now();

    // --- the primary dies; the standby is promoted
    let p = primary.clone();
    let kill_started = start.elapsed();
    blocking(move || p.stop_immediate())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let killed = start.elapsed();
    tokio::time::sleep(promote_delay).await;
    let s = standby.clone();
    let promote_started = start.elapsed();
    blocking(move || s.promote())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let promoted = start.elapsed();

    // --- the ledger after: the first read that the promoted server serves, then the rest
    let mut reads_after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let st = reads(&client, &reader_jwt, 1).await[0];
        if st == 200 || st == 429 {
            reads_after.push(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reads_after.extend(reads(&client, &reader_jwt, READS_PER_MINUTE as usize + 1).await);
    let ledger_elapsed = exhausted_at.elapsed();

    // --- the LISTEN connection follows: /ready says when it is connected again
    let mut listener_back = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.send("GET", "/ready", &[], None).await {
            if r.status == 200 && r.json()["events_listener"] == "connected" {
                listener_back = Some(start.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let remaining = (promoted + after).saturating_sub(start.elapsed());
    tokio::time::sleep(remaining).await;
    stop.store(true, Ordering::Relaxed);
    let load_secs = start.elapsed().as_secs_f64();
    let mut acks = Vec::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_at = Vec::new();
    let mut longest = Duration::ZERO;
    for t in tasks {
        let tally = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("clients finish")
            .expect("client task");
        acks.extend(tally.acks);
        failed_at.extend(tally.failed_at);
        longest = longest.max(tally.longest);
        for (k, v) in tally.failures {
            *failures.entry(k).or_default() += v;
        }
    }

    // --- what the clients saw: the longest stretch without an acknowledged write
    let mut times: Vec<Duration> = acks.iter().map(|a| a.done).collect();
    times.sort();
    let (gap_from, gap_to) = times
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| *b - *a)
        .expect("acknowledged writes");
    let outage = gap_to - gap_from;
    let acked_before = times.iter().filter(|t| **t <= kill_started).count();
    let acked_after = times.iter().filter(|t| **t >= promote_started).count();
    let replays = acks.iter().filter(|a| a.replayed).count();

    // --- what the promoted server has
    let s = standby.clone();
    assert!(
        !blocking(move || s.in_recovery())
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        "the standby is not promoted"
    );
    let db = standby.connect(SUPERUSER).await;
    let thread_ids: Vec<String> = writers.iter().map(|(_, t)| t.clone()).collect();
    let rows = db
        .query(
            "SELECT thread_id::text, message_id::text, thread_seq, client_message_id
               FROM ama.messages WHERE thread_id::text = ANY($1)",
            &[&thread_ids],
        )
        .await
        .expect("read ama.messages on the promoted server");
    let stored: HashMap<String, (String, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(1), (r.get::<_, String>(0), r.get(2))))
        .collect();
    let mut lost = Vec::new();
    let mut seq_mismatch = Vec::new();
    for a in &acks {
        match stored.get(&a.message_id) {
            None => lost.push(a.client_message_id.clone()),
            Some((tid, seq)) if *tid != a.thread_id || *seq != a.thread_seq => {
                seq_mismatch.push(a.client_message_id.clone())
            }
            Some(_) => {}
        }
    }
    let mut per_cmid: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut seqs: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &rows {
        let tid: String = r.get(0);
        *per_cmid.entry((tid.clone(), r.get(3))).or_default() += 1;
        seqs.entry(tid).or_default().push(r.get(2));
    }
    let duplicates: usize = per_cmid.values().map(|n| n - 1).sum();
    let gaps: i64 = seqs
        .values_mut()
        .map(|v| {
            v.sort();
            v.last().copied().unwrap_or(0) - v.len() as i64
        })
        .sum();
    let acked_ids: HashSet<&str> = acks.iter().map(|a| a.message_id.as_str()).collect();
    let unacknowledged = stored
        .keys()
        .filter(|m| !acked_ids.contains(m.as_str()))
        .count();
    // one acknowledged message per id: a replay must answer with the message first stored
    let mut ack_ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in &acks {
        ack_ids
            .entry(a.client_message_id.as_str())
            .or_default()
            .insert(a.message_id.as_str());
    }
    let conflicting_acks = ack_ids.values().filter(|s| s.len() > 1).count();

    let reads_admitted_after = reads_after.iter().filter(|s| **s == 200).count();
    let emission = 60.0 / READS_PER_MINUTE as f64;
    let without_reset = (ledger_elapsed.as_secs_f64() / emission).floor() as usize;
    let status_503 = failures.get("503").copied().unwrap_or(0);
    let report = json!({
        "clients": clients,
        "interval_ms": interval.as_millis() as u64,
        "retry_ms": retry.as_millis() as u64,
        "promote_delay_ms": promote_delay.as_millis() as u64,
        "setup_s": (setup.as_secs_f64() * 10.0).round() / 10.0,
        "load_s": (load_secs * 10.0).round() / 10.0,
        "writes_acknowledged": acks.len(),
        "writes_per_s": (acks.len() as f64 / load_secs).round(),
        "acknowledged_before_kill": acked_before,
        "acknowledged_after_promote_started": acked_after,
        "outage_ms": ms(outage),
        "outage_from_ms_after_kill": ms(gap_from.saturating_sub(kill_started)),
        "outage_to_ms_after_kill": ms(gap_to.saturating_sub(kill_started)),
        "kill_ms": ms(killed - kill_started),
        "promote_ms": ms(promoted - promote_started),
        "first_ack_after_promote_started_ms": ms(gap_to.saturating_sub(promote_started)),
        "listener_connected_after_promote_started_ms":
            listener_back.map(|t| ms(t.saturating_sub(promote_started))),
        "status_503": status_503,
        "failed_attempts_ms_after_kill": failed_at
            .iter()
            .map(|(a, b)| [ms(a.saturating_sub(kill_started)), ms(b.saturating_sub(kill_started))])
            .collect::<Vec<_>>(),
        "longest_attempt_ms": ms(longest),
        "failures": failures,
        "replayed_acks": replays,
        "lost": lost.len(),
        "seq_mismatch": seq_mismatch.len(),
        "duplicates": duplicates,
        "conflicting_acks": conflicting_acks,
        "thread_seq_gaps": gaps,
        "stored_unacknowledged": unacknowledged,
        "ledger": {
            "reads_per_minute": READS_PER_MINUTE,
            "before": reads_before,
            "after": reads_after,
            "admitted_after": reads_admitted_after,
            "seconds_since_exhausted": (ledger_elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "admitted_without_a_reset_at_most": without_reset,
        },
    });
    println!(
        "failover: {} writes acknowledged ({} before the kill, {} after the promotion), outage {} ms \
         ({} ms to {} ms after the kill; promote took {} ms), {} x 503, other failures {:?}, \
         {} replays, lost {}, duplicates {}, thread_seq gaps {}, stored unacknowledged {}; \
         ledger: reads {:?} before, {:?} after ({:.1} s later)",
        acks.len(),
        acked_before,
        acked_after,
        ms(outage),
        ms(gap_from.saturating_sub(kill_started)),
        ms(gap_to.saturating_sub(kill_started)),
        ms(promoted - promote_started),
        status_503,
        failures
            .iter()
            .filter(|(k, _)| k.as_str() != "503")
            .collect::<Vec<_>>(),
        replays,
        lost.len(),
        duplicates,
        gaps,
        unacknowledged,
        reads_before,
        reads_after,
        ledger_elapsed.as_secs_f64(),
    );
    println!("failover-json: {report}");
    if let Ok(path) = std::env::var("AMA_FAILOVER_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
            .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }

    if let Ok(dir) = std::env::var("AMA_FAILOVER_LOGS") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for (name, text) in [
            ("shim.log", shim.logs()),
            ("primary.log", primary.log()),
            ("standby.log", standby.log()),
        ] {
            std::fs::write(dir.join(name), text).expect("log copy");
        }
    }

    // --- what must hold
    assert!(
        lost.is_empty(),
        "acknowledged writes missing on the promoted server: {lost:?}"
    );
    assert!(
        seq_mismatch.is_empty(),
        "stored with another thread or thread_seq than acknowledged: {seq_mismatch:?}"
    );
    assert_eq!(
        duplicates, 0,
        "messages stored twice for one client_message_id"
    );
    assert_eq!(
        conflicting_acks, 0,
        "one client_message_id acknowledged as two messages"
    );
    assert_eq!(gaps, 0, "thread_seq gaps on the promoted server");
    assert_eq!(
        unacknowledged, 0,
        "stored messages no client saw acknowledged"
    );
    assert!(acked_before > 0 && acked_after > 0, "{report}");
    // (an answer can arrive a little after the primary is gone: it committed before)
    assert!(
        gap_from <= promoted && gap_to >= promote_started,
        "the longest pause in acknowledged writes is not the failover: {report}"
    );
    // the ledger: used up before, whole again after (not refilled by time: see without_reset)
    assert_eq!(
        reads_before.iter().filter(|s| **s == 200).count(),
        READS_PER_MINUTE as usize,
        "{reads_before:?}"
    );
    assert_eq!(reads_before.last(), Some(&429), "{reads_before:?}");
    assert_eq!(
        reads_admitted_after, READS_PER_MINUTE as usize,
        "the promoted server's ledger starts empty: {reads_after:?}"
    );
    assert!(without_reset < READS_PER_MINUTE as usize, "{report}");
    assert!(
        listener_back.is_some(),
        "the LISTEN connection did not come back"
    );
    drop(shim);
}
