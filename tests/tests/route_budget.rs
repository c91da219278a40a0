//! One slow route cannot starve the rest: 200 sends queued on one thread's row lock hold at most
//! their route's share of the pool (`--route-pool-share`, 75% of 16 = 12 connections), so a
//! cheap read of another thread is still served at once. When the lock goes, every queued send
//! either commits (200) or is refused with 503 and `Retry-After`; no acknowledged write is lost
//! or duplicated.

use std::time::Duration;

use ama_tests::fixtures::{create_thread, put_users, ALICE, BOB};
use ama_tests::stack::Stack;
use serde_json::json;

const SENDS: usize = 200;

/// Backends of the authenticator waiting on a lock right now.
async fn lock_waiters(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = 'ama_authenticator' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_queued_on_one_row_lock_do_not_starve_reads_of_other_threads() {
    // a long deadline, so the queued sends really hold their connections while the reads run
    let s = Stack::start(&["--db-deadline-ms", "15000", "--pool-size", "16"]);
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let alice = s.jwt(ALICE);
    let busy = create_thread(&s, &alice, &[BOB]).await;
    let other = create_thread(&s, &alice, &[BOB]).await;
    let admin = s.cluster.connect("postgres").await;
    // the rate limit is not what this test is about: let every send reach the database
    admin
        .batch_execute("UPDATE ama.rate_policies SET rate_limit = 100000 WHERE name = 'user_send'")
        .await
        .expect("raise the send limit");

    // a DBA's transaction holds the busy thread's row: every send to it waits on the lock
    let holder = s.cluster.connect("postgres").await;
    holder
        .batch_execute("BEGIN")
        .await
        .expect("begin the lock holder");
    holder
        .execute(
            "SELECT 1 FROM ama.threads WHERE thread_id = $1::text::uuid FOR UPDATE",
            &[&busy],
        )
        .await
        .expect("lock the busy thread");

    let path = format!("/api/v1/chat/threads/{busy}/messages");
    let mut sends = Vec::new();
    for i in 0..SENDS {
        let (client, alice, path) = (s.client.clone(), alice.clone(), path.clone());
        sends.push(tokio::spawn(async move {
            let r = client
                .json(
                    "POST",
                    &path,
                    Some(&alice),
                    &json!({"content": format!("queued {i}")}),
                )
                .await;
            (
                r.status,
                r.header("retry-after").map(str::to_string),
                r.json(),
            )
        }));
    }
    // wait until the sends fill their route's budget on the lock
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = lock_waiters(&admin).await;
        if waiting >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        waiting, 12,
        "the sends hold their share of the pool (12 of 16)"
    );

    // reads of another thread and of the thread list are served while the sends wait
    for _ in 0..5 {
        let r = s
            .client
            .get(&format!("/api/v1/chat/threads/{other}"), Some(&alice))
            .await;
        assert_eq!(r.status, 200, "a read is not starved: {:?}", r.json());
        let r = s.client.get("/api/v1/chat/threads", Some(&alice)).await;
        assert_eq!(r.status, 200, "a read is not starved: {:?}", r.json());
    }
    // never more than the route's share waits in the database
    assert_eq!(lock_waiters(&admin).await, 12);

    holder.batch_execute("ROLLBACK").await.expect("release");
    let mut committed = Vec::new();
    let mut refused = 0;
    for t in sends {
        let (status, retry_after, body) = t.await.expect("send task");
        match status {
            200 => committed.push(body["thread_seq"].as_i64().expect("thread_seq")),
            503 => {
                assert_eq!(body["code"], "UNAVAILABLE");
                assert_eq!(retry_after.as_deref(), Some("2"), "every 503 says when");
                refused += 1;
            }
            other => panic!("a queued send got {other}: {body:?}"),
        }
    }
    // every acknowledged send is stored once, and thread_seq has no gap
    committed.sort_unstable();
    let stored: Vec<i64> = admin
        .query(
            "SELECT thread_seq FROM ama.messages WHERE thread_id = $1::text::uuid ORDER BY 1",
            &[&busy],
        )
        .await
        .expect("messages")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, committed, "{refused} refused");
    let expected: Vec<i64> = (1..=i64::try_from(committed.len()).expect("count")).collect();
    assert_eq!(committed, expected);
}
