-- Leaks found by the attacker's review of the hardening: content shown without read, names chosen
-- for others, and thread ids told apart by a service login's failed insert.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(8);

INSERT INTO ama.users (user_id, plan) VALUES
    ('86000000-0000-4000-8000-00000000000a', 'basic'),
    ('86000000-0000-4000-8000-00000000000b', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:86000000-0000-4000-8000-00000000000a', 'user', '86000000-0000-4000-8000-00000000000a', 'Owner'),
    ('user:86000000-0000-4000-8000-00000000000b', 'user', '86000000-0000-4000-8000-00000000000b', 'Member');
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('86000000-0000-4000-8000-0000000000f1', 'private', '86000000-0000-4000-8000-00000000000a', 'user:86000000-0000-4000-8000-00000000000a');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('86000000-0000-4000-8000-0000000000f1', 'user:86000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('86000000-0000-4000-8000-0000000000f1', 'user:86000000-0000-4000-8000-00000000000b', 'user', '{send}');
INSERT INTO ama.messages (thread_id, sender_id, role, content) VALUES
    ('86000000-0000-4000-8000-0000000000f1', 'user:86000000-0000-4000-8000-00000000000a', 'user', 'the secret plan is X');

-- 1. A send-only member lists the thread but sees nothing that was said.
SET LOCAL ROLE ama_authenticator;
SELECT ama.request('threads.list', 'jwt', NULL, '{"sub": "86000000-0000-4000-8000-00000000000b", "aud": "authenticated"}',
                   '203.0.113.86', '{}') AS member_list \gset
SELECT ama.request('threads.list', 'jwt', NULL, '{"sub": "86000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                   '203.0.113.86', '{}') AS owner_list \gset
RESET ROLE;
SELECT is((:'member_list'::jsonb) -> 'body' -> 'threads' -> 0 ->> 'thread_id', '86000000-0000-4000-8000-0000000000f1',
          'a send-only member still lists the thread it takes part in');
SELECT ok(:'member_list' NOT LIKE '%secret plan%', 'without read, threads.list shows no message preview');
SELECT is(((:'member_list'::jsonb) -> 'body' -> 'threads' -> 0 ->> 'last_seq')::int, 0,
          'without read, threads.list shows no message count');
SELECT is((:'owner_list'::jsonb) -> 'body' -> 'threads' -> 0 ->> 'last_message_preview', 'the secret plan is X',
          'a reader sees the preview');

-- 2. A manager cannot show another participant under a name of its choosing.
INSERT INTO ama.users (user_id, plan) VALUES ('86000000-0000-4000-8000-00000000000c', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:86000000-0000-4000-8000-00000000000c', 'user', '86000000-0000-4000-8000-00000000000c', 'Carol');
SELECT ama.impersonate('user:86000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, display_name, capabilities) VALUES
    ('86000000-0000-4000-8000-0000000000f1', 'user:86000000-0000-4000-8000-00000000000c', 'user', 'Security Team', '{read}');
RESET ROLE;
SELECT is((SELECT display_name FROM ama.participants WHERE actor_id = 'user:86000000-0000-4000-8000-00000000000c'), 'Carol',
          'a participant''s display name is always its actor''s');

-- 3. A private thread names its creator's owner, never a chosen victim.
SET LOCAL ROLE authenticated;
SELECT throws_ok($$INSERT INTO ama.threads (thread_type, owner_user_id, created_by)
                   VALUES ('private', '86000000-0000-4000-8000-00000000000c', 'user:86000000-0000-4000-8000-00000000000a')$$,
                 '42501', NULL, 'a private thread cannot be created in another user''s name (42501)');
RESET ROLE;

-- 4. A service login without a context cannot tell existing thread ids from unknown ones.
CREATE ROLE leak_test_svc LOGIN NOSUPERUSER IN ROLE ama_service;
SET LOCAL SESSION AUTHORIZATION leak_test_svc;
SELECT throws_ok($$INSERT INTO ama.messages (thread_id, sender_id, role, content)
                   VALUES ('86000000-0000-4000-8000-0000000000f1', 'x', 'system', 'x')$$,
                 '42501', NULL, 'service login, existing thread: 42501');
SELECT throws_ok($$INSERT INTO ama.messages (thread_id, sender_id, role, content)
                   VALUES ('86000000-0000-4000-8000-0000000000ff', 'x', 'system', 'x')$$,
                 '42501', NULL, 'service login, unknown thread: the same 42501');
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
