-- Input validation of the HTTP API through ama.request (as ama_authenticator, with a user's JWT
-- claims): each bad input raises 22023 naming the field; idempotent replays; gap-free thread_seq.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(34);

INSERT INTO ama.users (user_id, plan) VALUES ('70000000-0000-4000-8000-00000000000a', 'starter'), ('70000000-0000-4000-8000-00000000000b', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:70000000-0000-4000-8000-00000000000a', 'user', '70000000-0000-4000-8000-00000000000a'),
    ('user:70000000-0000-4000-8000-00000000000b', 'user', '70000000-0000-4000-8000-00000000000b');

-- One request as user O through the shim entry point; returns the envelope, and re-raises a route
-- error envelope as the error it carries (its SQLSTATE and message) so throws_ok can check both.
CREATE FUNCTION pg_temp.req(route text, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    e jsonb := ama.request(route, 'jwt', NULL, '{"sub": "70000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                           '203.0.113.70', args);
BEGIN
    IF e ? 'sqlstate' THEN
        RAISE EXCEPTION USING ERRCODE = e ->> 'sqlstate', MESSAGE = e -> 'body' ->> 'message';
    END IF;
    RETURN e;
END
$$;

SET LOCAL ROLE ama_authenticator;
-- Thread creation through the shim (private, deduplicated by participant set).
SELECT pg_temp.req('threads.create', '{"body": {"target_user_ids": ["70000000-0000-4000-8000-00000000000b"]}}') -> 'body' ->> 'thread_id' AS tid \gset
SELECT is(pg_temp.req('threads.create', '{"body": {"target_user_ids": ["70000000-0000-4000-8000-00000000000b"]}}') -> 'body' ->> 'thread_id',
          :'tid', 'creating the same private thread again returns the existing one');
SELECT is(pg_temp.req('threads.create', '{"body": {"target_user_ids": ["70000000-0000-4000-8000-00000000000b"]}}') -> 'body' ->> 'created',
          'false', '... and says it was not created');

-- Bad input: 22023 with the field's name.
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": ["content"]}')$$, :'tid'),
                 '22023', 'body: expected a JSON object', 'a body that is not an object');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": "hello"}')$$, :'tid'),
                 '22023', 'body: expected a JSON object', 'a string body');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": "x", "sender_id": "user:x"}}')$$, :'tid'),
                 '22023', 'sender_id: unknown field', 'an unknown field (sender_id) is named');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {}}')$$, :'tid'),
                 '22023', 'content: required field is missing', 'a missing required field is named');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": null}}')$$, :'tid'),
                 '22023', 'content: required field is missing', 'a null required field counts as missing');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": 42}}')$$, :'tid'),
                 '22023', 'content: expected a string', 'a non-string content');
SELECT throws_ok($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "not-a-uuid"}, "body": {"content": "x"}}')$$,
                 '22023', 'thread_id: expected a UUID', 'a malformed thread UUID');
SELECT throws_ok($$SELECT pg_temp.req('threads.get', '{"path": {"thread_id": "70000000-0000-4000-8000-00000000000"}}')$$,
                 '22023', 'thread_id: expected a UUID', 'a UUID one digit short');
SELECT throws_ok($$SELECT pg_temp.req('threads.create', '{"body": {"target_user_ids": ["nope"]}}')$$,
                 '22023', 'target_user_ids: expected a UUID', 'a malformed target user UUID');
SELECT throws_ok($$SELECT pg_temp.req('threads.create', '{"body": {"target_user_ids": []}}')$$,
                 '22023', 'target_user_ids: expected an array of 1 to 50 user UUIDs', 'an empty target list');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', jsonb_build_object('path', jsonb_build_object('thread_id', %L), 'body', jsonb_build_object('content', repeat('x', 5001))))$$, :'tid'),
                 '22023', 'content: at most 5000 characters', 'content of 5001 characters');
SELECT lives_ok(format($$SELECT pg_temp.req('messages.send', jsonb_build_object('path', jsonb_build_object('thread_id', %L), 'body', jsonb_build_object('content', repeat('é', 5000))))$$, :'tid'),
                'content of exactly 5000 (multi-byte) characters is accepted');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": ""}}')$$, :'tid'),
                 '22023', 'content: at least 1 characters', 'empty content');
SELECT throws_ok(format($$SELECT pg_temp.req('threads.set_mode', '{"path": {"thread_id": "%s"}, "body": {"participation_mode": "sometimes"}}')$$, :'tid'),
                 '22023', 'participation_mode: must be open or invocation_only', 'an unknown participation_mode');
SELECT throws_ok(format($$SELECT pg_temp.req('threads.set_mode', '{"path": {"thread_id": "%s"}, "body": {}}')$$, :'tid'),
                 '22023', 'participation_mode: required field is missing', 'a missing participation_mode');
SELECT throws_ok(format($$SELECT pg_temp.req('events.poll', '{"path": {"thread_id": "%s"}, "query": {"after_seq": -1}}')$$, :'tid'),
                 '22023', 'after_seq: must be between 0 and 9223372036854775806', 'a negative after_seq');
SELECT throws_ok(format($$SELECT pg_temp.req('events.poll', '{"path": {"thread_id": "%s"}, "query": {"after_seq": "1; DROP TABLE x"}}')$$, :'tid'),
                 '22023', 'after_seq: expected an integer', 'a non-integer after_seq');
SELECT throws_ok(format($$SELECT pg_temp.req('events.poll', '{"path": {"thread_id": "%s"}, "query": {"limit": 0}}')$$, :'tid'),
                 '22023', 'limit: must be between 1 and 200', 'limit 0');
SELECT throws_ok(format($$SELECT pg_temp.req('events.poll', '{"path": {"thread_id": "%s"}, "query": {"limit": 201}}')$$, :'tid'),
                 '22023', 'limit: must be between 1 and 200', 'limit 201');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": "x", "mentions": "user:x"}}')$$, :'tid'),
                 '22023', 'mentions: expected an array of at most 100 actor ids', 'mentions that are not an array');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": "x", "mentions": ["user:70000000-0000-4000-8000-0000000000ff"]}}')$$, :'tid'),
                 '22023', 'mentions: every mention must name a participant of the thread', 'a mention of a non-participant');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": "x", "metadata": [1]}}')$$, :'tid'),
                 '22023', 'metadata: expected a JSON object', 'metadata that is not an object');
SELECT throws_ok($$SELECT pg_temp.req('threads.list', '{"query": {"cursor": "garbage"}}')$$,
                 '22023', 'cursor: malformed', 'a malformed cursor');

-- Idempotency: the same client_message_id returns the first message; different content is AM409.
SELECT pg_temp.req('messages.send', jsonb_build_object('path', jsonb_build_object('thread_id', :'tid'),
                   'body', '{"content": "hello", "client_message_id": "c-1"}'::jsonb)) -> 'body' ->> 'message_id' AS mid \gset
SELECT is(pg_temp.req('messages.send', jsonb_build_object('path', jsonb_build_object('thread_id', :'tid'),
                      'body', '{"content": "hello", "client_message_id": "c-1"}'::jsonb)) -> 'body' ->> 'message_id',
          :'mid', 'a replay with the same client_message_id returns the same message_id');
SELECT is(pg_temp.req('messages.send', jsonb_build_object('path', jsonb_build_object('thread_id', :'tid'),
                      'body', '{"content": "hello", "client_message_id": "c-1"}'::jsonb)) -> 'body' ->> 'replayed',
          'true', '... and says it was replayed');
SELECT throws_ok(format($$SELECT pg_temp.req('messages.send', '{"path": {"thread_id": "%s"}, "body": {"content": "different", "client_message_id": "c-1"}}')$$, :'tid'),
                 'AM409', 'client_message_id: already used for a message with different content', 'the same client_message_id with other content is AM409');
SELECT pg_temp.req('messages.agent_send', jsonb_build_object('path', jsonb_build_object('thread_id', :'tid'),
                   'body', '{"content": "agentish", "base_seq": 0}'::jsonb)) -> 'body' ->> 'stale' AS stale \gset
SELECT is(:'stale'::text, 'true', 'a message composed at base_seq 0 after newer messages is marked stale');
RESET ROLE;

-- thread_seq: strictly increasing without gaps, failed attempts included.
SELECT is((SELECT array_agg(thread_seq ORDER BY thread_seq) FROM ama.messages WHERE thread_id = :'tid'::uuid),
          (SELECT array_agg(g::bigint) FROM generate_series(1, (SELECT count(*) FROM ama.messages WHERE thread_id = :'tid'::uuid)) g),
          'thread_seq runs 1..n without gaps despite the rejected requests');
SELECT is((SELECT last_seq FROM ama.threads WHERE thread_id = :'tid'::uuid), (SELECT max(thread_seq) FROM ama.messages WHERE thread_id = :'tid'::uuid),
          'the thread''s last_seq equals its highest message seq');
SELECT is((SELECT count(*)::int FROM ama.messages WHERE thread_id = :'tid'::uuid AND client_message_id = 'c-1'), 1,
          'the replays stored one message');
SELECT is((SELECT count(*)::int FROM ama.messages WHERE thread_id = :'tid'::uuid), 3,
          'exactly three messages were stored (5000 chars, hello, agentish)');
-- Nothing from the rejected requests was stored.
SELECT ok(NOT EXISTS (SELECT 1 FROM ama.messages WHERE content LIKE '%DROP TABLE%'), 'no injected content was stored');

SELECT * FROM finish();
ROLLBACK;
