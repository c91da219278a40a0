//! The rate-limit ledger under real concurrency, against a throwaway cluster.

use ama_tests::fixtures::cluster_with as start;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_connections_get_exactly_limit_plus_burst() {
    let cluster = start(&[]);
    let admin = cluster.connect("postgres").await;
    admin
        .batch_execute(
            "INSERT INTO ama.rate_policies (name, policy_id, rate_limit, period, burst, key_kind) \
             VALUES ('exact', 100, 60, '1 hour', 5, 'credential')",
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = Arc::new(cluster.connect("postgres").await);
        // 15 x 63 + 55 = 1,000 decisions in all.
        let n = if i < 15 { 63 } else { 55 };
        tasks.push(tokio::spawn(async move {
            let stmt = c
                .prepare("SELECT allowed FROM ama.rate_limit('exact', 'tok:hot')")
                .await
                .unwrap();
            let mut admitted = 0u32;
            for _ in 0..n {
                if c.query_one(&stmt, &[]).await.unwrap().get::<_, bool>(0) {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    // 60 an hour: one emission interval is a minute, far longer than the run even on a loaded
    // machine, so nothing refills meanwhile (the count does not depend on timing).
    assert_eq!(admitted, 65, "the limit of 60 plus a burst of 5");
    let row = admin
        .query_one(
            "SELECT allowed, denied FROM ama.rate_limit_counters WHERE policy = 'exact'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 65);
    assert_eq!(row.get::<_, i64>(1), 1000 - 65);
}

#[tokio::test]
async fn decisions_in_rolled_back_transactions_still_count() {
    let cluster = start(&[]);
    let c = cluster.connect("postgres").await;
    c.batch_execute("INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES ('rb', 101, 3, 'ip')")
        .await
        .unwrap();
    for _ in 0..3 {
        c.batch_execute("BEGIN; SELECT * FROM ama.rate_limit('rb', 'ip:203.0.113.9'); ROLLBACK;")
            .await
            .unwrap();
    }
    let allowed: bool = c
        .query_one(
            "SELECT allowed FROM ama.rate_limit('rb', 'ip:203.0.113.9')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!allowed, "three rolled-back decisions used the allowance");
}

#[tokio::test]
async fn flood_of_distinct_keys_stays_bounded_and_locks_nobody_out() {
    let cluster = start(&[("ama.ratelimit_slots", "1024")]);
    let c = cluster.connect("postgres").await;
    c.batch_execute(
        "INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES \
           ('hot', 102, 5, 'credential'), ('flood', 103, 10, 'ip')",
    )
    .await
    .unwrap();
    let hot = c
        .prepare("SELECT allowed FROM ama.rate_limit('hot', 'tok:victim')")
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(c.query_one(&hot, &[]).await.unwrap().get::<_, bool>(0));
    }
    assert!(!c.query_one(&hot, &[]).await.unwrap().get::<_, bool>(0));
    // 20,000 spoofed addresses, one request each, into a 1,024-slot ledger.
    c.batch_execute(
        "SELECT count(*) FROM generate_series(1, 20000) g, \
         LATERAL ama.rate_limit('flood', 'ip:10.' || (g / 256) || '.' || (g % 256) || '.1') r",
    )
    .await
    .unwrap();
    let slots: i64 = c
        .query_one("SELECT slots FROM ama.rate_limit_ledger()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 1024);
    let live: i64 = c
        .query_one("SELECT count(*) FROM ama.rate_limit_buckets", &[])
        .await
        .unwrap()
        .get(0);
    assert!(live <= 1024, "live buckets {live} exceed the ledger size");
    // The heavy user is still limited: the flood evicted only barely-used keys.
    assert!(
        !c.query_one(&hot, &[]).await.unwrap().get::<_, bool>(0),
        "victim state was evicted"
    );
    // A newcomer is admitted during the flood.
    let newcomer: bool = c
        .query_one(
            "SELECT allowed FROM ama.rate_limit('flood', 'ip:192.0.2.200')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(newcomer);
    // Reset gives the victim its allowance back at once.
    let was: bool = c
        .query_one("SELECT ama.rate_limit_reset('hot', 'sql:tok:victim')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(was);
    assert!(c.query_one(&hot, &[]).await.unwrap().get::<_, bool>(0));
}

#[tokio::test]
async fn bucket_view_shows_ids_never_secrets_and_bad_input_has_sqlstates() {
    let cluster = start(&[]);
    let c = cluster.connect("postgres").await;
    c.batch_execute(
        "SELECT * FROM ama.rate_limit('events_read', 'tok:7d1e3c1a-0000-4000-8000-000000000001')",
    )
    .await
    .unwrap();
    let row = c
        .query_one("SELECT policy, key, remaining FROM ama.rate_limit_buckets WHERE policy = 'events_read'", &[])
        .await
        .unwrap();
    // Keys given over SQL live in their own namespace: never one of the shim's buckets.
    assert_eq!(
        row.get::<_, String>(1),
        "sql:tok:7d1e3c1a-0000-4000-8000-000000000001"
    );
    assert_eq!(row.get::<_, i64>(2), 299);
    for (sql, state) in [
        ("SELECT * FROM ama.rate_limit('no_such_policy', 'k')", "42704"),
        ("SELECT * FROM ama.rate_limit('thread_write', NULL)", "22004"),
        ("SELECT * FROM ama.rate_limit(NULL, 'k')", "22004"),
        ("SELECT * FROM ama.rate_limit('thread_write', '')", "22023"),
        ("INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES ('z', 120, 0, 'ip')", "23514"),
        ("INSERT INTO ama.rate_policies (name, policy_id, rate_limit, period, key_kind) VALUES ('z', 121, 5, '-1 minute', 'ip')", "23514"),
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some(state), "{sql}: {err}");
    }
}
