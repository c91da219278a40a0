//! Two shims on one database: the decisions are the database's, so a client alternating between
//! them meets one exact limit, a token revoked through one is refused by the other on the next
//! request, and a stream on one sees what is posted through the other.

use ama_tests::fixtures::{
    create_agent_token, create_thread, put_users, watch_stream, AGENT, ALICE, BOB, OWNER,
};
use ama_tests::stack::Stack;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shims_share_limits_revocations_and_live_events() {
    let s = Stack::start(&[]);
    let b = s.another_shim(&[]);
    put_users(&s, &[(OWNER, "starter"), (ALICE, "basic"), (BOB, "basic")]).await;

    // one limit across both shims: 6 reads a minute, alternating
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 6, burst = 0 WHERE name = 'reads'",
        )
        .expect("tighten reads");
    let bob = s.jwt(BOB);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let client = if i % 2 == 0 { &s.client } else { &b.client };
        statuses.push(client.get("/api/v1/chat/threads", Some(&bob)).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|&&st| st == 200).count(),
        6,
        "{statuses:?}"
    );
    assert!(statuses[6..].iter().all(|&st| st == 429), "{statuses:?}");

    // a token revoked through shim A is refused by shim B on its very next request
    let t = create_agent_token(&s, OWNER, &json!({"agent_actor_id": AGENT})).await;
    let (token_id, raw) = (
        t["token_id"].as_str().expect("token_id").to_string(),
        t["raw_token"].as_str().expect("raw_token").to_string(),
    );
    let before = b.client.get("/api/v1/chat/threads", Some(&raw)).await;
    assert_ne!(before.status, 401, "the token works through B first");
    let r = s
        .client
        .json(
            "DELETE",
            &format!("/api/v1/owner/external-agents/tokens/{token_id}"),
            Some(&s.jwt(OWNER)),
            &json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let after = b.client.get("/api/v1/chat/threads", Some(&raw)).await;
    assert_eq!(after.status, 401, "revoked through A, refused by B");

    // a stream on shim B gets a message posted through shim A
    let alice = s.jwt(ALICE);
    let tid = create_thread(&s, &alice, &[BOB]).await;
    let stream_path = format!("/api/v1/chat/threads/{tid}/events/stream");
    let reader = watch_stream(&b.client, stream_path, &alice, "id: 1\n").await;
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/messages"),
            Some(&alice),
            &json!({"content": "through A"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (status, text) = reader.await.expect("reader").expect("stream");
    assert_eq!(status, 200);
    assert!(
        text.contains("id: 1\n") && text.contains("through A"),
        "{text}"
    );
}
