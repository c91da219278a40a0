-- The per-row membership helpers behind the messages and participants read policies
-- (ama._can_read, ama._is_participant), as the real request role: changes made earlier in the
-- same transaction hold for the next statement, one statement over several threads gets each
-- thread's own answer, and the answer follows the actor, never the previous one.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(12);

INSERT INTO ama.users (user_id, plan) VALUES ('b0000000-0000-4000-8000-000000000001', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:b0000000-0000-4000-8000-000000000001', 'user', 'b0000000-0000-4000-8000-000000000001'),
    ('agent:b1000000-0000-4000-8000-000000000001', 'agent', 'b0000000-0000-4000-8000-000000000001'),
    ('agent:b1000000-0000-4000-8000-000000000002', 'agent', 'b0000000-0000-4000-8000-000000000001');
-- Threads 1 and 2: agent 1 reads 1 only (send without read in 2); agent 2 reads 2 only.
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('b2000000-0000-4000-8000-000000000001', 'private', 'b0000000-0000-4000-8000-000000000001', 'user:b0000000-0000-4000-8000-000000000001'),
    ('b2000000-0000-4000-8000-000000000002', 'private', 'b0000000-0000-4000-8000-000000000001', 'user:b0000000-0000-4000-8000-000000000001');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('b2000000-0000-4000-8000-000000000001', 'agent:b1000000-0000-4000-8000-000000000001', 'agent', '{read,send}'),
    ('b2000000-0000-4000-8000-000000000002', 'agent:b1000000-0000-4000-8000-000000000001', 'agent', '{send}'),
    ('b2000000-0000-4000-8000-000000000002', 'agent:b1000000-0000-4000-8000-000000000002', 'agent', '{read}');
-- Interleaved messages: 3 in thread 1, 4 in thread 2.
INSERT INTO ama.messages (thread_id, sender_id, role, content)
SELECT CASE WHEN g IN (1, 3, 5) THEN 'b2000000-0000-4000-8000-000000000001'::uuid ELSE 'b2000000-0000-4000-8000-000000000002'::uuid END,
       'user:b0000000-0000-4000-8000-000000000001', 'user', 'm' || g
  FROM generate_series(1, 7) g;

CREATE TEMP VIEW seen WITH (security_invoker = true) AS
SELECT thread_id, count(*) AS n FROM ama.messages
 WHERE thread_id IN ('b2000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000002')
 GROUP BY thread_id;
GRANT SELECT ON seen TO authenticated;

SELECT ama.impersonate('agent:b1000000-0000-4000-8000-000000000001');
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT thread_id, n FROM seen ORDER BY thread_id',
    $$VALUES ('b2000000-0000-4000-8000-000000000001'::uuid, 3::bigint)$$,
    'one statement over two threads: agent 1 sees thread 1 (read) and nothing of thread 2 (send only)');
SELECT is(ama._can_read('b2000000-0000-4000-8000-000000000002'), false, '_can_read is false without read');
SELECT is(ama._is_participant('b2000000-0000-4000-8000-000000000002'), true, '_is_participant is true without read');
SELECT is(ama._is_participant('b2000000-0000-4000-8000-0000000000ff'), false, '_is_participant is false for another thread');
SELECT is(ama._can_read(NULL), NULL, '_can_read(NULL) is NULL (strict), which a policy treats as false');

-- The same transaction: read granted in thread 2, then removed from thread 1.
RESET ROLE;
UPDATE ama.participants SET capabilities = '{read,send}'
 WHERE thread_id = 'b2000000-0000-4000-8000-000000000002' AND actor_id = 'agent:b1000000-0000-4000-8000-000000000001';
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT thread_id, n FROM seen ORDER BY thread_id',
    $$VALUES ('b2000000-0000-4000-8000-000000000001'::uuid, 3::bigint), ('b2000000-0000-4000-8000-000000000002'::uuid, 4::bigint)$$,
    'read granted earlier in the transaction holds for the next statement');
RESET ROLE;
DELETE FROM ama.participants
 WHERE thread_id = 'b2000000-0000-4000-8000-000000000001' AND actor_id = 'agent:b1000000-0000-4000-8000-000000000001';
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT thread_id, n FROM seen ORDER BY thread_id',
    $$VALUES ('b2000000-0000-4000-8000-000000000002'::uuid, 4::bigint)$$,
    'a participant removed earlier in the transaction sees nothing of that thread');
SELECT is(ama._is_participant('b2000000-0000-4000-8000-000000000001'), false, '_is_participant follows the removal');

-- A participant row added inside a savepoint that is rolled back grants nothing afterwards.
SAVEPOINT before_add;
RESET ROLE;
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
VALUES ('b2000000-0000-4000-8000-000000000001', 'agent:b1000000-0000-4000-8000-000000000001', 'agent', '{read}');
SET LOCAL ROLE authenticated;
SELECT is(ama._can_read('b2000000-0000-4000-8000-000000000001'), true, 'inside the savepoint the new row grants read');
ROLLBACK TO SAVEPOINT before_add;
SELECT is(ama._can_read('b2000000-0000-4000-8000-000000000001'), false, 'after ROLLBACK TO SAVEPOINT it does not');

-- Another actor in the same transaction gets its own answers.
RESET ROLE;
SELECT ama.impersonate('agent:b1000000-0000-4000-8000-000000000002');
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT thread_id, n FROM seen ORDER BY thread_id',
    $$VALUES ('b2000000-0000-4000-8000-000000000002'::uuid, 4::bigint)$$,
    'agent 2 sees only thread 2');
SELECT is(ama._can_read('b2000000-0000-4000-8000-000000000001'), false, 'agent 2 cannot read thread 1');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
