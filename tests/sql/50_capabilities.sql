-- Capabilities: aliases, unknown names, and changes by a manage holder that take effect at once;
-- nobody else can change them, neither through the API nor by direct UPDATE.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(48);

-- Fixtures: private thread T with manager O and member M; outsider X takes part in nothing.
INSERT INTO ama.users (user_id) VALUES
    ('f0000000-0000-4000-8000-00000000000a'), ('f0000000-0000-4000-8000-00000000000b'), ('f0000000-0000-4000-8000-00000000000c');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:f0000000-0000-4000-8000-00000000000a', 'user', 'f0000000-0000-4000-8000-00000000000a'),
    ('user:f0000000-0000-4000-8000-00000000000b', 'user', 'f0000000-0000-4000-8000-00000000000b'),
    ('user:f0000000-0000-4000-8000-00000000000c', 'user', 'f0000000-0000-4000-8000-00000000000c');
INSERT INTO ama.threads (thread_id, thread_type, created_by) VALUES
    ('f1000000-0000-4000-8000-000000000001', 'private', 'user:f0000000-0000-4000-8000-00000000000a');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', 'user', '{read,send}');
INSERT INTO ama.messages (thread_id, sender_id, role, content) VALUES
    ('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', 'user', 'first');

-- ---------------------------------------------------------------------------
-- Canonical names and aliases (as a request role).
-- ---------------------------------------------------------------------------
SET LOCAL ROLE authenticated;
SELECT is(ama.canonical_capabilities('{observe}'), '{read}', 'observe is an alias of read');
SELECT is(ama.canonical_capabilities('{speak}'), '{send}', 'speak is an alias of send');
SELECT is(ama.canonical_capabilities('{manage_thread}'), '{manage}', 'manage_thread is an alias of manage');
SELECT is(ama.canonical_capabilities('{manage_participants}'), '{manage}', 'manage_participants is an alias of manage');
SELECT is(ama.canonical_capabilities('{run}'), '{run}', 'run is canonical');
SELECT is(ama.canonical_capabilities('{manage,speak,observe,run,read,send,manage_thread}'), '{read,send,run,manage}',
          'aliases and duplicates collapse to the canonical set, in canonical order');
SELECT is(ama.canonical_capabilities('{}'), '{}', 'the empty set stays empty');
SELECT throws_ok($$SELECT ama.canonical_capabilities('{read,admin}')$$, '22023', 'unknown capability "admin"', 'an unknown capability raises 22023');
SELECT throws_ok($$SELECT ama.canonical_capabilities('{READ}')$$, '22023', 'unknown capability "READ"', 'capability names are case-sensitive');
SELECT throws_ok($$SELECT ama.canonical_capabilities(ARRAY[NULL]::text[])$$, '22023', 'unknown capability "NULL"', 'a NULL capability raises 22023');
SELECT throws_ok($$SELECT ama.canonical_capabilities(NULL)$$, '22004', NULL, 'a NULL array raises 22004');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- A manage holder changes the member's capabilities; each change takes effect at once.
-- ---------------------------------------------------------------------------
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT is(ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{observe}'),
          '{read}', 'the manager sets the member to {observe}, stored as {read}');
SELECT is((SELECT capabilities FROM ama.participants WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000b'), '{read}',
          'the manager sees the member''s new capabilities');
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{read,superuser}')$$,
                 '22023', 'unknown capability "superuser"', 'set_capabilities with an unknown capability raises 22023');
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000c', '{read}')$$,
                 'AM404', 'participant not found', 'set_capabilities for a non-participant raises AM404');
SELECT throws_ok($$UPDATE ama.participants SET capabilities = '{read,admin}' WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000b'$$,
                 '23514', NULL, 'a direct UPDATE to a non-canonical capability violates the CHECK (23514)');
RESET ROLE;

SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000b');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT ama.api_messages_send('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}, "body": {"content": "x"}}')$$,
                 '42501', 'this needs the send capability in the thread', 'the member (read only) can no longer send (42501)');
SELECT throws_ok($$SELECT ama.post_message('f1000000-0000-4000-8000-000000000001', 'x')$$,
                 '42501', NULL, 'nor through ama.post_message (42501)');
SELECT is((SELECT count(*)::int FROM ama.messages), 1, 'the member still reads the thread''s message');
-- The member cannot change capabilities: not the manager's, not its own, by no route.
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{read,send,run,manage}')$$,
                 '42501', 'changing capabilities needs the manage capability', 'a non-manager cannot raise its own capabilities (42501)');
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', '{}')$$,
                 '42501', 'changing capabilities needs the manage capability', 'a non-manager cannot strip the manager (42501)');
SELECT throws_ok($$SELECT ama.grant_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{manage_thread}')$$,
                 '42501', NULL, 'a non-manager cannot grant itself manage_thread (42501)');
SELECT throws_ok($$SELECT ama.revoke_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', '{manage}')$$,
                 '42501', NULL, 'a non-manager cannot revoke the manager''s manage (42501)');
SELECT throws_ok($$UPDATE ama.participants SET capabilities = '{read,send,run,manage}' WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000b'$$,
                 '42501', NULL, 'a non-manager cannot raise its own capabilities by direct UPDATE (42501)');
SELECT is_empty($$UPDATE ama.participants SET capabilities = '{}' WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000a' RETURNING 1$$,
                'a non-manager''s direct UPDATE of the manager''s row touches nothing');
SELECT results_eq($$UPDATE ama.participants SET last_read_seq = 1 WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000b' RETURNING last_read_seq$$,
                  ARRAY[1::bigint], 'a participant may still move its own read marker');
SELECT throws_ok($$INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
                   VALUES ('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000c', 'user', '{read}')$$,
                 '42501', NULL, 'a non-manager cannot add a participant (42501)');
SELECT is_empty($$DELETE FROM ama.participants WHERE actor_id = 'user:f0000000-0000-4000-8000-00000000000a' RETURNING 1$$,
                'a non-manager cannot remove the manager');
SELECT throws_ok($$SELECT ama.api_threads_set_mode('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}, "body": {"participation_mode": "open"}}')$$,
                 '42501', 'this needs the manage capability in the thread', 'a non-manager cannot set the mode (42501)');
RESET ROLE;

-- The manager gives speak back; the member can send again in the same transaction.
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT is(ama.grant_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{speak}'),
          '{read,send}', 'the manager grants speak (send)');
RESET ROLE;
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000b');
SET LOCAL ROLE authenticated;
SELECT is(ama.api_messages_send('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}, "body": {"content": "back"}}') ->> 'accepted',
          'true', 'the member sends again at once');
RESET ROLE;

-- The manager revokes observe (read): the member still sees the thread row but no messages or details.
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT is(ama.revoke_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{observe}'),
          '{send}', 'the manager revokes observe (read)');
RESET ROLE;
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000b');
SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*)::int FROM ama.messages WHERE sender_id <> 'user:f0000000-0000-4000-8000-00000000000b'), 0,
          'without read the member sees no one else''s messages');
SELECT is((SELECT count(*)::int FROM ama.messages WHERE sender_id = 'user:f0000000-0000-4000-8000-00000000000b'), 0,
          'without read it does not see even its own messages (read governs every message)');
SELECT throws_ok($$SELECT ama.api_threads_get('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}}')$$,
                 '42501', 'this needs the read capability in the thread', 'GET thread without read raises 42501');
SELECT throws_ok($$SELECT ama.api_events_poll('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}}')$$,
                 '42501', 'this needs the read capability in the thread', 'polling events without read raises 42501');
SELECT is((SELECT count(*)::int FROM ama.threads), 1, 'the thread row itself stays visible to a participant');
RESET ROLE;

-- The manager promotes the member to manager with manage_participants; the new manager acts at once.
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT is(ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000b', '{observe,speak,manage_participants}'),
          '{read,send,manage}', 'the manager makes the member a manager');
RESET ROLE;
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000b');
SET LOCAL ROLE authenticated;
SELECT is(ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', '{read}'),
          '{read}', 'the new manager changes the old manager''s capabilities');
SELECT is(ama.api_threads_set_mode('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}, "body": {"participation_mode": "invocation_only"}}') ->> 'participation_mode',
          'invocation_only', 'the new manager sets the mode');
RESET ROLE;
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', '{read,send,manage}')$$,
                 '42501', NULL, 'the demoted manager lost manage at once (42501)');
SELECT throws_ok($$SELECT ama.api_messages_send('{"path": {"thread_id": "f1000000-0000-4000-8000-000000000001"}, "body": {"content": "x"}}')$$,
                 '42501', NULL, 'and send (42501)');
RESET ROLE;

-- An outsider gets AM404 from every capability function, never 42501.
SELECT ama.impersonate('user:f0000000-0000-4000-8000-00000000000c');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000c', '{read}')$$,
                 'AM404', 'thread not found', 'outsider: set_capabilities raises AM404');
SELECT throws_ok($$SELECT ama.grant_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000c', '{read}')$$,
                 'AM404', 'thread not found', 'outsider: grant_capabilities raises AM404');
SELECT throws_ok($$SELECT ama.revoke_capabilities('f1000000-0000-4000-8000-000000000001', 'user:f0000000-0000-4000-8000-00000000000a', '{manage}')$$,
                 'AM404', 'thread not found', 'outsider: revoke_capabilities raises AM404');
SELECT throws_ok($$SELECT ama.set_capabilities('f1000000-0000-4000-8000-0000000000ff', 'user:f0000000-0000-4000-8000-00000000000c', '{read}')$$,
                 'AM404', 'thread not found', 'unknown thread: the same AM404');
RESET ROLE;

-- Every change is audited with the acting manager.
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'capabilities_changed' AND subject = 'f1000000-0000-4000-8000-000000000001'),
          5, 'five capability changes were audited');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'capabilities_changed' AND actor_id = 'user:f0000000-0000-4000-8000-00000000000b'
                    AND detail ->> 'participant' = 'user:f0000000-0000-4000-8000-00000000000a'),
          'the audit row names the acting manager and the participant');

SELECT * FROM finish();
ROLLBACK;
