//! The shim behind a real transaction pooler: Debian's pgbouncer 1.18 in transaction mode (no
//! protocol-level prepared statements), the shim with `--db-pooler transaction`, its LISTEN
//! connection direct. Reads, writes, agent tokens, exact rate limits, errors with their SQLSTATE
//! and live events all work through it.

use ama_core::token::TokenKind;
use ama_tests::fixtures::{
    agent_token, create_thread, put_users, unknown_token, watch_stream, AGENT, ALICE, BOB, OWNER,
};
use ama_tests::stack::Stack;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_works_behind_pgbouncer_in_transaction_mode() {
    let s = Stack::start_behind_pooler(&[]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic"), (BOB, "basic")]).await;
    let alice = s.jwt(ALICE);
    let tid = create_thread(&s, &alice, &[BOB]).await;
    let path = format!("/api/v1/chat/threads/{tid}/messages");

    // many more requests than pooled server connections: each statement runs on whichever server
    // connection the pooler picks, with no prepared statement left behind
    for i in 0..40 {
        let r = s
            .client
            .json(
                "POST",
                &path,
                Some(&alice),
                &json!({"content": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["thread_seq"], i + 1);
    }
    let r = s
        .client
        .get(
            &format!("/api/v1/chat/threads/{tid}/events?after_seq=35"),
            Some(&alice),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let seqs: Vec<i64> = r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["thread_seq"].as_i64())
        .collect();
    assert_eq!(seqs, vec![36, 37, 38, 39, 40]);

    // a route error keeps its SQLSTATE mapping through the pooler, and a stranger gets 404
    let r = s
        .client
        .json("POST", &path, Some(&alice), &json!({"content": ""}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.json());
    let r = s
        .client
        .get(&format!("/api/v1/chat/threads/{tid}"), Some(&s.jwt(OWNER)))
        .await;
    assert_eq!(r.status, 404);

    // agent tokens verify through the pooler: a real one reaches the route's own check (this
    // route takes no agent credentials: 403), an unknown one is 401
    let raw = agent_token(&s, OWNER, AGENT).await;
    let r = s.client.get("/api/v1/chat/threads", Some(&raw)).await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    let r = s
        .client
        .get(
            "/api/v1/chat/threads",
            Some(&unknown_token(TokenKind::Agent)),
        )
        .await;
    assert_eq!(r.status, 401);

    // the ledger is exact whichever server connection takes the request
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 5, burst = 0 WHERE name = 'reads'",
        )
        .expect("tighten reads");
    let bob = s.jwt(BOB);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            s.client
                .get("/api/v1/chat/threads", Some(&bob))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|&&st| st == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(statuses[5..].iter().all(|&st| st == 429), "{statuses:?}");

    // live events: the LISTEN connection is direct, so streams still wake up
    let stream_path = format!("/api/v1/chat/threads/{tid}/events/stream?after_seq=40");
    let reader = watch_stream(&s.client, stream_path, &alice, "id: 41\n").await;
    let r = s
        .client
        .json("POST", &path, Some(&alice), &json!({"content": "live"}))
        .await;
    assert_eq!(r.status, 200);
    let (status, text) = reader.await.expect("reader").expect("stream");
    assert_eq!(status, 200);
    assert!(text.contains("id: 41\n"), "{text}");

    // and it really went through pgbouncer
    let p = s.pooler.as_ref().expect("pooler");
    let log = std::fs::read_to_string(p.dir.join("pgbouncer.log")).unwrap_or_default();
    assert!(
        log.contains("ama_authenticator"),
        "pgbouncer saw no authenticator login:\n{log}"
    );
}
