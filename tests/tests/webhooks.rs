//! Webhooks end to end over TLS (issue 14): registration through the API (the secret once), a
//! local HTTPS receiver that checks every delivery's signature with its own HMAC-SHA256 (written
//! here from the definition over `sha2`, not the `hmac` crate the product uses), the body equal to
//! the event polling returns, retries and the deactivation after 10 consecutive failures, the SSRF
//! guard (a name resolving to 127.0.0.1, IP literals in blocked ranges, a redirect not followed),
//! a server without a webhook key, and two claims that never return the same delivery.

use std::time::Duration;

use ama_tests::cluster::AUTHENTICATOR;
use ama_tests::fixtures::{create_thread, post_message as send, put_users, ALICE, OWNER};
use ama_tests::receiver::{Hit, Receiver};
use ama_tests::stack::Stack;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 from RFC 2104, over sha2 (independent of the product's `hmac` crate).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Verifies a delivery as a Standard Webhooks receiver would.
fn verify(secret: &str, hit: &Hit) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64");
    let (id, ts) = (
        &hit.headers["webhook-id"],
        &hit.headers["webhook-timestamp"],
    );
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(&hit.body);
    let expected = format!("v1,{}", B64.encode(hmac_sha256(&key, &msg)));
    hit.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

#[test]
fn the_independent_hmac_matches_the_published_vector() {
    let hit = Hit {
        method: "POST".into(),
        path: "/".into(),
        headers: [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        body: br#"{"test": 2432232314}"#.to_vec(),
    };
    assert!(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &hit));
    assert!(!verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", &hit));
}

fn hooks(tid: &str) -> String {
    format!("/api/v1/chat/threads/{tid}/webhooks")
}

async fn register(s: &Stack, jwt: &str, tid: &str, url: &str) -> (u16, Value) {
    let r = s
        .client
        .json(
            "POST",
            &hooks(tid),
            Some(jwt),
            &json!({"callback_url": url}),
        )
        .await;
    (r.status, r.json())
}

async fn list(s: &Stack, jwt: &str, tid: &str) -> Vec<Value> {
    let r = s.client.get(&hooks(tid), Some(jwt)).await;
    assert_eq!(r.status, 200, "list: {:?}", r.json());
    r.json()["webhooks"].as_array().cloned().unwrap_or_default()
}

/// Polls `f` every 100 ms for up to `secs` seconds; whether it held.
async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits (up to `secs` seconds) until the listed subscription `sid` satisfies `pred`; returns it.
async fn wait_for(
    s: &Stack,
    jwt: &str,
    tid: &str,
    sid: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < until {
        if let Some(w) = list(s, jwt, tid)
            .await
            .into_iter()
            .find(|w| w["subscription_id"] == sid)
        {
            if pred(&w) {
                return w;
            }
            last = w;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "subscription {sid} never reached the expected state; last: {last}\n{}",
        s.logs()
    );
}

fn flags(r: &Receiver, allow_private: bool) -> Vec<String> {
    let mut f = vec![
        "--webhook-ca-file".to_string(),
        r.ca_file.display().to_string(),
        "--webhook-workers".to_string(),
        "4".to_string(),
    ];
    if allow_private {
        f.push("--webhook-allow-private-networks".to_string());
    }
    f
}

fn start(flags: &[String]) -> Stack {
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    Stack::start(&refs)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_deliveries_reach_every_active_subscription_once() {
    let r = Receiver::start(200).await;
    let s = start(&flags(&r, true));
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let (owner, alice) = (s.jwt(OWNER), s.jwt(ALICE));
    let tid = create_thread(&s, &owner, &[ALICE]).await;

    let (st, a) = register(&s, &owner, &tid, &r.url("/a")).await;
    assert_eq!(st, 201, "{a}");
    let (st, b) = register(&s, &owner, &tid, &r.url("/b")).await;
    assert_eq!(st, 201, "{b}");
    let (st, gone) = register(&s, &owner, &tid, &r.url("/gone")).await;
    assert_eq!(st, 201, "{gone}");
    for v in [&a, &b] {
        assert_eq!(v["active"], true);
        assert_eq!(v["thread_id"], tid.as_str());
        assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    }
    let d = s
        .client
        .json(
            "DELETE",
            &format!(
                "{}/{}",
                hooks(&tid),
                gone["subscription_id"].as_str().unwrap()
            ),
            Some(&owner),
            &json!({}),
        )
        .await;
    assert_eq!(d.status, 200, "{:?}", d.json());
    let (st, refused) = register(&s, &alice, &tid, &r.url("/alice")).await;
    assert_eq!(
        (st, refused["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "a participant without manage"
    );
    let listed = list(&s, &owner, &tid).await;
    assert_eq!(listed.len(), 2);
    assert!(
        !serde_json::to_string(&listed).unwrap().contains("whsec_"),
        "the list never shows a secret"
    );

    send(&s, &alice, &tid, "hello hooks").await;
    for v in [&a, &b] {
        let sid = v["subscription_id"].as_str().unwrap();
        wait_for(&s, &owner, &tid, sid, 30, |w| {
            w["last_status"] == 200 && w["next_attempt_at"].is_null()
        })
        .await;
    }
    let hits = r.hits();
    assert_eq!(
        hits.len(),
        2,
        "exactly one delivery per active subscription: {hits:?}"
    );
    let poll = s
        .client
        .get(
            &format!("/api/v1/chat/threads/{tid}/events?after_seq=0"),
            Some(&owner),
        )
        .await;
    let poll_text = String::from_utf8_lossy(&poll.body).to_string();
    let event = &poll.json()["events"][0];
    for (v, path) in [(&a, "/a"), (&b, "/b")] {
        let hit = hits
            .iter()
            .find(|h| h.path == path)
            .expect("a delivery for each subscription");
        assert_eq!(hit.method, "POST");
        assert!(
            verify(v["secret"].as_str().unwrap(), hit),
            "signature verifies: {:?}",
            hit.headers
        );
        let other = if path == "/a" { &b } else { &a };
        assert!(
            !verify(other["secret"].as_str().unwrap(), hit),
            "each subscription has its own secret"
        );
        let body = String::from_utf8(hit.body.clone()).unwrap();
        assert!(
            poll_text.contains(&body),
            "the body is the polled event byte for byte:\n{body}\n{poll_text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), *event);
        assert_eq!(hit.headers["content-type"], "application/json");
        assert!(hit.headers["webhook-timestamp"].parse::<i64>().unwrap() > 1_700_000_000);
    }
    assert_ne!(hits[0].headers["webhook-id"], hits[1].headers["webhook-id"]);
    let logs = s.logs();
    for v in [&a, &b] {
        assert!(
            !logs.contains(v["secret"].as_str().unwrap()),
            "no secret in the logs"
        );
    }
    for h in &hits {
        assert!(
            !logs.contains(&h.headers["webhook-signature"]),
            "no signature in the logs"
        );
    }
    // a dump has the sealed secrets and neither a secret nor the key that opens them
    let key = s
        .cluster
        .psql("postgres", "SHOW ama.webhook_secret_key")
        .expect("key");
    assert_eq!(key.trim().len(), 64);
    let dump = std::process::Command::new(
        ama_tests::cluster::bindir()
            .expect("bindir")
            .join("pg_dump"),
    )
    .envs(s.cluster.env())
    .env_remove("PGPASSWORD")
    .output()
    .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("webhook_secrets"),
        "the sealed secrets are in the dump"
    );
    assert!(!dump.contains(key.trim()), "the key is not in the dump");
    for v in [&a, &b] {
        let secret = v["secret"].as_str().unwrap();
        let raw = B64.decode(&secret[6..]).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(&secret[6..]) && !dump.contains(&hex),
            "no secret in the dump"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_then_deactivated_and_audited() {
    let r = Receiver::start(500).await;
    let s = start(&flags(&r, true));
    for sql in [
        "ALTER SYSTEM SET ama.webhook_backoff_base_ms = 20",
        "ALTER SYSTEM SET ama.webhook_backoff_cap_ms = 100",
        "SELECT pg_reload_conf()",
    ] {
        s.cluster.psql("postgres", sql).expect("backoff settings");
    }
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    let (st, v) = register(&s, &owner, &tid, &r.url("/fail")).await;
    assert_eq!(st, 201, "{v}");
    let sid = v["subscription_id"].as_str().unwrap().to_string();
    send(&s, &owner, &tid, "nobody home").await;
    let w = wait_for(&s, &owner, &tid, &sid, 90, |w| w["active"] == false).await;
    assert_eq!(w["consecutive_failures"], 10, "{w}");
    assert_eq!(w["last_status"], 500, "{w}");
    assert!(w["deactivated_at"].is_string(), "{w}");
    let hits = r.hits();
    assert_eq!(hits.len(), 10, "ten attempts, then no more");
    assert!(
        hits.iter()
            .all(|h| h.headers["webhook-id"] == hits[0].headers["webhook-id"]),
        "a retry keeps its webhook-id"
    );
    assert!(
        hits.iter()
            .all(|h| verify(v["secret"].as_str().unwrap(), h)),
        "every retry is signed afresh"
    );
    let audited = s
        .cluster
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM ama.audit_log WHERE event = 'webhook_deactivated' AND subject = '{sid}'"),
        )
        .expect("audit");
    assert_eq!(audited.trim(), "1");
    send(&s, &owner, &tid, "after deactivation").await;
    let queued = s
        .cluster
        .psql("postgres", &format!("SELECT count(*) FROM ama.webhook_deliveries WHERE subscription_id = '{sid}' AND state = 'pending'"))
        .expect("outbox");
    assert_eq!(
        queued.trim(),
        "0",
        "an inactive subscription gets no delivery"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ssrf_guard_refuses_blocked_addresses_and_a_server_without_a_key_stores_nothing() {
    let r = Receiver::start(200).await;
    // the guard on: the receiver's certificate is trusted, its address is not
    let s = start(&flags(&r, false));
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    let port = r.port;
    for url in [
        format!("https://127.0.0.1:{port}/"),
        "https://10.0.0.1/".into(),
        "https://100.64.0.1/".into(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://172.16.0.1/".into(),
        "https://192.168.1.1/".into(),
        "https://0.0.0.0/".into(),
        "https://224.0.0.1/".into(),
        "https://240.0.0.1/".into(),
        "https://198.18.0.1/".into(),
        format!("https://[::1]:{port}/"),
        "https://[::]/".into(),
        "https://[::ffff:127.0.0.1]/".into(),
        "https://[64:ff9b::a9fe:a9fe]/".into(),
        "https://[2002:7f00:1::]/".into(),
        "https://[fd00::1]/".into(),
        "https://[fe80::1]/".into(),
        "https://[ff02::1]/".into(),
        "http://hooks.example.com/".into(),
        "https://user:pw@hooks.example.com/".into(),
    ] {
        let (st, body) = register(&s, &owner, &tid, &url).await;
        assert_eq!(
            (st, body["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{url}: {body}"
        );
    }
    // a name that resolves to 127.0.0.1: registered, refused at delivery, nothing connects
    let (st, v) = register(&s, &owner, &tid, &r.url("/ssrf")).await;
    assert_eq!(st, 201, "{v}");
    let sid = v["subscription_id"].as_str().unwrap().to_string();
    send(&s, &owner, &tid, "to localhost").await;
    let w = wait_for(&s, &owner, &tid, &sid, 30, |w| {
        w["consecutive_failures"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(
        w["last_status"], 0,
        "no answer: the guard refused the address"
    );
    assert_eq!(r.connections(), 0, "no connection reached the receiver");
    assert!(
        s.logs().contains("resolves to no allowed address"),
        "the refusal is logged"
    );

    // without a key on the server, registration answers 503 and stores nothing
    for sql in [
        "ALTER SYSTEM SET ama.webhook_secret_key = ''",
        "SELECT pg_reload_conf()",
    ] {
        s.cluster.psql("postgres", sql).expect("drop the key");
    }
    let stored = || {
        s.cluster
            .psql("postgres", "SELECT count(*) FROM ama.webhook_subscriptions")
            .expect("count")
    };
    let before = stored();
    let unavailable = eventually(10, || async {
        register(&s, &owner, &tid, "https://hooks.example.com/nokey")
            .await
            .0
            == 503
    })
    .await;
    assert!(unavailable, "no key: 503");
    assert_eq!(stored(), before, "nothing stored without a key");
    for sql in [
        "ALTER SYSTEM RESET ama.webhook_secret_key",
        "SELECT pg_reload_conf()",
    ] {
        s.cluster.psql("postgres", sql).expect("restore the key");
    }
    let back = eventually(10, || async {
        register(&s, &owner, &tid, "https://hooks.example.com/key")
            .await
            .0
            == 201
    })
    .await;
    assert!(back, "the key back: 201");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_followed() {
    let target = Receiver::start(200).await;
    let r = Receiver::start(302).await;
    r.answer(302, &target.url("/stolen"));
    let s = start(&flags(&r, true));
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    let (st, v) = register(&s, &owner, &tid, &r.url("/redirect")).await;
    assert_eq!(st, 201, "{v}");
    let sid = v["subscription_id"].as_str().unwrap().to_string();
    send(&s, &owner, &tid, "redirect me").await;
    let w = wait_for(&s, &owner, &tid, &sid, 30, |w| w["last_status"] == 302).await;
    assert!(
        w["consecutive_failures"].as_i64() >= Some(1),
        "a 3xx is a failure: {w}"
    );
    assert!(!r.hits().is_empty());
    assert_eq!(
        target.connections(),
        0,
        "the redirect target received nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_claims_never_return_the_same_delivery() {
    let r = Receiver::start(200).await;
    // no deliverer in the shim: the test claims as the shim's login itself
    let s = Stack::start(&["--webhook-workers", "0"]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    for p in ["/one", "/two"] {
        assert_eq!(register(&s, &owner, &tid, &r.url(p)).await.0, 201);
    }
    send(&s, &owner, &tid, "first").await;
    send(&s, &owner, &tid, "second").await;
    let mut c1 = s.cluster.connect(AUTHENTICATOR).await;
    let c2 = s.cluster.connect(AUTHENTICATOR).await;
    let claim = "SELECT delivery_id::text, subscription_id::text FROM ama.webhook_claim($1)";
    let t1 = c1.transaction().await.expect("begin");
    let first = t1.query(claim, &[&1i32]).await.expect("claim 1");
    assert_eq!(first.len(), 1);
    // the other claimer skips the locked subscription at once and takes the other one
    let second = tokio::time::timeout(Duration::from_secs(5), c2.query(claim, &[&10i32]))
        .await
        .expect("SKIP LOCKED: the second claim does not wait")
        .expect("claim 2");
    assert_eq!(second.len(), 1, "one delivery of the other subscription");
    let (d1, s1): (String, String) = (first[0].get(0), first[0].get(1));
    let (d2, s2): (String, String) = (second[0].get(0), second[0].get(1));
    assert_ne!(d1, d2);
    assert_ne!(s1, s2);
    t1.commit().await.expect("commit");
    let third = c2.query(claim, &[&10i32]).await.expect("claim 3");
    assert!(
        third.is_empty(),
        "both subscriptions have a delivery in flight: nothing more to claim"
    );
    // the first delivery reported: the next message of that subscription is claimable
    let done: bool = c2
        .query_one(
            "SELECT ama.webhook_report($1::text::uuid, 200, true)",
            &[&d1],
        )
        .await
        .expect("report")
        .get(0);
    assert!(done);
    let next = c2.query(claim, &[&10i32]).await.expect("claim 4");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].get::<_, String>(1), s1);
    assert_ne!(next[0].get::<_, String>(0), d1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_shims_share_the_deliveries_without_sending_one_twice() {
    let r = Receiver::start(200).await;
    let f = flags(&r, true);
    let s = start(&f);
    let refs: Vec<&str> = f.iter().map(String::as_str).collect();
    let _other = s.another_shim(&refs);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    let mut sids = Vec::new();
    for i in 0..6 {
        let (st, v) = register(&s, &owner, &tid, &r.url(&format!("/{i}"))).await;
        assert_eq!(st, 201, "{v}");
        sids.push(v["subscription_id"].as_str().unwrap().to_string());
    }
    for i in 0..5 {
        send(&s, &owner, &tid, &format!("m{i}")).await;
    }
    for sid in &sids {
        wait_for(&s, &owner, &tid, sid, 60, |w| {
            w["last_status"] == 200 && w["next_attempt_at"].is_null()
        })
        .await;
    }
    let hits = r.hits();
    let distinct: std::collections::BTreeSet<(String, String)> = hits
        .iter()
        .map(|h| (h.path.clone(), h.headers["webhook-id"].clone()))
        .collect();
    assert_eq!(hits.len(), 30, "6 subscriptions x 5 messages, each once");
    assert_eq!(distinct.len(), 30);
    // per subscription, the messages arrive in order
    for i in 0..6 {
        let seqs: Vec<i64> = hits
            .iter()
            .filter(|h| h.path == format!("/{i}"))
            .map(|h| {
                serde_json::from_slice::<Value>(&h.body).unwrap()["thread_seq"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "subscription {i} got its messages in order");
    }
}

/// Figures, not a test (`cargo test -p ama-tests --test webhooks -- --ignored --nocapture`):
/// deliveries per second to a local receiver with 4 workers, and message sends per second with
/// no subscription against a subscription whose receiver is dead (connection refused).
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn fanout_figures() {
    let r = Receiver::start(200).await;
    let s = start(&flags(&r, true));
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let owner = s.jwt(OWNER);
    let tid = create_thread(&s, &owner, &[ALICE]).await;
    for i in 0..10 {
        assert_eq!(
            register(&s, &owner, &tid, &r.url(&format!("/{i}"))).await.0,
            201
        );
    }
    let (messages, subs) = (60usize, 10usize);
    let t0 = std::time::Instant::now();
    for i in 0..messages {
        send(&s, &owner, &tid, &format!("m{i}")).await;
    }
    let sent = t0.elapsed();
    assert!(eventually(300, || async { r.hits().len() >= messages * subs }).await);
    let all = t0.elapsed();
    println!(
        "fan-out: {} deliveries in {:.2} s = {:.0}/s (sends took {:.2} s)",
        messages * subs,
        all.as_secs_f64(),
        (messages * subs) as f64 / all.as_secs_f64(),
        sent.as_secs_f64()
    );
    // sends with and without a dead receiver's subscription, alternating
    let quiet = create_thread(&s, &owner, &[ALICE]).await;
    let dead_thread = {
        let t = s
            .client
            .json(
                "POST",
                "/api/v1/chat/threads",
                Some(&owner),
                &json!({"target_user_ids": [ALICE, OWNER2_SEED]}),
            )
            .await;
        t.json()["thread_id"].as_str().unwrap().to_string()
    };
    let dead = Receiver::start(200).await;
    let dead_url = dead.url("/dead");
    drop(dead);
    assert_eq!(register(&s, &owner, &dead_thread, &dead_url).await.0, 201);
    for round in 0..3 {
        for (name, t) in [("no subscription", &quiet), ("dead receiver", &dead_thread)] {
            let t0 = std::time::Instant::now();
            for i in 0..100 {
                // system messages: the internal limit (6,000 a minute), not a user's 120
                let r = s
                    .client
                    .send(
                        "POST",
                        &format!("/internal/v1/threads/{t}/system-messages"),
                        &[
                            ("x-internal-api-key", s.internal_key.as_str()),
                            ("content-type", "application/json"),
                        ],
                        Some(
                            &serde_json::to_vec(&json!({"content": format!("r{round} {i}")}))
                                .unwrap(),
                        ),
                    )
                    .await
                    .expect("send");
                assert_eq!(r.status, 200, "{:?}", r.json());
            }
            println!(
                "round {round}, {name}: {:.0} sends/s",
                100.0 / t0.elapsed().as_secs_f64()
            );
        }
    }
}

const OWNER2_SEED: &str = ama_tests::fixtures::OWNER2;
