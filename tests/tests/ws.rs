//! The WebSocket streams end to end over TLS: a user's socket carries the messages and typing of
//! all its threads and nothing of others (nor of a thread whose `read` it lost), each credential
//! form opens it and bad ones are refused with the right status or close code, revocation closes
//! it, a visitor's socket sees its own thread only, and the limits hold. No timed assertion:
//! waits are bounded and assert what arrived.

use std::time::Duration;

use ama_tests::fixtures::{
    agent_token, create_agent_token, create_thread, post_message as post, put_users, AGENT, ALICE,
    BOB, MALLORY, OWNER,
};
use ama_tests::stack::Stack;
use ama_tests::ws::{is, open, user_socket, Read, BOUND, USER};
use serde_json::{json, Value};

/// A message event with this content, in this thread.
fn message<'a>(tid: &'a str, content: &'static str) -> impl Fn(&Value) -> bool + 'a {
    move |v| {
        v["type"] == "thread_message" && v["thread_id"] == tid && v["event"]["content"] == content
    }
}

fn set_caps(s: &Stack, tid: &str, user: &str, caps: &str) {
    s.cluster
        .psql(
            "postgres",
            &format!(
                "UPDATE ama.participants SET capabilities = '{caps}' \
                  WHERE thread_id = '{tid}' AND actor_id = 'user:{user}'"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_socket_carries_its_threads_and_nothing_else() {
    let s = Stack::start(&["--sse-recheck-secs", "1"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic"), (MALLORY, "basic")]).await;
    let (alice, bob, mallory) = (s.jwt(ALICE), s.jwt(BOB), s.jwt(MALLORY));
    let t1 = create_thread(&s, &alice, &[BOB]).await;
    let t2 = create_thread(&s, &alice, &[MALLORY]).await;
    let t3 = create_thread(&s, &bob, &[MALLORY]).await;

    let mut a = user_socket(&s, &alice).await;
    let mut b = user_socket(&s, &bob).await;
    let mut m = user_socket(&s, &mallory).await;

    // messages of both of Alice's threads, not of Bob and Mallory's
    post(&s, &mallory, &t3, "not for alice").await;
    post(&s, &bob, &t1, "t1 hello").await;
    post(&s, &mallory, &t2, "t2 hello").await;
    a.until(BOUND, message(&t1, "t1 hello")).await;
    if !a.log.iter().any(message(&t2, "t2 hello")) {
        a.until(BOUND, message(&t2, "t2 hello")).await;
    }
    assert!(
        a.log.iter().all(|v| v["thread_id"] != t3.as_str()),
        "{:?}",
        a.log
    );
    // the event is the one polling returns, plus its thread
    let r = s
        .client
        .get(&format!("/api/v1/chat/threads/{t1}/events"), Some(&alice))
        .await;
    assert_eq!(r.json()["events"][0]["content"], "t1 hello");

    // typing crosses to the other participants' sockets, not back to the typist
    b.send(&json!({"type": "typing", "thread_id": t1, "status": "started"}))
        .await;
    let (typing, _) = a.until(BOUND, is("thread_typing")).await;
    assert_eq!(typing["thread_id"], t1.as_str());
    assert_eq!(typing["sender_id"], format!("user:{BOB}"));
    assert_eq!(typing["status"], "started");
    b.send(&json!({"type": "ping", "id": "p1"})).await;
    let (pong, before) = b.until(BOUND, is("pong")).await;
    assert_eq!(pong["id"], "p1");
    assert!(
        before.iter().all(|v| v["type"] != "thread_typing"),
        "{before:?}"
    );

    // a thread whose read Alice lost leaves her socket: no message, no typing of it
    set_caps(&s, &t2, ALICE, "{send}");
    let (left, _) = a
        .until(BOUND, |v| {
            v["type"] == "thread_runtime" && v["change"] == "left"
        })
        .await;
    assert_eq!(left["thread_id"], t2.as_str());
    post(&s, &mallory, &t2, "after leaving").await;
    m.send(&json!({"type": "typing", "thread_id": t2, "status": "started"}))
        .await;
    // Mallory's typing is announced (she may send), and reaches nobody who cannot read t2
    m.send(&json!({"type": "ping"})).await;
    let (_, before) = m.until(BOUND, is("pong")).await;
    assert!(before.iter().all(|v| v["type"] != "error"), "{before:?}");
    post(&s, &bob, &t1, "marker").await;
    let (_, before) = a.until(BOUND, message(&t1, "marker")).await;
    assert!(
        before.iter().all(|v| v["thread_id"] != t2.as_str()),
        "{before:?}"
    );
    // a typing message for a thread not on the socket is refused
    a.send(&json!({"type": "typing", "thread_id": t2, "status": "started"}))
        .await;
    let (e, _) = a.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "not_found");

    // a new thread joins at the next re-check, and carries its messages
    // (private threads are de-duplicated by participants: a new set makes a new thread)
    let t4 = create_thread(&s, &bob, &[ALICE, MALLORY]).await;
    let (joined, _) = a
        .until(BOUND, |v| {
            v["type"] == "thread_runtime" && v["change"] == "joined"
        })
        .await;
    assert_eq!(joined["thread_id"], t4.as_str());
    post(&s, &bob, &t4, "t4 hello").await;
    a.until(BOUND, message(&t4, "t4 hello")).await;

    // a participation-mode change reaches the socket as thread_runtime
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{t1}/mode"),
            Some(&alice),
            &json!({"participation_mode": "invocation_only"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (changed, _) = a
        .until(BOUND, |v| {
            v["type"] == "thread_runtime" && v["change"] == "changed"
        })
        .await;
    assert_eq!(changed["thread_id"], t1.as_str());
    assert_eq!(changed["participation_mode"], "invocation_only");

    // a read-only participant's typing is refused by the database, and nothing is broadcast
    set_caps(&s, &t1, BOB, "{read}");
    b.send(&json!({"type": "typing", "thread_id": t1, "status": "stopped"}))
        .await;
    let (e, _) = b.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "forbidden");
    post(&s, &alice, &t1, "marker 2").await;
    let (_, before) = a.until(BOUND, message(&t1, "marker 2")).await;
    assert!(
        before.iter().all(|v| v["type"] != "thread_typing"),
        "{before:?}"
    );

    // every thread's sequence reached Alice once each, without a gap
    for t in [&t1, &t4] {
        let seqs: Vec<i64> = a
            .log
            .iter()
            .filter(|v| v["type"] == "thread_message" && v["thread_id"] == t.as_str())
            .filter_map(|v| v["thread_seq"].as_i64())
            .collect();
        assert!(!seqs.is_empty(), "{t}");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{t}: {seqs:?}");
    }
    // nothing of t2 after Alice lost read there
    let left_at = a
        .log
        .iter()
        .position(|v| v["type"] == "thread_runtime" && v["change"] == "left")
        .expect("left");
    assert!(
        a.log[left_at + 1..]
            .iter()
            .all(|v| v["thread_id"] != t2.as_str()),
        "{:?}",
        a.log
    );
    // the URL, the subprotocol and the tokens never reach the log
    assert!(!s.logs().contains(&alice));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_credential_form_opens_and_bad_ones_are_refused() {
    let s = Stack::start(&[
        "--ws-auth-timeout-secs",
        "1",
        "--ws-max-per-user",
        "3",
        "--ws-max-message-bytes",
        "512",
    ]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let alice = s.jwt(ALICE);
    let bad = format!("{}x", s.jwt(BOB));

    // header
    let mut header = user_socket(&s, &alice).await;
    // subprotocol: ama.v1 is echoed, never the token
    let proto = format!("ama.v1, bearer.{alice}");
    let mut w = open(&s.client, USER, &[("sec-websocket-protocol", &proto)])
        .await
        .socket();
    assert_eq!(w.protocol.as_deref(), Some("ama.v1"));
    w.until(BOUND, is("ready")).await;
    // ?token= (compatibility)
    let mut q = open(&s.client, &format!("{USER}?token={alice}"), &[])
        .await
        .socket();
    q.until(BOUND, is("ready")).await;
    // the per-user limit (3) is reached: a fourth is refused before the upgrade
    let (status, body) = open(
        &s.client,
        USER,
        &[("authorization", &format!("Bearer {alice}"))],
    )
    .await
    .status();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "RATE_LIMITED");
    drop(q);
    drop(w);
    // a first auth message (once a slot came back)
    let mut first = None;
    for _ in 0..50 {
        let mut f = open(&s.client, USER, &[]).await.socket();
        f.send(&json!({"type": "auth", "token": alice})).await;
        match f.read(BOUND).await {
            Read::Event(v) if v["type"] == "ready" => {
                first = Some(f);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut first = first.expect("a first-message socket opened");
    first.send(&json!({"type": "ping"})).await;
    first.until(BOUND, is("pong")).await;

    // bad credentials in the request: 401 envelopes before any upgrade
    for (path, headers) in [
        (
            USER.to_string(),
            vec![("authorization", format!("Bearer {bad}"))],
        ),
        (
            USER.to_string(),
            vec![("sec-websocket-protocol", format!("ama.v1, bearer.{bad}"))],
        ),
        (format!("{USER}?token={bad}"), vec![]),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = open(&s.client, &path, &h).await.status();
        assert_eq!(status, 401, "{path} {headers:?}: {body}");
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
    // a bad first message, and none at all, close with 4401
    let mut f = open(&s.client, USER, &[]).await.socket();
    f.send(&json!({"type": "auth", "token": bad})).await;
    assert_eq!(f.closed(BOUND).await.0, Some(4401));
    let mut f = open(&s.client, USER, &[]).await.socket();
    assert_eq!(
        f.closed(BOUND).await.0,
        Some(4401),
        "no auth message in time"
    );

    // unknown and malformed messages get an error event; going on closes with 1008
    header.send(&json!({"type": "subscribe"})).await;
    let (e, _) = header.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "unknown_type");
    for _ in 0..20 {
        if header.send_text("not json".into()).await.is_err() {
            break;
        }
    }
    assert_eq!(header.closed(BOUND).await.0, Some(1008));
    // a message over the size limit closes with 1009
    let _ = first
        .send_text(format!(
            "{{\"type\":\"ping\",\"id\":\"{}\"}}",
            "x".repeat(600)
        ))
        .await;
    assert_eq!(first.closed(BOUND).await.0, Some(1009));
    assert!(!s.logs().contains(&alice), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_the_agent_token_closes_its_socket() {
    let s = Stack::start(&["--sse-recheck-secs", "1"]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let t = create_agent_token(&s, OWNER, &json!({"agent_actor_id": AGENT})).await;
    let (raw, token_id) = (
        t["raw_token"].as_str().unwrap().to_string(),
        t["token_id"].as_str().unwrap().to_string(),
    );
    let _ = agent_token;
    let tid = create_thread(&s, &raw, &[ALICE]).await;
    let mut w = user_socket(&s, &raw).await;
    post(&s, &s.jwt(ALICE), &tid, "to the agent").await;
    w.until(BOUND, message(&tid, "to the agent")).await;
    let r = s
        .client
        .send(
            "DELETE",
            &format!("/api/v1/owner/external-agents/tokens/{token_id}"),
            &[("authorization", &format!("Bearer {}", s.jwt(OWNER)))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // within the re-check period (1 s), bounded by BOUND
    let (code, _) = w.closed(BOUND).await;
    assert_eq!(code, Some(4401));
    let auth = format!("Bearer {raw}");
    let (status, _) = open(&s.client, USER, &[("authorization", &auth)])
        .await
        .status();
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitor_socket_sees_only_its_own_thread() {
    let s = Stack::start(&[]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic")]).await;
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&s.jwt(OWNER)),
            &json!({"custom_slug": "ws-bot"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let mut visitors = Vec::new();
    for email in ["one@example.org", "two@example.org"] {
        let r = s
            .client
            .json(
                "POST",
                "/api/v1/public/agents/ws-bot/messages",
                None,
                &json!({"email": email, "content": "hello"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let v = r.json();
        visitors.push((
            v["visitor_token"].as_str().unwrap().to_string(),
            v["thread_id"].as_str().unwrap().to_string(),
        ));
    }
    let ((tok1, th1), (tok2, th2)) = (visitors[0].clone(), visitors[1].clone());
    let path = |slug: &str, t: &str| format!("/api/v1/chat/ws/public/{slug}/threads/{t}");
    let mut w = open(
        &s.client,
        &path("ws-bot", &th1),
        &[("authorization", &format!("Bearer {tok1}"))],
    )
    .await
    .socket();
    w.until(BOUND, is("ready")).await;
    let send = |tok: String, content: &'static str| {
        let c = s.client.clone();
        async move {
            let r = c
                .json(
                    "POST",
                    "/api/v1/public/agents/ws-bot/messages",
                    Some(&tok),
                    &json!({ "content": content }),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.json());
        }
    };
    send(tok2.clone(), "from two").await;
    send(tok1.clone(), "from one").await;
    let (_, before) = w.until(BOUND, message(&th1, "from one")).await;
    assert!(
        before.iter().all(|v| v["thread_id"] != th2.as_str()),
        "{before:?}"
    );
    // typing is not a visitor's
    w.send(&json!({"type": "typing", "thread_id": th1, "status": "started"}))
        .await;
    let (e, _) = w.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "unknown_type");

    // a token for another thread, a wrong slug, a JWT: refused before the upgrade
    let alice = format!("Bearer {}", s.jwt(ALICE));
    let bearer1 = format!("Bearer {tok1}");
    for (p, auth, want) in [
        (path("ws-bot", &th2), Some(bearer1.as_str()), 404),
        (path("other-bot", &th1), Some(bearer1.as_str()), 404),
        (path("ws-bot", &th1), Some(alice.as_str()), 403),
    ] {
        let h: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, body) = open(&s.client, &p, &h).await.status();
        assert_eq!(status, want, "{p}: {body}");
    }
    // the subprotocol form works for visitors too
    let proto = format!("ama.v1, bearer.{tok2}");
    let mut w2 = open(
        &s.client,
        &path("ws-bot", &th2),
        &[("sec-websocket-protocol", &proto)],
    )
    .await
    .socket();
    w2.until(BOUND, is("ready")).await;
    assert!(!s.logs().contains(&tok1));
}

/// `ama_shim_ws_closed_total{reason="<reason>"}` from /metrics.
async fn ws_closed(s: &Stack, reason: &str) -> u64 {
    let r = s.client.get("/metrics", None).await;
    let prefix = format!("ama_shim_ws_closed_total{{reason=\"{reason}\"}} ");
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_does_not_read_is_disconnected() {
    let s = Stack::start(&["--ws-send-queue", "2"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let mut w = user_socket(&s, &s.jwt(ALICE)).await;
    // pings whose pongs the client never reads: once the connection's buffers are full, the
    // socket's queue fills, and the shim drops the socket instead of buffering
    let ping = json!({"type": "ping", "id": "x".repeat(64)}).to_string();
    let mut dropped = false;
    for i in 0..2_000_000u32 {
        if w.send_text(ping.clone()).await.is_err() {
            break;
        }
        if i % 20_000 == 19_999 && ws_closed(&s, "slow consumer").await > 0 {
            dropped = true;
            break;
        }
    }
    for _ in 0..50 {
        if dropped {
            break;
        }
        dropped = ws_closed(&s, "slow consumer").await > 0;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dropped, "the slow consumer was not disconnected");
    // what was queued before comes through, then the end (1008, or the connection just ends)
    let mut end = None;
    for _ in 0..5_000_000 {
        match w.read(BOUND).await {
            Read::Event(_) => continue,
            Read::Closed(c) => {
                end = Some(c);
                break;
            }
            Read::Nothing => break,
        }
    }
    assert!(matches!(end, Some(1008 | 1006)), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_limited_per_client_address() {
    // (a long auth timeout: the waiting socket below holds its slot for the whole test)
    let s = Stack::start(&["--ws-max-per-ip", "2", "--ws-auth-timeout-secs", "600"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let _one = user_socket(&s, &s.jwt(ALICE)).await;
    // counted from the upgrade, before any credential: a socket waiting for its auth message
    let _two = open(&s.client, USER, &[]).await.socket();
    let auth = format!("Bearer {}", s.jwt(BOB));
    let (status, body) = open(&s.client, USER, &[("authorization", &auth)])
        .await
        .status();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(ws_closed(&s, "ip_limit").await >= 1);
    // a slot comes back when a socket ends
    drop(_one);
    let mut opened = false;
    for _ in 0..50 {
        if let ama_tests::ws::Opened::Socket(_) =
            open(&s.client, USER, &[("authorization", &auth)]).await
        {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opened, "the freed slot was not given back");
}
