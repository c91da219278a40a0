//! The messages read policy remembers an actor's membership only for one snapshot: a capability
//! change committed on another connection holds for the very next statement, even inside an
//! open transaction, and never leaks to another actor.

use ama_tests::cluster::Options;
use ama_tests::fixtures::start_cluster;
use tokio_postgres::Client;

const FIXTURES: &str = "
    INSERT INTO ama.users (user_id, plan) VALUES ('a0000000-0000-4000-8000-000000000001', 'starter');
    INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
        ('user:a0000000-0000-4000-8000-000000000001', 'user', 'a0000000-0000-4000-8000-000000000001'),
        ('agent:a1000000-0000-4000-8000-000000000001', 'agent', 'a0000000-0000-4000-8000-000000000001'),
        ('agent:a1000000-0000-4000-8000-000000000002', 'agent', 'a0000000-0000-4000-8000-000000000001');
    INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
        ('a2000000-0000-4000-8000-000000000001', 'private', 'a0000000-0000-4000-8000-000000000001',
         'user:a0000000-0000-4000-8000-000000000001');
    INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
        ('a2000000-0000-4000-8000-000000000001', 'user:a0000000-0000-4000-8000-000000000001', 'user', '{read,send,manage}'),
        ('a2000000-0000-4000-8000-000000000001', 'agent:a1000000-0000-4000-8000-000000000001', 'agent', '{read,send}');
    INSERT INTO ama.messages (thread_id, sender_id, role, content)
        SELECT 'a2000000-0000-4000-8000-000000000001', 'user:a0000000-0000-4000-8000-000000000001', 'user', 'm' || g
          FROM generate_series(1, 5) g;
";

const COUNT: &str =
    "SELECT count(*) FROM ama.messages WHERE thread_id = 'a2000000-0000-4000-8000-000000000001'";

async fn count(c: &Client) -> i64 {
    c.query_one(COUNT, &[]).await.expect("count").get(0)
}

/// Opens a transaction on `c` acting as `actor` under RLS (`authenticated`).
async fn begin_as(c: &Client, actor: &str, isolation: &str) {
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL {isolation}; SELECT ama.impersonate('{actor}'); SET LOCAL ROLE authenticated;"
    ))
    .await
    .expect("impersonate");
}

const AGENT_1: &str = "agent:a1000000-0000-4000-8000-000000000001";

async fn set_read(admin: &Client, read: bool) {
    let caps = if read { "{read,send}" } else { "{send}" };
    admin
        .execute(
            "UPDATE ama.participants SET capabilities = $1::text::text[] \
              WHERE actor_id = 'agent:a1000000-0000-4000-8000-000000000001'",
            &[&caps],
        )
        .await
        .expect("update capabilities");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_hold_for_the_next_statement_on_every_connection() {
    let cluster = start_cluster(Options::default());
    let admin = cluster.connect("postgres").await;
    admin.batch_execute(FIXTURES).await.expect("fixtures");

    // The agent's connection: one long transaction, under RLS as `authenticated`.
    let agent = cluster.connect("postgres").await;
    begin_as(&agent, AGENT_1, "READ COMMITTED").await;
    assert_eq!(
        count(&agent).await,
        5,
        "a reader sees the thread's messages"
    );

    set_read(&admin, false).await;
    assert_eq!(
        count(&agent).await,
        0,
        "read revoked on another connection: the next statement sees nothing"
    );
    set_read(&admin, true).await;
    assert_eq!(
        count(&agent).await,
        5,
        "read granted again: the next statement sees the messages"
    );

    // Another actor in the same transaction and snapshot gets its own answer.
    agent
        .batch_execute(
            "RESET ROLE; SELECT ama.impersonate('agent:a1000000-0000-4000-8000-000000000002'); \
             SET LOCAL ROLE authenticated;",
        )
        .await
        .expect("impersonate the second agent in the same transaction");
    assert_eq!(count(&agent).await, 0, "a non-participant sees nothing");
    agent.batch_execute("ROLLBACK").await.expect("rollback");

    // A repeatable-read transaction keeps its snapshot: the revocation is not visible inside it
    // (as for any query), and is at its next transaction.
    begin_as(&agent, AGENT_1, "REPEATABLE READ").await;
    assert_eq!(count(&agent).await, 5);
    set_read(&admin, false).await;
    assert_eq!(count(&agent).await, 5, "repeatable read keeps its snapshot");
    agent.batch_execute("COMMIT").await.expect("commit");
    begin_as(&agent, AGENT_1, "READ COMMITTED").await;
    assert_eq!(
        count(&agent).await,
        0,
        "the next transaction sees the revocation"
    );
    agent.batch_execute("ROLLBACK").await.expect("rollback");
}
