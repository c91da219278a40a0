//! Live event streams share their polls: the streams of one (thread, principal) make one
//! `events.poll` per notification between them, and each still gets every event once, in order.

use ama_tests::client::Client;
use ama_tests::fixtures::{create_thread, put_users, watch_stream, ALICE, BOB};
use ama_tests::stack::Stack;
use serde_json::json;

/// `ama_shim_stream_polls_total{kind="<kind>"}` from /metrics.
async fn stream_polls(client: &Client, kind: &str) -> u64 {
    let r = client.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    let prefix = format!("ama_shim_stream_polls_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_of_one_principal_share_one_poll_per_message() {
    const STREAMS: usize = 5;
    const MESSAGES: usize = 10;
    // no periodic re-check during the test: every poll below is one the messages caused
    let s = Stack::start(&["--sse-recheck-secs", "120"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let (alice, bob) = (s.jwt(ALICE), s.jwt(BOB));
    let tid = create_thread(&s, &alice, &[BOB]).await;
    let stream_path = format!("/api/v1/chat/threads/{tid}/events/stream");
    let last = format!("m-{}", MESSAGES - 1);
    let last: &'static str = Box::leak(last.into_boxed_str());

    let mut alices = Vec::new();
    for _ in 0..STREAMS {
        alices.push(watch_stream(&s.client, stream_path.clone(), &alice, last).await);
    }
    let bobs = watch_stream(&s.client, stream_path.clone(), &bob, last).await;
    let own_before = stream_polls(&s.client, "own").await;
    assert_eq!(
        own_before,
        STREAMS as u64 + 1,
        "each stream's first poll is its own"
    );

    let path = format!("/api/v1/chat/threads/{tid}/messages");
    for i in 0..MESSAGES {
        let r = s
            .client
            .json(
                "POST",
                &path,
                Some(&alice),
                &json!({"content": format!("m-{i}")}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }

    for w in alices.into_iter().chain([bobs]) {
        let (status, text) = w.await.expect("stream task").expect("stream");
        assert_eq!(status, 200);
        // every message once, in order, with increasing ids
        let contents: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("event json"))
            .map(|e| e["content"].as_str().unwrap_or_default().to_string())
            .collect();
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m-{i}")).collect();
        assert_eq!(contents, expected, "{text}");
        let ids: Vec<i64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|i| i.trim().parse().expect("numeric id"))
            .collect();
        assert_eq!(ids, (1..=MESSAGES as i64).collect::<Vec<_>>());
    }
    // two principals: at most one shared poll per message for each, however many streams
    let shared = stream_polls(&s.client, "shared").await;
    assert!(
        (1..=2 * MESSAGES as u64).contains(&shared),
        "{shared} shared polls for {MESSAGES} messages and 2 principals ({STREAMS} + 1 streams)"
    );
    assert_eq!(
        stream_polls(&s.client, "own").await,
        own_before,
        "no stream had to poll on its own"
    );
}
