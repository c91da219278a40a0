//! Figures for the WebSocket streams (a benchmark, not a test; `#[ignore]`d): 1,000 user sockets
//! spread over 100 threads, commit-to-delivery latency (p50, p99) and the shim's RSS per idle
//! socket. Run it with a release shim:
//! `AMA_SHIM_BIN=target/release/ama-shim cargo test -p ama-tests --test ws_bench -- --ignored --nocapture`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ama_tests::fixtures::create_thread;
use ama_tests::stack::Stack;
use ama_tests::ws::{open, Read};
use serde_json::json;

const USERS: usize = 100;
const SOCKETS_PER_USER: usize = 10;

fn user(i: usize) -> String {
    format!("b0000000-0000-4000-8000-{:012}", i)
}

/// The shim's resident set in KiB (found by its listening port in /proc).
fn shim_rss_kib(port: u16) -> u64 {
    let needle = format!("127.0.0.1:{port}");
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("ama-shim") && cmd.contains(&needle) {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: run with --ignored and a release shim"]
async fn figures_for_1000_sockets_over_100_threads() {
    let s = Stack::start(&[
        "--ws-max-per-ip",
        "5000",
        "--max-connections-per-ip",
        "5000",
        "--ws-max-per-user",
        "64",
        "--sse-recheck-secs",
        "300",
        "--ws-idle-timeout-secs",
        "600",
        "--pool-size",
        "8",
    ]);
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 1000000 WHERE name IN ('stream_check', 'events_read', 'user_send', 'thread_write', 'internal')",
        )
        .expect("raise limits");
    for i in 0..USERS {
        let r = s.put_user(&user(i), "basic").await;
        assert_eq!(r.status, 200);
    }
    // thread i: users i and i+1, so each user is in two threads and each thread has 20 sockets
    let mut threads = Vec::new();
    for i in 0..USERS {
        let t = create_thread(&s, &s.jwt(&user(i)), &[&user((i + 1) % USERS)]).await;
        threads.push(t);
    }
    let rss_before = shim_rss_kib(s.port);
    let arrivals: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Default::default();
    let mut readers = Vec::new();
    let opened_at = Instant::now();
    for i in 0..USERS {
        let auth = format!("Bearer {}", s.jwt(&user(i)));
        for _ in 0..SOCKETS_PER_USER {
            let mut w = open(
                &s.client,
                "/api/v1/chat/ws/user/threads",
                &[("authorization", &auth)],
            )
            .await
            .socket();
            w.until(Duration::from_secs(60), |v| v["type"] == "ready")
                .await;
            let arrivals = arrivals.clone();
            readers.push(tokio::spawn(async move {
                loop {
                    match w.read(Duration::from_secs(120)).await {
                        Read::Event(v) if v["type"] == "thread_message" => {
                            let c = v["event"]["content"].as_str().unwrap_or("").to_string();
                            arrivals
                                .lock()
                                .unwrap()
                                .entry(c)
                                .or_default()
                                .push(Instant::now());
                        }
                        Read::Event(_) => {}
                        _ => return,
                    }
                }
            }));
        }
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sockets = USERS * SOCKETS_PER_USER;
    let rss_after = shim_rss_kib(s.port);
    // one message per thread, one at a time; latency from just before the POST to each arrival
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for (i, t) in threads.iter().enumerate() {
        let content = format!("bench-{i}");
        let start = Instant::now();
        let r = s
            .client
            .json(
                "POST",
                &format!("/api/v1/chat/threads/{t}/messages"),
                Some(&s.jwt(&user(i))),
                &json!({ "content": content }),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        sent.insert(content, start);
    }
    let expected = threads.len() * 2 * SOCKETS_PER_USER;
    for _ in 0..600 {
        let got: usize = arrivals.lock().unwrap().values().map(Vec::len).sum();
        if got >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let mut lat: Vec<Duration> = arrivals
        .iter()
        .flat_map(|(c, ts)| {
            let start = sent[c];
            ts.iter().map(move |t| t.duration_since(start))
        })
        .collect();
    lat.sort();
    assert_eq!(
        lat.len(),
        expected,
        "every socket of every thread got its message once"
    );
    println!(
        "ws figures: {sockets} sockets over {} threads (opened in {open_secs:.1} s); \
         delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} deliveries; \
         shim RSS {rss_before} KiB before, {rss_after} KiB after: {:.1} KiB per idle socket",
        threads.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().unwrap().as_secs_f64() * 1000.0,
        lat.len(),
        (rss_after.saturating_sub(rss_before)) as f64 / sockets as f64,
    );
    for r in readers {
        r.abort();
    }
}
