-- The WebSocket streams' database side (sql/067_realtime.sql), run as the real roles: typing needs
-- send (checked by ama._notify_typing itself, whoever calls it), the thread set lists only threads
-- the caller may read, the visitor stream only the visitor's own thread under its agent's slug, and
-- the sealing function is executable by nobody.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(35);

CREATE TEMP TABLE ids (name text PRIMARY KEY, val text);
GRANT SELECT ON ids TO PUBLIC;

-- Owner O (starter, a public agent), member M, read-only R, outsider X; private thread T of O, M, R.
INSERT INTO ama.users (user_id, email, plan) VALUES
    ('e6700000-0000-4000-8000-00000000000a', 'o@example.com', 'starter'),
    ('e6700000-0000-4000-8000-00000000000b', 'm@example.com', 'basic'),
    ('e6700000-0000-4000-8000-00000000000c', 'r@example.com', 'basic'),
    ('e6700000-0000-4000-8000-00000000000d', 'x@example.com', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:e6700000-0000-4000-8000-00000000000a', 'user', 'e6700000-0000-4000-8000-00000000000a'),
    ('user:e6700000-0000-4000-8000-00000000000b', 'user', 'e6700000-0000-4000-8000-00000000000b'),
    ('user:e6700000-0000-4000-8000-00000000000c', 'user', 'e6700000-0000-4000-8000-00000000000c'),
    ('user:e6700000-0000-4000-8000-00000000000d', 'user', 'e6700000-0000-4000-8000-00000000000d');

CREATE FUNCTION pg_temp.clear_context() RETURNS void LANGUAGE sql AS $$
    SELECT set_config('ama.actor_id', '', true), set_config('ama.principal_kind', '', true),
           set_config('ama.claims', '', true), set_config('ama.plan', '', true),
           set_config('ama.credential_id', '', true), set_config('request.jwt.claims', '', true);
$$;

DO $fixtures$
DECLARE
    r jsonb;
BEGIN
    PERFORM ama.impersonate('user:e6700000-0000-4000-8000-00000000000a');
    SET LOCAL ROLE authenticated;
    r := ama.api_threads_create('{"body": {"target_user_ids": ["e6700000-0000-4000-8000-00000000000b", "e6700000-0000-4000-8000-00000000000c"]}}');
    PERFORM ama.api_agent_put('{"body": {"custom_slug": "rt-agent"}}');
    RESET ROLE;
    INSERT INTO ids VALUES ('t', r ->> 'thread_id');
    FOR i IN 1..2 LOOP
        PERFORM pg_temp.clear_context();
        PERFORM set_config('ama.principal_kind', 'anon', true);
        SET LOCAL ROLE anon;
        r := ama.api_public_send(jsonb_build_object('path', jsonb_build_object('custom_slug', 'rt-agent'),
                                                    'body', jsonb_build_object('email', i || '@v.example', 'content', 'hi')));
        RESET ROLE;
        INSERT INTO ids VALUES ('v' || i || '_thread', r ->> 'thread_id'), ('v' || i || '_token', r ->> 'visitor_token'),
            ('v' || i, (SELECT visitor_actor_id FROM ama.visitors WHERE thread_id = (r ->> 'thread_id')::uuid));
    END LOOP;
    PERFORM pg_temp.clear_context();
END
$fixtures$;
UPDATE ama.participants SET capabilities = '{read}'
 WHERE thread_id = (SELECT val::uuid FROM ids WHERE name = 't') AND actor_id = 'user:e6700000-0000-4000-8000-00000000000c';

-- api_ws_typing args for thread `t` (an ids name) and a status.
CREATE FUNCTION pg_temp.typing(t text, status text DEFAULT 'started') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('path', jsonb_build_object('thread_id', (SELECT val FROM ids WHERE name = t)),
                              'body', jsonb_build_object('status', status))
$$;
GRANT EXECUTE ON FUNCTION pg_temp.typing(text, text) TO PUBLIC;
-- Acts as `actor` under `role`.
CREATE FUNCTION pg_temp.act(actor text, role text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.clear_context();
    PERFORM ama.impersonate(actor);
    EXECUTE format('SET LOCAL ROLE %I', role);
END
$$;

-- ---------------------------------------------------------------------------
-- Typing, called as the request roles.
-- ---------------------------------------------------------------------------
SELECT pg_temp.act('user:e6700000-0000-4000-8000-00000000000a', 'authenticated');
SELECT is(ama.api_ws_typing(pg_temp.typing('t')) ->> 'status', 'started', 'the owner (send) announces typing');
SELECT is(ama.api_ws_typing(pg_temp.typing('t', 'stopped')) ->> 'status', 'stopped', 'and its end');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('t', 'dancing'))$$, '22023', 'status: expected started or stopped',
                 'a status other than started or stopped raises 22023');
SELECT throws_ok($$SELECT ama.api_ws_typing(jsonb_build_object('path', jsonb_build_object('thread_id', (SELECT val FROM ids WHERE name = 't')), 'body', '{"status": "started", "x": 1}'::jsonb))$$,
                 '22023', 'x: unknown field', 'an unknown field raises 22023');
RESET ROLE;
SELECT pg_temp.act('user:e6700000-0000-4000-8000-00000000000b', 'authenticated');
SELECT lives_ok($$SELECT ama.api_ws_typing(pg_temp.typing('t'))$$, 'a member with send announces typing');
RESET ROLE;
SELECT pg_temp.act('user:e6700000-0000-4000-8000-00000000000c', 'authenticated');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('t'))$$, '42501', 'this needs the send capability in the thread',
                 'a read-only participant cannot announce typing (42501)');
SELECT throws_ok($$SELECT ama._notify_typing((SELECT val::uuid FROM ids WHERE name = 't'), true)$$, '42501', NULL,
                 'nor by calling ama._notify_typing directly (42501)');
RESET ROLE;
SELECT pg_temp.act('user:e6700000-0000-4000-8000-00000000000d', 'authenticated');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('t'))$$, 'AM404', 'thread not found',
                 'a non-participant learns nothing of the thread (AM404)');
SELECT throws_ok($$SELECT ama._notify_typing((SELECT val::uuid FROM ids WHERE name = 't'), true)$$, '42501', NULL,
                 'nor announces typing through ama._notify_typing (42501)');
SELECT is(ama._thread_has_slug((SELECT val::uuid FROM ids WHERE name = 'v1_thread'), 'rt-agent'), false,
          'a non-participant learns nothing from ama._thread_has_slug');
RESET ROLE;
-- A visitor (as anon, with its claims): typing is not a visitor's, in its own thread or another.
SELECT pg_temp.act((SELECT val FROM ids WHERE name = 'v1'), 'anon');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('v1_thread'))$$, '42501', NULL,
                 'a visitor cannot announce typing in its own thread (42501)');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('v2_thread'))$$, 'AM404', NULL,
                 'nor in another visitor''s thread (AM404)');
SELECT throws_ok($$SELECT ama._notify_typing((SELECT val::uuid FROM ids WHERE name = 'v1_thread'), true)$$, '42501', NULL,
                 'nor through ama._notify_typing (42501)');
SELECT is(ama._thread_has_slug((SELECT val::uuid FROM ids WHERE name = 'v1_thread'), 'rt-agent'), true,
          'the visitor''s thread belongs to the rt-agent page');
SELECT is(ama._thread_has_slug((SELECT val::uuid FROM ids WHERE name = 'v1_thread'), 'other-agent'), false,
          'and to no other slug');
RESET ROLE;
-- Anonymous, no context at all.
SELECT pg_temp.clear_context();
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT ama._notify_typing((SELECT val::uuid FROM ids WHERE name = 't'), true)$$, '42501', NULL,
                 'anon cannot announce typing (42501)');
SELECT throws_ok($$SELECT ama.api_ws_typing(pg_temp.typing('t'))$$, 'AM404', NULL, 'nor through the route function (AM404)');
RESET ROLE;
-- A trusted-service login has no principal: refused too.
SET LOCAL ROLE service_role;
SELECT throws_ok($$SELECT ama._notify_typing((SELECT val::uuid FROM ids WHERE name = 't'), true)$$, '42501', NULL,
                 'service_role without a principal cannot announce typing (42501)');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- The shim's path: ama.request as ama_authenticator.
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.req(route text, kind text, cred text, claims jsonb, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    PERFORM pg_temp.clear_context();
    SET LOCAL ROLE ama_authenticator;
    r := ama.request(route, kind, cred, claims, '192.0.2.67'::inet, coalesce(args, '{}'));
    RESET ROLE;
    RETURN r;
END
$$;
CREATE FUNCTION pg_temp.jwt(u text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('sub', 'e6700000-0000-4000-8000-00000000000' || u, 'aud', 'authenticated', 'role', 'authenticated',
                              'exp', extract(epoch FROM now())::bigint + 600, 'iat', extract(epoch FROM now())::bigint)
$$;
CREATE FUNCTION pg_temp.threads_of(u text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(t ->> 'thread_id' ORDER BY t ->> 'thread_id'), '{}')
      FROM jsonb_array_elements(pg_temp.req('ws.threads', 'jwt', NULL, pg_temp.jwt(u), NULL) -> 'body' -> 'threads') t
$$;

SELECT is((pg_temp.req('ws.typing', 'jwt', NULL, pg_temp.jwt('a'), pg_temp.typing('t')) ->> 'status')::int, 200,
          'ws.typing: the owner gets 200');
SELECT is((pg_temp.req('ws.typing', 'jwt', NULL, pg_temp.jwt('c'), pg_temp.typing('t')) ->> 'status')::int, 403,
          'ws.typing: the read-only participant gets 403');
SELECT is(pg_temp.req('ws.typing', 'jwt', NULL, pg_temp.jwt('c'), pg_temp.typing('t')) ->> 'sqlstate', '42501',
          'with SQLSTATE 42501');
SELECT is((pg_temp.req('ws.typing', 'jwt', NULL, pg_temp.jwt('d'), pg_temp.typing('t')) ->> 'status')::int, 404,
          'ws.typing: the outsider gets 404');
SELECT is((pg_temp.req('ws.typing', 'none', NULL, NULL, pg_temp.typing('t')) ->> 'status')::int, 401,
          'ws.typing: no credential gets 401');
SELECT is((pg_temp.req('ws.typing', 'visitor', (SELECT val FROM ids WHERE name = 'v1_token'), NULL, pg_temp.typing('v1_thread')) ->> 'status')::int, 403,
          'ws.typing: a visitor token is refused by the route (403)');
SELECT is(pg_temp.threads_of('a'), ARRAY(
              SELECT p.thread_id::text FROM ama.participants p
               WHERE p.actor_id = 'user:e6700000-0000-4000-8000-00000000000a' AND 'read' = ANY (p.capabilities) ORDER BY 1),
          'ws.threads: exactly the owner''s readable threads (T and its workspace)');
SELECT ok((SELECT val FROM ids WHERE name = 't') = ANY (pg_temp.threads_of('a')), 'ws.threads: T among them');
SELECT ok((SELECT val FROM ids WHERE name = 't') = ANY (pg_temp.threads_of('c')), 'ws.threads: a read-only participant reads T');
SELECT is(pg_temp.threads_of('d'), '{}'::text[], 'ws.threads: the outsider has no thread');
UPDATE ama.participants SET capabilities = '{send}'
 WHERE thread_id = (SELECT val::uuid FROM ids WHERE name = 't') AND actor_id = 'user:e6700000-0000-4000-8000-00000000000b';
SELECT is(pg_temp.threads_of('b'), '{}'::text[], 'ws.threads: a participant without read loses the thread at once');
SELECT is((pg_temp.req('ws.public', 'visitor', (SELECT val FROM ids WHERE name = 'v1_token'), NULL,
              jsonb_build_object('path', jsonb_build_object('custom_slug', 'rt-agent', 'thread_id', (SELECT val FROM ids WHERE name = 'v1_thread'))))
           -> 'body' -> 'threads' -> 0 ->> 'thread_id'), (SELECT val FROM ids WHERE name = 'v1_thread'),
          'ws.public: the visitor''s own thread under its agent''s slug');
SELECT is((pg_temp.req('ws.public', 'visitor', (SELECT val FROM ids WHERE name = 'v1_token'), NULL,
              jsonb_build_object('path', jsonb_build_object('custom_slug', 'rt-agent', 'thread_id', (SELECT val FROM ids WHERE name = 'v2_thread'))))
           ->> 'status')::int, 404, 'ws.public: another visitor''s thread is 404');
SELECT is((pg_temp.req('ws.public', 'visitor', (SELECT val FROM ids WHERE name = 'v1_token'), NULL,
              jsonb_build_object('path', jsonb_build_object('custom_slug', 'other-agent', 'thread_id', (SELECT val FROM ids WHERE name = 'v1_thread'))))
           ->> 'status')::int, 404, 'ws.public: another slug is 404');
SELECT is((pg_temp.req('ws.public', 'jwt', NULL, pg_temp.jwt('a'),
              jsonb_build_object('path', jsonb_build_object('custom_slug', 'rt-agent', 'thread_id', (SELECT val FROM ids WHERE name = 'v1_thread'))))
           ->> 'status')::int, 403, 'ws.public: a user JWT is refused (403)');

-- ---------------------------------------------------------------------------
-- Catalog: the typing sealer is executable by nobody, and the definer functions pin search_path.
-- ---------------------------------------------------------------------------
SELECT is_empty($$SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'ama_authenticator', 'ama_service', 'ama_admin']) r
                   WHERE has_function_privilege(r, 'ama._typing_payload(uuid, text, boolean)', 'EXECUTE')$$,
                'ama._typing_payload is executable by no request role, service, the authenticator or a DBA');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                   WHERE p.oid IN ('ama._notify_typing(uuid, boolean)'::regprocedure, 'ama._thread_has_slug(uuid, text)'::regprocedure)
                     AND NOT (p.prosecdef AND p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'])$$,
                'the typing and slug helpers are SECURITY DEFINER with search_path = pg_catalog, pg_temp');

SELECT * FROM finish();
ROLLBACK;
