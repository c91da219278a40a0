//! Attacks on the WebSocket streams, run live against a shim: malformed and smuggled upgrades,
//! credentials of the wrong kind, principal switching after the upgrade, typing and focus
//! abuse, raw protocol violations, slot release, token expiry, and tokens in the log. Every wait
//! is bounded and asserts what arrived; no timed assertion.

use std::time::Duration;

use ama_tests::client::{tls_config, Client};
use ama_tests::fixtures::{create_thread, jwt_with, now_secs, post_message as post, put_users};
use ama_tests::fixtures::{ALICE, BOB, MALLORY};
use ama_tests::stack::Stack;
use ama_tests::ws::{is, open, user_socket, Read, BOUND, USER};
use rustls_pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A raw TLS connection speaking HTTP/1.1.
async fn raw(s: &Stack) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(&s.client.addr).await.expect("connect");
    TlsConnector::from(tls_config(&s.cert_pem, &[b"http/1.1"]))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS")
}

/// Reads a response head (up to the blank line) within the bound; empty if the connection ended
/// or nothing came.
async fn head(c: &mut TlsStream<TcpStream>) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    let deadline = tokio::time::Instant::now() + BOUND;
    while !buf.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, c.read(&mut b)).await {
            Ok(Ok(1)) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends a raw request head and returns the response status and head.
async fn raw_request(s: &Stack, lines: &[String]) -> (u16, String) {
    let mut c = raw(s).await;
    let req = format!("{}\r\n\r\n", lines.join("\r\n"));
    c.write_all(req.as_bytes()).await.expect("write");
    let h = head(&mut c).await;
    let status = h
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, h)
}

fn upgrade_lines(path: &str, extra: &[&str]) -> Vec<String> {
    let mut l = vec![
        format!("GET {path} HTTP/1.1"),
        "Host: localhost".to_string(),
        "Upgrade: websocket".to_string(),
        "Connection: Upgrade".to_string(),
    ];
    l.extend(extra.iter().map(|s| s.to_string()));
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_cross_kind_upgrades_are_clean_refusals() {
    let s = Stack::start(&[]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let alice = s.jwt(ALICE);
    let bearer = format!("Authorization: Bearer {alice}");
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

    // no version, a wrong version, no key, no upgrade headers: 4xx, never 101 or a hang
    let cases: Vec<(Vec<String>, u16)> = vec![
        (upgrade_lines(USER, &[&bearer, key]), 426),
        (
            upgrade_lines(USER, &[&bearer, key, "Sec-WebSocket-Version: 8"]),
            426,
        ),
        (
            upgrade_lines(USER, &[&bearer, "Sec-WebSocket-Version: 13"]),
            400,
        ),
        (
            vec![
                format!("GET {USER} HTTP/1.1"),
                "Host: localhost".into(),
                bearer.clone(),
            ],
            400,
        ),
        // HTTP/1.0 cannot upgrade
        (
            {
                let mut l = upgrade_lines(USER, &[&bearer, key, "Sec-WebSocket-Version: 13"]);
                l[0] = format!("GET {USER} HTTP/1.0");
                l
            },
            400,
        ),
        // a bearer subprotocol without ama.v1, and two bearer entries
        (
            upgrade_lines(
                USER,
                &[
                    key,
                    "Sec-WebSocket-Version: 13",
                    &format!("Sec-WebSocket-Protocol: bearer.{alice}"),
                ],
            ),
            400,
        ),
        (
            upgrade_lines(
                USER,
                &[
                    key,
                    "Sec-WebSocket-Version: 13",
                    &format!("Sec-WebSocket-Protocol: ama.v1, bearer.{alice}, bearer.{alice}"),
                ],
            ),
            401,
        ),
        // the credential twice, in two forms
        (
            upgrade_lines(
                &format!("{USER}?token={alice}"),
                &[key, "Sec-WebSocket-Version: 13", &bearer],
            ),
            400,
        ),
        // the internal key on the user stream
        (
            upgrade_lines(
                USER,
                &[
                    key,
                    "Sec-WebSocket-Version: 13",
                    &format!("X-Internal-Api-Key: {}", s.internal_key),
                ],
            ),
            403,
        ),
        // a user JWT on a visitor's public stream
        (
            upgrade_lines(
                "/api/v1/chat/ws/public/nobody-bot/threads/00000000-0000-4000-8000-000000000000",
                &[key, "Sec-WebSocket-Version: 13", &bearer],
            ),
            0,
        ),
    ];
    for (lines, want) in cases {
        let (status, h) = raw_request(&s, &lines).await;
        assert!(
            (400..500).contains(&status),
            "{lines:?}: want a 4xx, got {h:?}"
        );
        if want != 0 {
            assert_eq!(status, want, "{lines:?}: {h}");
        }
    }

    // permessage-deflate is never negotiated
    let (status, h) = raw_request(
        &s,
        &upgrade_lines(
            USER,
            &[
                &bearer,
                key,
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            ],
        ),
    )
    .await;
    assert_eq!(status, 101, "{h}");
    assert!(
        !h.to_ascii_lowercase().contains("sec-websocket-extensions"),
        "{h}"
    );

    // over HTTP/2 the route is a plain GET and refused
    let h2 = Client::new_h2(&s.client.addr, &s.cert_pem);
    let r = h2.get(USER, Some(&alice)).await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    // the shim is still serving
    let mut w = user_socket(&s, &alice).await;
    w.send(&json!({"type": "ping"})).await;
    w.until(BOUND, is("pong")).await;
}

/// Writes one masked client frame.
async fn frame(c: &mut TlsStream<TcpStream>, fin: bool, opcode: u8, payload: &[u8]) {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    }
    let mask = [1u8, 2, 3, 4];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let _ = c.write_all(&f).await;
}

/// Reads until the connection ends or a close frame arrives; true if it did within the bound.
/// The server's frames are parsed (unmasked), so a payload byte is never taken for a close.
async fn ends(c: &mut TlsStream<TcpStream>) -> bool {
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut acc: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => acc.extend_from_slice(&buf[..n]),
        }
        // walk the complete frames
        loop {
            if acc.len() < 2 {
                break;
            }
            let opcode = acc[0] & 0x0f;
            let (len, at) = match acc[1] & 0x7f {
                126 if acc.len() >= 4 => (u16::from_be_bytes([acc[2], acc[3]]) as usize, 4),
                127 if acc.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&acc[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                l => (l as usize, 2),
            };
            if opcode == 0x8 {
                return true;
            }
            if acc.len() < at + len {
                break;
            }
            acc.drain(..at + len);
        }
    }
}

async fn raw_socket(s: &Stack, jwt: &str) -> TlsStream<TcpStream> {
    let mut c = raw(s).await;
    let req = format!(
        "{}\r\n\r\n",
        upgrade_lines(
            USER,
            &[
                &format!("Authorization: Bearer {jwt}"),
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
            ],
        )
        .join("\r\n")
    );
    c.write_all(req.as_bytes()).await.expect("write");
    let h = head(&mut c).await;
    assert!(h.starts_with("HTTP/1.1 101"), "{h}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_violations_close_the_socket_and_nothing_else() {
    let s = Stack::start(&["--ws-max-message-bytes", "4096"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let alice = s.jwt(ALICE);

    // a ping whose payload is over 125 bytes
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, true, 0x9, &[b'p'; 200]).await;
    assert!(ends(&mut c).await, "an oversized control frame");
    // a fragmented control frame
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, false, 0x9, b"x").await;
    assert!(ends(&mut c).await, "a fragmented ping");
    // a reserved opcode, and an RSV bit (no extension negotiated)
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, true, 0x3, b"x").await;
    assert!(ends(&mut c).await, "a reserved opcode");
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, true, 0x40 | 0x1, b"{}").await;
    assert!(ends(&mut c).await, "a compressed frame");
    // a continuation with no message started
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, true, 0x0, b"x").await;
    assert!(ends(&mut c).await, "a stray continuation");
    // a message in many tiny fragments whose total is over the limit
    let mut c = raw_socket(&s, &alice).await;
    frame(&mut c, false, 0x1, b"{").await;
    for _ in 0..5000 {
        frame(&mut c, false, 0x0, b" ").await;
    }
    assert!(ends(&mut c).await, "fragments over the message limit");
    // an unmasked client frame
    let mut c = raw_socket(&s, &alice).await;
    let _ = c.write_all(&[0x81, 0x02, b'{', b'}']).await;
    assert!(ends(&mut c).await, "an unmasked frame");

    // tiny fragments under the limit still make a message, and binary frames are refused
    let mut w = user_socket(&s, &alice).await;
    w.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1u8, 2, 3,
    ]))
    .await
    .expect("send");
    let (e, _) = w.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "bad_message");
    // a ping flood is answered and the socket stays usable
    for _ in 0..500 {
        w.ws.send(tokio_tungstenite::tungstenite::Message::Ping(
            vec![7u8; 125].into(),
        ))
        .await
        .expect("ping");
    }
    w.send(&json!({"type": "ping", "id": "after"})).await;
    let (p, _) = w.until(BOUND, is("pong")).await;
    assert_eq!(p["id"], "after");
}

use futures_util::SinkExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_keeps_its_principal_and_its_threads() {
    let s = Stack::start(&["--ws-auth-timeout-secs", "2"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic"), (MALLORY, "basic")]).await;
    let (alice, bob, mallory) = (s.jwt(ALICE), s.jwt(BOB), s.jwt(MALLORY));
    let ab = create_thread(&s, &alice, &[BOB]).await;
    let bm = create_thread(&s, &bob, &[MALLORY]).await;

    let mut a = user_socket(&s, &alice).await;
    // a second auth with Bob's token, and one with garbage: refused, still Alice
    a.send(&json!({"type": "auth", "token": bob})).await;
    let (e, _) = a.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "bad_message");
    a.send(&json!({"type": "auth", "token": "ama_garbage"}))
        .await;
    a.until(BOUND, is("error")).await;
    post(&s, &mallory, &bm, "bob and mallory only").await;
    // typing and focus on a thread not Alice's: not_found, nothing leaks
    a.send(&json!({"type": "typing", "thread_id": bm, "status": "started"}))
        .await;
    let (e, _) = a.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "not_found");
    a.send(&json!({"type": "focus_thread", "thread_id": bm}))
        .await;
    let (e, _) = a.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "not_found");
    // huge and odd thread ids
    for tid in [
        "x".repeat(1000),
        "'; drop table ama.threads; --".into(),
        "\u{0000}".into(),
    ] {
        a.send(&json!({"type": "typing", "thread_id": tid, "status": "started"}))
            .await;
        match a.read(BOUND).await {
            Read::Event(v) => assert_eq!(v["type"], "error", "{v}"),
            Read::Closed(c) => panic!("closed with {c} for an odd thread id"),
            Read::Nothing => panic!("no answer"),
        }
    }
    // focusing thousands of ids: each refused (nothing stored), the socket stays usable
    let mut b = user_socket(&s, &bob).await;
    // (in batches, reading the answers: a client that only writes is a slow consumer)
    for batch in 0..40 {
        for i in 0..50 {
            let id = format!("00000000-0000-4000-8000-{:012}", batch * 50 + i);
            b.send(&json!({"type": "focus_thread", "thread_id": id}))
                .await;
        }
        b.send(&json!({"type": "ping", "id": "alive"})).await;
        let (_, before) = b.until(BOUND, |v| v["id"] == "alive").await;
        assert_eq!(before.len(), 50);
        assert!(
            before.iter().all(|v| v["code"] == "not_found"),
            "{:?}",
            before.first()
        );
    }
    post(&s, &bob, &ab, "marker").await;
    let (_, before) = a
        .until(BOUND, |v| {
            v["type"] == "thread_message" && v["event"]["content"] == "marker"
        })
        .await;
    assert!(
        before.iter().all(|v| v["thread_id"] != bm.as_str()),
        "{before:?}"
    );

    // garbage before auth closes with 4401; a token of a foreign kind too
    let mut f = open(&s.client, USER, &[]).await.socket();
    let _ = f.send_text("garbage".into()).await;
    assert_eq!(f.closed(BOUND).await.0, Some(4401));
    let mut f = open(&s.client, USER, &[]).await.socket();
    f.send(&json!({"type": "auth", "token": s.internal_key}))
        .await;
    let (code, events) = f.closed(BOUND).await;
    assert!(
        matches!(code, Some(4401) | Some(4403)),
        "{code:?} {events:?}"
    );
    assert!(events.iter().all(|v| v["type"] != "ready"), "{events:?}");
    // no auth at all in time
    let mut f = open(&s.client, USER, &[]).await.socket();
    assert_eq!(f.closed(BOUND).await.0, Some(4401));

    // no token of any form in the log
    let proto = format!("ama.v1, bearer.{mallory}");
    let mut w = open(&s.client, USER, &[("sec-websocket-protocol", &proto)])
        .await
        .socket();
    w.until(BOUND, is("ready")).await;
    let logs = s.logs();
    assert!(!logs.contains("ama_garbage"), "a bad token in the log");
    for t in [&alice, &bob, &mallory, &s.internal_key] {
        let sig = t.rsplit('.').next().unwrap_or(t);
        assert!(!logs.contains(sig), "a token in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_sockets_give_their_slots_back() {
    let s = Stack::start(&["--ws-max-per-user", "2", "--ws-max-per-ip", "3"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let alice = s.jwt(ALICE);
    for i in 0..40 {
        let mut w = user_socket(&s, &alice).await;
        if i % 2 == 0 {
            // a clean close
            let _ = w.ws.close(None).await;
            let _ = w.closed(BOUND).await;
        } else {
            // the connection just dropped
            drop(w);
        }
        // a slot comes back once the shim saw the end (retry within the bound)
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let auth = format!("Bearer {alice}");
            match open(&s.client, USER, &[("authorization", &auth)]).await {
                ama_tests::ws::Opened::Socket(mut w) => {
                    w.until(BOUND, is("ready")).await;
                    drop(w);
                    break;
                }
                ama_tests::ws::Opened::Refused(st, b) => {
                    assert_eq!(st, 429, "{b}");
                    assert!(tokio::time::Instant::now() < deadline, "no slot back");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if i == 39 {
            break;
        }
    }
    // both slots are there again
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut held = Vec::new();
    while held.len() < 2 {
        let auth = format!("Bearer {alice}");
        match open(&s.client, USER, &[("authorization", &auth)]).await {
            ama_tests::ws::Opened::Socket(mut w) => {
                w.until(BOUND, is("ready")).await;
                held.push(w);
            }
            ama_tests::ws::Opened::Refused(st, _) => {
                assert_eq!(st, 429);
                assert!(tokio::time::Instant::now() < deadline, "slots not released");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jwt_socket_closes_at_expiry() {
    let s = Stack::start(&["--sse-recheck-secs", "60"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let now = now_secs();
    let short = jwt_with(
        &s.secret,
        &json!({"sub": ALICE, "aud": "authenticated", "role": "authenticated",
                "email": "a@example.com", "iat": now, "exp": now + 3}),
    );
    // header form and first-message form
    let mut h = user_socket(&s, &short).await;
    let mut f = open(&s.client, USER, &[]).await.socket();
    f.send(&json!({"type": "auth", "token": short})).await;
    f.until(BOUND, is("ready")).await;
    assert_eq!(h.closed(Duration::from_secs(12)).await.0, Some(4401));
    assert_eq!(f.closed(Duration::from_secs(12)).await.0, Some(4401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_read_stops_messages_and_typing() {
    let s = Stack::start(&["--sse-recheck-secs", "1"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let (alice, bob) = (s.jwt(ALICE), s.jwt(BOB));
    let t = create_thread(&s, &alice, &[BOB]).await;
    let t2 = create_thread(&s, &bob, &[ALICE, MALLORY]).await;
    let mut a = user_socket(&s, &alice).await;
    let mut b = user_socket(&s, &bob).await;
    s.cluster
        .psql(
            "postgres",
            &format!(
                "UPDATE ama.participants SET capabilities = '{{send}}' \
                  WHERE thread_id = '{t}' AND actor_id = 'user:{ALICE}'"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (left, _) = a
        .until(BOUND, |v| {
            v["type"] == "thread_runtime" && v["change"] == "left"
        })
        .await;
    assert_eq!(left["thread_id"], t.as_str());
    post(&s, &bob, &t, "after").await;
    b.send(&json!({"type": "typing", "thread_id": t, "status": "started"}))
        .await;
    b.send(&json!({"type": "ping", "id": "b"})).await;
    b.until(BOUND, is("pong")).await;
    post(&s, &bob, &t2, "marker").await;
    let (_, before) = a
        .until(BOUND, |v| {
            v["type"] == "thread_message" && v["event"]["content"] == "marker"
        })
        .await;
    assert!(
        before.iter().all(|v| v["thread_id"] != t.as_str()),
        "{before:?}"
    );
    // a send-only participant's typing is refused on its own socket? it may announce (send)
    a.send(&json!({"type": "focus_thread", "thread_id": t}))
        .await;
    let (e, _) = a.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "not_found");
}

/// Finding: an invalid, empty or repeated `Sec-WebSocket-Key` and an upgrade request carrying a
/// body (`Content-Length`, chunked) were answered `101`; RFC 6455 wants a 400 for the key, and
/// bytes after a handshake's head must not be a body one hop reads and another takes as frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_and_upgrades_with_a_body_are_refused() {
    let s = Stack::start(&["--ws-max-per-ip", "20"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let alice = s.jwt(ALICE);
    let bearer = format!("Authorization: Bearer {alice}");
    let good = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    let v13 = "Sec-WebSocket-Version: 13";
    for (extra, body) in [
        (vec!["Sec-WebSocket-Key: x", v13], ""),
        (vec!["Sec-WebSocket-Key: ", v13], ""),
        (vec!["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", v13], ""),
        (vec!["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!", v13], ""),
        (vec![good, good, v13], ""),
        (vec![good, v13, "Content-Length: 5"], "hello"),
        (
            vec![good, v13, "Transfer-Encoding: chunked"],
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    ] {
        let mut l = upgrade_lines(USER, &[&bearer]);
        l.extend(extra.iter().map(|s| s.to_string()));
        let mut c = raw(&s).await;
        let req = format!("{}\r\n\r\n{body}", l.join("\r\n"));
        c.write_all(req.as_bytes()).await.expect("write");
        let h = head(&mut c).await;
        assert!(h.starts_with("HTTP/1.1 400"), "{extra:?}: {h}");
    }
    // a valid key with an explicit empty body still opens
    let (status, h) = raw_request(
        &s,
        &upgrade_lines(USER, &[&bearer, good, v13, "Content-Length: 0"]),
    )
    .await;
    assert_eq!(status, 101, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn visitors_and_readers_stay_in_their_lane() {
    use ama_tests::fixtures::OWNER;
    let s = Stack::start(&[]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic"), (BOB, "basic")]).await;
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&s.jwt(OWNER)),
            &json!({"custom_slug": "atk-bot"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/public/agents/atk-bot/messages",
            None,
            &json!({"email": "v@example.org", "content": "hello"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let v = r.json();
    let tok = v["visitor_token"].as_str().unwrap().to_string();
    let th = v["thread_id"].as_str().unwrap().to_string();

    // a visitor token on the user stream: refused in the request and as a first message
    let (status, body) = open(
        &s.client,
        USER,
        &[("authorization", &format!("Bearer {tok}"))],
    )
    .await
    .status();
    assert!(matches!(status, 401 | 403), "{status} {body}");
    let mut f = open(&s.client, USER, &[]).await.socket();
    f.send(&json!({"type": "auth", "token": tok})).await;
    let (code, events) = f.closed(BOUND).await;
    assert!(matches!(code, Some(4401) | Some(4403)), "{code:?}");
    assert!(events.iter().all(|v| v["type"] != "ready"), "{events:?}");

    // the visitor's own socket: no second auth, no focus, no typing
    let public = format!("/api/v1/chat/ws/public/atk-bot/threads/{th}");
    let mut w = open(
        &s.client,
        &public,
        &[("authorization", &format!("Bearer {tok}"))],
    )
    .await
    .socket();
    w.until(BOUND, is("ready")).await;
    w.send(&json!({"type": "auth", "token": s.jwt(OWNER)}))
        .await;
    let (e, _) = w.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "bad_message");
    for m in [
        json!({"type": "focus_thread", "thread_id": th}),
        json!({"type": "typing", "thread_id": th, "status": "started"}),
    ] {
        w.send(&m).await;
        let (e, _) = w.until(BOUND, is("error")).await;
        assert_eq!(e["code"], "unknown_type");
    }

    // a participant with read only cannot announce typing; nobody hears it
    let (alice, bob) = (s.jwt(ALICE), s.jwt(BOB));
    let t = create_thread(&s, &alice, &[BOB]).await;
    s.cluster
        .psql(
            "postgres",
            &format!(
                "UPDATE ama.participants SET capabilities = '{{read}}' \
                  WHERE thread_id = '{t}' AND actor_id = 'user:{BOB}'"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut a = user_socket(&s, &alice).await;
    let mut b = user_socket(&s, &bob).await;
    b.send(&json!({"type": "typing", "thread_id": t, "status": "started"}))
        .await;
    let (e, _) = b.until(BOUND, is("error")).await;
    assert_eq!(e["code"], "forbidden");
    // typing flood past the per-socket budget: refused on the socket, not announced
    let mut limited = 0;
    for _ in 0..30 {
        a.send(&json!({"type": "typing", "thread_id": t, "status": "started"}))
            .await;
    }
    a.send(&json!({"type": "ping", "id": "a"})).await;
    let (_, before) = a.until(BOUND, |v| v["id"] == "a").await;
    for v in &before {
        if v["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited > 0, "{before:?}");
    post(&s, &alice, &t, "marker").await;
    let (_, before) = b
        .until(BOUND, |v| {
            v["type"] == "thread_message" && v["event"]["content"] == "marker"
        })
        .await;
    let heard = before
        .iter()
        .filter(|v| v["type"] == "thread_typing")
        .count();
    assert!(
        heard <= 30 - limited,
        "{heard} typing events for {} accepted",
        30 - limited
    );
    assert!(s.logs().find(&tok).is_none(), "a visitor token in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_message_edge_cases() {
    let s = Stack::start(&["--ws-auth-timeout-secs", "2"]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let alice = s.jwt(ALICE);
    let lines = upgrade_lines(
        USER,
        &[
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ],
    );
    // a first message started and never finished: closed at the auth timeout
    let mut c = raw(&s).await;
    c.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .await
        .expect("write");
    assert!(head(&mut c).await.starts_with("HTTP/1.1 101"));
    frame(&mut c, false, 0x1, b"{\"type\":\"auth\",").await;
    assert!(ends(&mut c).await, "a half first message holds the socket");
    // a ping instead of the auth message
    let mut c = raw(&s).await;
    c.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .await
        .expect("write");
    assert!(head(&mut c).await.starts_with("HTTP/1.1 101"));
    frame(&mut c, true, 0x9, b"hi").await;
    assert!(ends(&mut c).await, "a ping before auth");
    // the auth frame pipelined right after the request head (same write) still authenticates
    let mut c = raw(&s).await;
    let mut bytes = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    let auth = json!({"type": "auth", "token": alice}).to_string();
    let mask = [9u8, 8, 7, 6];
    bytes.push(0x81);
    bytes.push(0x80 | 126);
    bytes.extend_from_slice(&(auth.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&mask);
    bytes.extend(auth.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    c.write_all(&bytes).await.expect("write");
    assert!(head(&mut c).await.starts_with("HTTP/1.1 101"));
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(BOUND, c.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("\"ready\""), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_jwts_do_not_open_a_socket() {
    let s = Stack::start(&[]);
    put_users(&s, &[(ALICE, "basic")]).await;
    let now = now_secs();
    let base = json!({"sub": ALICE, "aud": "authenticated", "role": "authenticated",
                      "email": "a@example.com", "iat": now});
    let with = |extra: Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        jwt_with(&s.secret, &c)
    };
    for (name, tok) in [
        ("no exp", with(json!({}))),
        ("expired", with(json!({"exp": now - 120}))),
        (
            "not yet valid",
            with(json!({"exp": now + 600, "nbf": now + 300})),
        ),
        (
            "other audience",
            with(json!({"exp": now + 600, "aud": "other"})),
        ),
        ("other secret", {
            jwt_with("another-secret-another-secret-32", &{
                let mut c = base.clone();
                c["exp"] = json!(now + 600);
                c
            })
        }),
    ] {
        match open(
            &s.client,
            USER,
            &[("authorization", &format!("Bearer {tok}"))],
        )
        .await
        {
            ama_tests::ws::Opened::Refused(status, body) => {
                assert!(matches!(status, 401 | 403), "{name}: {status} {body}")
            }
            ama_tests::ws::Opened::Socket(_) => panic!("{name}: the WebSocket opened"),
        }
        let mut f = open(&s.client, USER, &[]).await.socket();
        f.send(&json!({"type": "auth", "token": tok})).await;
        let (code, events) = f.closed(BOUND).await;
        assert!(matches!(code, Some(4401) | Some(4403)), "{name}: {code:?}");
        assert!(events.iter().all(|v| v["type"] != "ready"), "{name}");
        let sig = tok.rsplit('.').next().unwrap_or(&tok);
        assert!(
            !s.logs().contains(sig),
            "{name}: a refused token in the log"
        );
    }
    // a role claim never elevates (the shim never reads it): the socket is Alice's
    let tok = with(json!({"exp": now + 600, "role": "service_role"}));
    let mut w = open(
        &s.client,
        USER,
        &[("authorization", &format!("Bearer {tok}"))],
    )
    .await
    .socket();
    let (ready, _) = w.until(BOUND, is("ready")).await;
    assert_eq!(ready["principal"], format!("user:{ALICE}"));
}
