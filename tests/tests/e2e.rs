//! End to end over TLS: throwaway PostgreSQL with ama_pg, ama-shim as a subprocess, real JWTs.

use ama_core::token::TokenKind;
use ama_tests::fixtures::{
    create_agent_token, eventually_status, put_users, unknown_token, AGENT, AGENT2, ALICE, BASIC,
    BOB, MALLORY, OWNER,
};
use ama_tests::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;

async fn setup_users(s: &Stack) {
    put_users(
        s,
        &[
            (OWNER, "starter"),
            (ALICE, "basic"),
            (BOB, "basic"),
            (MALLORY, "basic"),
            (BASIC, "basic"),
        ],
    )
    .await;
}

/// OWNER's token for AGENT: (token id, raw token).
async fn issue_token(s: &Stack) -> (String, String) {
    let b = create_agent_token(
        s,
        OWNER,
        &json!({"agent_actor_id": AGENT, "agent_display_name": "Helper"}),
    )
    .await;
    let raw = b["raw_token"].as_str().expect("raw_token").to_string();
    assert!(raw.starts_with("ama_eat_"));
    assert_eq!(b["token_prefix"].as_str().unwrap(), &raw[..12]);
    (b["token_id"].as_str().unwrap().to_string(), raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lifecycle_token_thread_messages_events_revocation() {
    let s = Stack::start(&[]);
    setup_users(&s).await;

    // 1. A starter user creates an agent token; a basic user cannot.
    let (token_id, raw) = issue_token(&s).await;
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&s.jwt(BASIC)),
            &json!({"agent_actor_id": AGENT2}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "FORBIDDEN");
    assert!(r.json()["message"].as_str().unwrap().contains("starter"));
    assert!(r.json()["request_id"].is_string());

    // Listing never shows the token or its hash.
    let r = s
        .client
        .get("/api/v1/owner/external-agents/tokens", Some(&s.jwt(OWNER)))
        .await;
    assert_eq!(r.status, 200);
    let listing = String::from_utf8_lossy(&r.body).to_string();
    assert!(listing.contains(&token_id));
    assert!(!listing.contains(&raw[8..]), "listing leaks the token");
    assert!(!listing.contains("hash"));

    // 2. The agent creates a thread with two users and sends messages.
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&raw),
            &json!({"target_user_ids": [ALICE, BOB], "initial_message": "hello"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let thread = r.json();
    let tid = thread["thread_id"].as_str().unwrap().to_string();
    assert_eq!(thread["thread_type"], "private");
    assert_eq!(thread["participants"].as_array().unwrap().len(), 3);
    assert!(
        r.header("ratelimit-policy").is_some(),
        "limited route carries RateLimit-Policy"
    );
    assert!(r.header("ratelimit").is_some());
    // Same participant set: the same thread comes back.
    let again = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&raw),
            &json!({"target_user_ids": [BOB, ALICE, BOB]}),
        )
        .await;
    assert_eq!(again.json()["thread_id"], thread["thread_id"]);
    assert_eq!(again.json()["created"], false);

    let path = format!("/api/v1/chat/threads/{tid}/agent-messages");
    let first = s
        .client
        .json(
            "POST",
            &path,
            Some(&raw),
            &json!({"content": "one", "client_message_id": "c1", "base_seq": 1}),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.json()["stale"], false);
    let replay = s
        .client
        .json(
            "POST",
            &path,
            Some(&raw),
            &json!({"content": "one", "client_message_id": "c1", "base_seq": 1}),
        )
        .await;
    assert_eq!(
        replay.json()["message_id"],
        first.json()["message_id"],
        "replay is deduplicated"
    );
    let conflict = s
        .client
        .json(
            "POST",
            &path,
            Some(&raw),
            &json!({"content": "other", "client_message_id": "c1"}),
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["code"], "CONFLICT");
    // Alice posts, so the agent's next message, based on seq 2, is stale.
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/messages"),
            Some(&s.jwt(ALICE)),
            &json!({"content": "from alice"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let stale = s
        .client
        .json(
            "POST",
            &path,
            Some(&raw),
            &json!({"content": "two", "base_seq": 2, "latest_seen_seq": 2}),
        )
        .await;
    assert_eq!(stale.json()["stale"], true);
    assert_eq!(stale.json()["server_seq_at_submit"], 3);

    // 3. Bob polls and streams.
    let r = s
        .client
        .get(
            &format!("/api/v1/chat/threads/{tid}/events?after_seq=0&limit=2"),
            Some(&s.jwt(BOB)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let page = r.json();
    assert_eq!(page["has_more"], true);
    let seqs: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["thread_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(page["events"][0]["event_type"], "message_committed");
    let r = s
        .client
        .get(
            &format!("/api/v1/chat/threads/{tid}/events?last_thread_seq=2"),
            Some(&s.jwt(BOB)),
        )
        .await;
    let seqs: Vec<i64> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["thread_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(r.json()["has_more"], false);

    let bob = format!("Bearer {}", s.jwt(BOB));
    let stream_path = format!("/api/v1/chat/threads/{tid}/events/stream?after_seq=2");
    let client = s.client.clone();
    let reader = tokio::spawn(async move {
        client
            .sse_until(
                &stream_path,
                &[("authorization", bob.as_str())],
                Duration::from_secs(10),
                |t| t.contains("id: 5\n"),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let live = s
        .client
        .json("POST", &path, Some(&raw), &json!({"content": "live"}))
        .await;
    assert_eq!(live.json()["thread_seq"], 5);
    let (status, text) = reader.await.unwrap().unwrap();
    assert_eq!(status, 200);
    for seq in 3..=5 {
        assert_eq!(
            text.matches(&format!("id: {seq}\n")).count(),
            1,
            "seq {seq} exactly once in:\n{text}"
        );
    }
    assert!(!text.contains("id: 2\n"));
    assert!(
        text.starts_with("retry: 2000\n\n"),
        "the stream opens with a reconnect hint:\n{text}"
    );

    // Non-participants get 404 on every thread route, never 403.
    let m = s.jwt(MALLORY);
    for (method, p, body) in [
        ("GET", format!("/api/v1/chat/threads/{tid}"), None),
        ("GET", format!("/api/v1/chat/threads/{tid}/events"), None),
        (
            "POST",
            format!("/api/v1/chat/threads/{tid}/messages"),
            Some(json!({"content": "x"})),
        ),
        (
            "POST",
            format!("/api/v1/chat/threads/{tid}/agent-messages"),
            Some(json!({"content": "x"})),
        ),
        (
            "POST",
            format!("/api/v1/chat/threads/{tid}/mode"),
            Some(json!({"participation_mode": "open"})),
        ),
    ] {
        let r = match body {
            Some(b) => s.client.json(method, &p, Some(&m), &b).await,
            None => s.client.get(&p, Some(&m)).await,
        };
        assert_eq!(r.status, 404, "{method} {p}: {:?}", r.json());
    }
    // A participant without manage gets 403.
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/mode"),
            Some(&s.jwt(ALICE)),
            &json!({"participation_mode": "invocation_only"}),
        )
        .await;
    assert_eq!(r.status, 403);
    // The creator (the agent) holds manage.
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/mode"),
            Some(&raw),
            &json!({"participation_mode": "invocation_only"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["participation_mode"], "invocation_only");

    // 4. The owner revokes the token: the agent's very next request gets 401.
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
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s
        .client
        .get(&format!("/api/v1/chat/threads/{tid}/events"), Some(&raw))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(r.json()["code"], "UNAUTHORIZED");

    // Secrets never reach the logs.
    let logs = s.logs();
    assert!(!logs.contains(&raw[8..]), "agent token in shim logs");
    assert!(!logs.contains(&s.jwt(OWNER)[..40]), "JWT in shim logs");
    assert!(
        !logs.contains(&s.internal_key[7..]),
        "internal key in shim logs"
    );
    let db_log = s.cluster.log();
    assert!(!db_log.contains(&raw[8..]), "agent token in the server log");
    let audit = s
        .cluster
        .psql(
            "postgres",
            "SELECT coalesce(string_agg(a::text, ' '), '') FROM ama.audit_log a",
        )
        .unwrap();
    assert!(audit.contains("token_issued") && audit.contains("token_revoked"));
    assert!(!audit.contains(&raw[8..]), "agent token in the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_have_the_documented_status_and_shape() {
    let s = Stack::start(&[]);
    setup_users(&s).await;
    let alice = s.jwt(ALICE);
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        ("GET", "/api/v1/nope".into(), None, 404, "NOT_FOUND"),
        (
            "DELETE",
            "/api/v1/chat/threads".into(),
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "GET",
            "/api/v1/chat/threads/not-a-uuid".into(),
            None,
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/chat/threads".into(),
            Some(json!([1, 2])),
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/chat/threads".into(),
            Some(json!({"target_user_ids": [BOB], "extra": 1})),
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/chat/threads".into(),
            Some(json!({})),
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/chat/threads".into(),
            Some(json!({"target_user_ids": ["zzz"]})),
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/chat/threads".into(),
            Some(json!({"target_user_ids": [BOB], "participation_mode": "loud"})),
            400,
            "BAD_REQUEST",
        ),
        ("GET", "/api/v1/owner/agent".into(), None, 403, "FORBIDDEN"),
    ];
    for (method, path, body, status, code) in cases {
        let r = match body {
            Some(b) => s.client.json(method, &path, Some(&alice), &b).await,
            None => s
                .client
                .send(
                    method,
                    &path,
                    &[("authorization", &format!("Bearer {alice}"))],
                    None,
                )
                .await
                .unwrap(),
        };
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.json());
        assert_eq!(r.json()["code"], code, "{method} {path}");
        assert!(r.json()["message"].is_string());
        assert!(r.json()["request_id"].is_string());
    }
    // Field names in 400 messages.
    let thread = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&alice),
            &json!({"target_user_ids": [BOB]}),
        )
        .await
        .json();
    let tid = thread["thread_id"].as_str().unwrap();
    let long = "x".repeat(5001);
    for (path, body, field) in [
        (
            format!("/api/v1/chat/threads/{tid}/messages"),
            json!({"content": long}),
            "content",
        ),
        (
            format!("/api/v1/chat/threads/{tid}/messages"),
            json!({"content": 5}),
            "content",
        ),
        (
            format!("/api/v1/chat/threads/{tid}/messages"),
            json!({"content": "hi", "mentions": ["user:nobody"]}),
            "mentions",
        ),
        (
            format!("/api/v1/chat/threads/{tid}/mode"),
            json!({"participation_mode": "loud"}),
            "participation_mode",
        ),
    ] {
        let r = s.client.json("POST", &path, Some(&alice), &body).await;
        assert_eq!(r.status, 400, "{path}");
        assert!(
            r.json()["message"].as_str().unwrap().contains(field),
            "{:?}",
            r.json()
        );
    }
    for q in ["after_seq=-1", "limit=0", "limit=201", "after_seq=abc"] {
        let r = s
            .client
            .get(
                &format!("/api/v1/chat/threads/{tid}/events?{q}"),
                Some(&alice),
            )
            .await;
        assert_eq!(r.status, 400, "{q}: {:?}", r.json());
    }
    // Body over the limit.
    let big = vec![b'a'; 70 * 1024];
    // The shim answers 413 from Content-Length and closes without reading the body, so the
    // client may see a reset while it is still writing: retry until the response is read.
    let auth = format!("Bearer {alice}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let mut status = None;
    for _ in 0..10 {
        if let Ok(r) = s
            .client
            .send("POST", "/api/v1/chat/threads", &headers, Some(&big))
            .await
        {
            status = Some(r.status);
            break;
        }
    }
    assert_eq!(status, Some(413));
    // Malformed or missing credentials.
    for bearer in [
        "ama_eat_nothex",
        "ama_eat_",
        "not.a.jwt",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        let r = s.client.get("/api/v1/chat/threads", Some(bearer)).await;
        assert_eq!(r.status, 401, "{bearer}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    let r = s.client.get("/api/v1/chat/threads", None).await;
    assert_eq!(r.status, 401);
    // Health, and the server kept serving through all of that.
    let r = s.client.get("/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert!(r.json()["service"].is_string() && r.json()["version"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_gets_a_400_and_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Stack::start(&[]);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("no hang")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.to_lowercase().contains("https"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_rate_limits_return_429_with_headers() {
    let s = Stack::start(&[]);
    setup_users(&s).await;
    let alice = s.jwt(ALICE);
    let thread = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&alice),
            &json!({"target_user_ids": [BOB]}),
        )
        .await;
    let tid = thread.json()["thread_id"].as_str().unwrap().to_string();
    // thread_write: 60 a minute per credential (the create above used one). GCRA refills one
    // request a second, so allow for the seconds the loop itself takes.
    let started = std::time::Instant::now();
    let mut admitted = 1;
    let mut denied = None;
    for i in 0..120 {
        let r = s
            .client
            .json(
                "POST",
                &format!("/api/v1/chat/threads/{tid}/agent-messages"),
                Some(&alice),
                &json!({"content": format!("m{i}")}),
            )
            .await;
        if r.status == 429 {
            denied = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert!(r.header("ratelimit").is_some());
        admitted += 1;
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(
        admitted >= 60 && admitted <= 60 + refill,
        "admitted {admitted} in {refill} s"
    );
    let r = denied.expect("a 429 within 120 requests");
    assert_eq!(r.json()["code"], "RATE_LIMITED");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(r.header("ratelimit-policy").unwrap().contains("q=60"));
    assert!(r.header("ratelimit").unwrap().contains("r=0"));
    // Another credential is unaffected.
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/agent-messages"),
            Some(&s.jwt(BOB)),
            &json!({"content": "bob"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Failed authentication counts per client IP: after 10 failures, even garbage gets 429.
    // A well-formed token (right checksum) that does not exist, so it reaches the database.
    let bad = unknown_token(TokenKind::Agent);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            s.client
                .get("/api/v1/chat/threads", Some(&bad))
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[11], 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_never_leave_gaps_or_duplicates() {
    let s = Stack::start(&[]);
    setup_users(&s).await;
    let thread = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&s.jwt(ALICE)),
            &json!({"target_user_ids": [BOB]}),
        )
        .await;
    let tid = thread.json()["thread_id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for (who, n) in [(ALICE, 20), (BOB, 20)] {
        for w in 0..2 {
            let client = s.client.clone();
            let jwt = s.jwt(who);
            let tid = tid.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / 2 {
                    let r = client
                        .json(
                            "POST",
                            &format!("/api/v1/chat/threads/{tid}/messages"),
                            Some(&jwt),
                            &json!({"content": format!("{who}-{w}-{i}")}),
                        )
                        .await;
                    assert_eq!(r.status, 200, "{:?}", r.json());
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seqs = s
        .cluster
        .psql("postgres", &format!("SELECT string_agg(thread_seq::text, ',' ORDER BY thread_seq) FROM ama.messages WHERE thread_id = '{tid}'"))
        .unwrap();
    let expected: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    assert_eq!(seqs, expected.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_gives_503_then_recovers_without_a_shim_restart() {
    let s = Stack::start(&[]);
    setup_users(&s).await;
    let alice = s.jwt(ALICE);
    assert_eq!(
        s.client
            .get("/api/v1/chat/threads", Some(&alice))
            .await
            .status,
        200
    );
    s.cluster.stop().unwrap();
    let started = std::time::Instant::now();
    let r = s.client.get("/api/v1/chat/threads", Some(&alice)).await;
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert_eq!(r.json()["code"], "UNAVAILABLE");
    assert_eq!(
        r.header("retry-after"),
        Some("2"),
        "every 503 says when to retry"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.client.get("/health", None).await.status,
        200,
        "liveness does not need the database"
    );
    s.cluster.restart_stopped().unwrap();
    assert!(
        eventually_status(&s.client, "/api/v1/chat/threads", Some(&alice), 200).await,
        "the shim did not recover after the database came back"
    );
    // the LISTEN connection reconnects by itself (its backoff is capped at 1 s and resets after
    // a success) and says so in /ready
    let mut listening = false;
    for _ in 0..50 {
        let r = s.client.get("/ready", None).await;
        if r.status == 200 && r.json()["events_listener"] == "connected" {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(listening, "the event listener did not reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_and_internal_services() {
    let s = Stack::start(&[]);
    setup_users(&s).await;
    let owner = s.jwt(OWNER);
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&owner),
            &json!({"custom_slug": "helpful-bot", "display_name": "Helpful"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(
        r.json()["workspace_thread_id"].is_string(),
        "workspace thread created with the agent"
    );
    let r = s.client.get("/api/v1/owner/agent", Some(&owner)).await;
    assert_eq!(r.json()["custom_slug"], "helpful-bot");

    let first = s
        .client
        .json(
            "POST",
            "/api/v1/public/agents/helpful-bot/messages",
            None,
            &json!({"email": "v@example.org", "content": "hi"}),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    let vtoken = first.json()["visitor_token"]
        .as_str()
        .expect("visitor token on first contact")
        .to_string();
    assert!(vtoken.starts_with("ama_vst_"));
    let vthread = first.json()["thread_id"].as_str().unwrap().to_string();
    // An email is not a credential: the same address without the token learns nothing and
    // writes nothing (409); with the thread's visitor token the conversation goes on.
    let by_email = s
        .client
        .json(
            "POST",
            "/api/v1/public/agents/helpful-bot/messages",
            None,
            &json!({"email": "V@example.org", "content": "again"}),
        )
        .await;
    assert_eq!(by_email.status, 409, "{:?}", by_email.json());
    assert_eq!(by_email.json()["code"], "CONFLICT");
    assert!(by_email.json()["request_id"].is_string());
    assert!(by_email.json().get("thread_id").is_none());
    let second = s
        .client
        .json(
            "POST",
            "/api/v1/public/agents/helpful-bot/messages",
            Some(&vtoken),
            &json!({"content": "again"}),
        )
        .await;
    assert_eq!(second.status, 200, "{:?}", second.json());
    assert_eq!(
        second.json()["thread_id"].as_str().unwrap(),
        vthread,
        "resumed with the visitor token"
    );
    assert!(second.json().get("visitor_token").is_none());
    let r = s
        .client
        .get(
            &format!("/api/v1/public/threads/{vthread}/events"),
            Some(&vtoken),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 2);
    // The visitor token is good for that thread only.
    let other = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&s.jwt(ALICE)),
            &json!({"target_user_ids": [BOB]}),
        )
        .await;
    let other_id = other.json()["thread_id"].as_str().unwrap().to_string();
    let r = s
        .client
        .get(
            &format!("/api/v1/public/threads/{other_id}/events"),
            Some(&vtoken),
        )
        .await;
    assert_eq!(r.status, 404);

    // Internal: a system message into any thread; a wrong key is 401.
    let body = serde_json::to_vec(&json!({"content": "maintenance at noon"})).unwrap();
    let r = s
        .client
        .send(
            "POST",
            &format!("/internal/v1/threads/{other_id}/system-messages"),
            &[
                ("x-internal-api-key", s.internal_key.as_str()),
                ("content-type", "application/json"),
            ],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let bad_key = format!("ama_ik_{}", "2".repeat(72));
    let r = s
        .client
        .send(
            "POST",
            &format!("/internal/v1/threads/{other_id}/system-messages"),
            &[
                ("x-internal-api-key", bad_key.as_str()),
                ("content-type", "application/json"),
            ],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // Plan changes: 5 a minute per user.
    let plans = ["starter", "basic", "starter", "basic", "starter", "basic"];
    let mut statuses = Vec::new();
    for p in plans {
        statuses.push(s.put_user(BASIC, p).await.status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_and_older_are_refused() {
    let s = Stack::start(&[]);
    let addr = format!("127.0.0.1:{}", s.port);
    for (flag, accepted) in [
        ("-tls1", false),
        ("-tls1_1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        let out = tokio::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                flag,
                "-servername",
                "localhost",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout);
        let negotiated = text.contains("Cipher is") && !text.contains("Cipher is (NONE)");
        assert_eq!(negotiated, accepted, "{flag}: {text}");
    }
}

/// Every process of a cluster: its postmaster and the postmaster's children.
fn cluster_pids(data: &std::path::Path) -> Vec<i32> {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    let postmaster: i32 = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("postmaster pid");
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // the parent pid is the second field after the parenthesised command name
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// Stops every process of a cluster (a stalled disk or a partition: sockets stay open, nothing
/// answers) until dropped.
struct Frozen(Vec<i32>);

impl Frozen {
    fn new(data: &std::path::Path) -> Frozen {
        let pids = cluster_pids(data);
        for p in &pids {
            // SAFETY: kill(2) on pids of the test's own cluster
            unsafe { libc::kill(*p, libc::SIGSTOP) };
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for p in &self.0 {
            // SAFETY: as above
            unsafe { libc::kill(*p, libc::SIGCONT) };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_gets_prompt_503s_and_the_shim_recovers_by_itself() {
    let s = Stack::start(&["--db-deadline-ms", "1500"]);
    setup_users(&s).await;
    let alice = s.jwt(ALICE);
    assert_eq!(
        s.client
            .get("/api/v1/chat/threads", Some(&alice))
            .await
            .status,
        200
    );
    let frozen = Frozen::new(&s.cluster.data);
    // several requests at once: each is bounded by the deadline, not by the database
    let mut waits = Vec::new();
    for _ in 0..4 {
        let client = s.client.clone();
        let alice = alice.clone();
        waits.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = client.get("/api/v1/chat/threads", Some(&alice)).await;
            (
                r.status,
                r.header("retry-after").map(str::to_string),
                started.elapsed(),
            )
        }));
    }
    for w in waits {
        let (status, retry_after, took) = w.await.expect("request task");
        assert_eq!(status, 503, "a frozen database is unavailable");
        assert_eq!(retry_after.as_deref(), Some("2"));
        // the deadline is 1.5 s; the bound only proves there is no hang
        assert!(took < Duration::from_secs(8), "503 took {took:?}");
    }
    assert_eq!(s.client.get("/health", None).await.status, 200);
    drop(frozen);
    assert!(
        eventually_status(&s.client, "/api/v1/chat/threads", Some(&alice), 200).await,
        "the shim did not recover after the database thawed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_the_deadline_is_cancelled_in_the_database() {
    // Directly and behind pgbouncer (the second pass of ./ama test): the shim keeps the timed-out
    // connection until the cancel is delivered (pgbouncer forwards a cancel only for a client
    // still linked to a server) and sends the cancel as libpq does, waiting for the other side
    // to close (a half-closed cancel socket makes pgbouncer 1.18 drop it or exit, "bad client
    // state: 0", as in pgbouncer issue #801).
    let s = Stack::start(&["--db-deadline-ms", "1000"]);
    setup_users(&s).await;
    let alice = s.jwt(ALICE);
    let admin = s.cluster.connect("postgres").await;
    // the request waits for this lock: a statement that outlives the deadline
    admin
        .batch_execute("BEGIN; LOCK TABLE ama.threads IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let started = std::time::Instant::now();
    let r = s.client.get("/api/v1/chat/threads", Some(&alice)).await;
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "503 took {:?}",
        started.elapsed()
    );
    // the 503 is not the end of it: the statement is cancelled, not left waiting in the database
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE usename = 'ama_authenticator' AND wait_event_type = 'Lock'";
    let mut left = -1;
    for _ in 0..25 {
        left = admin
            .query_one(waiting, &[])
            .await
            .expect("count")
            .get::<_, i64>(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        left, 0,
        "the statement still waits in the database after its 503"
    );
    admin.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(
        s.client
            .get("/api/v1/chat/threads", Some(&alice))
            .await
            .status,
        200
    );
}
