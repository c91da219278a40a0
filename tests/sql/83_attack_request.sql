-- Attack: the shim entry point, ama.request, as ama_authenticator.
--   1. A service's SQL rate-limit calls cannot reach the buckets ama.request uses (lock-out).
--   2. Failed authentication counts per (client IP, credential kind): a guesser is stopped, and
--      valid credentials from the same address are still served.
--   3. Every route has a rate policy, with the contract's limits, and a DBA's change applies at once.
--   4. A plan downgrade takes effect on the very next request.
--   5. An email is not a credential; a visitor token is bound to its one thread.
--   6. Creating a thread does not reveal whether a user id exists.
-- Rate-limit decisions survive ROLLBACK, so every key here (IPs, users) is fresh for the run or
-- reserved to this file.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(83);

\ir include/8x_fixture.psql

-- One request as ama_authenticator: the envelope (or, if it raised, {"raised": SQLSTATE}).
CREATE FUNCTION pg_temp.req(route text, kind text, cred text, claims jsonb, ip text, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    BEGIN
        SET LOCAL ROLE ama_authenticator;
        r := ama.request(route, kind, cred, claims, ip::inet, coalesce(args, '{}'));
    EXCEPTION WHEN OTHERS THEN
        r := jsonb_build_object('raised', SQLSTATE, 'message', SQLERRM);
    END;
    RESET ROLE;
    RETURN r;
END
$$;
CREATE FUNCTION pg_temp.jwt(sub text, email text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('sub', sub, 'aud', 'authenticated', 'role', 'authenticated', 'email', email))
$$;
CREATE FUNCTION pg_temp.path(k text, v text, body jsonb DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('path', jsonb_build_object(k, v), 'body', body))
$$;
-- A well-formed agent token (prefix, 64 hex, CRC32) that was never issued.
CREATE FUNCTION pg_temp.unknown_agent_token() RETURNS text LANGUAGE sql AS $$ SELECT raw_token FROM ama._token_new('agent') $$;

SELECT gen_random_uuid() AS u1, gen_random_uuid() AS u2, gen_random_uuid() AS u3, gen_random_uuid() AS o2, gen_random_uuid() AS a2,
       gen_random_uuid() AS w2, gen_random_uuid() AS t2a, gen_random_uuid() AS t2b, gen_random_uuid() AS never,
       'sp83-' || substr(md5(random()::text), 1, 12) AS slug2,
       'sp83-' || substr(md5(random()::text), 1, 10) || '@example.com' AS email \gset v_
SELECT raw_token AS v_a2_raw, token_hash AS v_a2_hash, token_prefix AS v_a2_prefix FROM ama._token_new('agent') \gset
INSERT INTO ama.users (user_id, plan) VALUES (:'v_u1', 'starter'), (:'v_o2', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:' || :'v_u1', 'user', :'v_u1', 'U1'), ('user:' || :'v_o2', 'user', :'v_o2', 'O2'),
    ('agent:' || :'v_a2', 'agent', :'v_o2', 'A2');

-- ---------------------------------------------------------------------------
-- 1. A service poisons every bucket it can name; ama.request's own buckets are untouched.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE poison (policy text, key text, rate_limit int, outcome text);
GRANT ALL ON poison TO PUBLIC;
INSERT INTO poison (policy, key, rate_limit)
SELECT p.name, k.key, p.rate_limit
  FROM ama.rate_policies p,
       unnest(ARRAY['ip:203.0.113.9', 'ip:203.0.113.9|agent', 'ip:203.0.113.9|jwt', 'ip:203.0.113.9|user', 'ip:203.0.113.9|internal',
                    'ip:203.0.113.9|service', 'ip:203.0.113.9|visitor', 'ip:203.0.113.9|anon', 'ip:203.0.113.9|none',
                    'authfail:agent:203.0.113.9', 'authfail:jwt:203.0.113.9', '203.0.113.9',
                    'user:' || :'v_u1', 'user:' || :'fx_owner', 'tok:' || :'fx_tok_id',
                    'key:' || (SELECT key_id::text FROM ama.internal_keys WHERE name = :'fx_key_name'),
                    'vst:' || (SELECT token_id::text FROM ama.visitor_tokens WHERE thread_id = :'fx_pub')]) k(key);
DO $$
DECLARE
    p record;
BEGIN
    SET LOCAL ROLE sp8x_svc;
    FOR p IN SELECT x.policy, x.key, x.rate_limit FROM poison x LOOP
        BEGIN
            -- Fill the bucket (cost = the limit), then hit it again.
            PERFORM ama.rate_limit(p.policy, p.key, NULL, p.rate_limit);
            PERFORM ama.rate_limit(p.policy, p.key, NULL, 1);
            PERFORM ama.rate_limit(p.policy, p.key, NULL, 1);
            UPDATE poison SET outcome = 'ok' WHERE policy = p.policy AND key = p.key;
        EXCEPTION WHEN OTHERS THEN
            UPDATE poison SET outcome = SQLSTATE WHERE policy = p.policy AND key = p.key;
        END;
    END LOOP;
    RESET ROLE;
END
$$;
SELECT is((SELECT count(*)::int FROM poison WHERE outcome = 'ok'), (SELECT count(*)::int FROM poison),
          'a service login filled every policy''s bucket for every key ama.request might use (over SQL)');
SELECT is(pg_temp.req('threads.list', 'jwt', NULL, pg_temp.jwt(:'v_u1'), '203.0.113.9', NULL) ->> 'status', '200',
          'then a valid JWT from 203.0.113.9 is still served (200)');
SELECT is(pg_temp.req('events.poll', 'agent', :'fx_agent_raw', NULL, '203.0.113.9', pg_temp.path('thread_id', :'fx_ws')) ->> 'status', '200',
          'a valid agent token from 203.0.113.9 is still served (200)');
SELECT is(pg_temp.req('internal.system_message', 'internal', :'fx_key_raw', NULL, '203.0.113.9',
                      pg_temp.path('thread_id', :'fx_ws', '{"content": "sys"}')) ->> 'status', '200',
          'a valid internal key from 203.0.113.9 is still served (200)');
SELECT is(pg_temp.req('public.events', 'visitor', :'fx_visitor_raw', NULL, '203.0.113.9', pg_temp.path('thread_id', :'fx_pub')) ->> 'status', '200',
          'a valid visitor token from 203.0.113.9 is still served (200)');
SELECT is(pg_temp.req('events.poll', 'agent', pg_temp.unknown_agent_token(), NULL, '203.0.113.9', pg_temp.path('thread_id', :'fx_ws')) ->> 'status', '401',
          'a failing agent token from 203.0.113.9 gets 401, not 429 (its failure bucket is untouched)');
SELECT is(pg_temp.req('threads.list', 'jwt', NULL, pg_temp.jwt('not-a-uuid'), '203.0.113.9', NULL) ->> 'status', '401',
          'a failing JWT from 203.0.113.9 gets 401, not 429');
SELECT is(pg_temp.req('public.send', NULL, NULL, NULL, '203.0.113.9',
                      pg_temp.path('custom_slug', :'fx_slug', jsonb_build_object('email', 'sp83-poison@example.com', 'content', 'hi'))) ->> 'status', '200',
          'an anonymous public.send from 203.0.113.9 is served (200)');
SELECT is(pg_temp.req('tokens.list', 'jwt', NULL, pg_temp.jwt(:'fx_owner'), '203.0.113.9', NULL) ->> 'status', '200',
          'the owner''s user-keyed and credential-keyed routes are served (tokens.list 200)');
SELECT lives_ok(format($q$SELECT ama.upsert_user(%L, NULL, NULL, 'basic')$q$, :'v_u1'),
                'a plan change for a user whose plan_change bucket a service filled over SQL is not refused');

-- ---------------------------------------------------------------------------
-- 2. Failed authentication, per (client IP, credential kind), from 203.0.113.7.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE failures (n int, env jsonb);
INSERT INTO failures
SELECT i, pg_temp.req('events.poll', 'agent', pg_temp.unknown_agent_token(), NULL, '203.0.113.7', pg_temp.path('thread_id', :'fx_ws'))
  FROM generate_series(1, 12) i;
SELECT is(ARRAY(SELECT env ->> 'status' FROM failures WHERE n <= 10 ORDER BY n), array_fill('401'::text, ARRAY[10]),
          'the first 10 unknown agent tokens from 203.0.113.7 get 401');
SELECT is(ARRAY(SELECT env ->> 'status' FROM failures WHERE n > 10 ORDER BY n), ARRAY['429', '429'], 'the 11th and 12th get 429');
SELECT ok((SELECT (env -> 'rate' ->> 'retry_after')::int > 0 FROM failures WHERE n = 11), 'the 429 carries a rate object with retry_after > 0');
SELECT is((SELECT env -> 'body' ->> 'code' FROM failures WHERE n = 11), 'RATE_LIMITED', 'the 429 body code is RATE_LIMITED');
SELECT is(pg_temp.req('events.poll', 'agent', :'fx_agent_raw', NULL, '203.0.113.7', pg_temp.path('thread_id', :'fx_ws')) ->> 'status', '200',
          'from the same IP a valid agent token is served (200)');
SELECT is(pg_temp.req('threads.list', 'jwt', NULL, pg_temp.jwt(:'fx_owner'), '203.0.113.7', NULL) ->> 'status', '200',
          'from the same IP a valid JWT is served (200)');
SELECT is(pg_temp.req('internal.system_message', 'internal', :'fx_key_raw', NULL, '203.0.113.7',
                      pg_temp.path('thread_id', :'fx_ws', '{"content": "sys"}')) ->> 'status', '200',
          'from the same IP a valid internal key is served (200)');
SELECT is(pg_temp.req('public.events', 'visitor', :'fx_visitor_raw', NULL, '203.0.113.7', pg_temp.path('thread_id', :'fx_pub')) ->> 'status', '200',
          'from the same IP a valid visitor token is served (200)');
SELECT is(pg_temp.req('threads.list', 'jwt', NULL, pg_temp.jwt('not-a-uuid'), '203.0.113.7', NULL) ->> 'status', '401',
          'from the same IP a failing JWT is 401 (a separate counter per credential kind)');
SELECT is(pg_temp.req('events.poll', 'agent', pg_temp.unknown_agent_token(), NULL, '203.0.113.8', pg_temp.path('thread_id', :'fx_ws')) ->> 'status', '401',
          'a failing agent token from another IP is 401');
SELECT is(pg_temp.req('events.poll', 'agent', pg_temp.unknown_agent_token(), NULL, '203.0.113.7', pg_temp.path('thread_id', :'fx_ws')) ->> 'status', '429',
          'and from 203.0.113.7 failing agent tokens are still refused (429)');

-- ---------------------------------------------------------------------------
-- 3. Every route has a rate policy; the limits are the contract's (3.3); a change applies at once.
-- ---------------------------------------------------------------------------
SELECT col_not_null('ama', 'routes', 'rate_policy', 'ama.routes.rate_policy is NOT NULL');
SET LOCAL ROLE ama_admin;
SELECT throws_ok($$INSERT INTO ama.routes (route, handler, rate_policy, principals) VALUES ('sp83.unlimited', 'ama.api_threads_list(jsonb)', NULL, '{user}')$$,
                 '23502', NULL, 'a DBA cannot add a route without a rate policy (23502)');
SELECT throws_ok($$UPDATE ama.routes SET rate_policy = NULL WHERE route = 'threads.list'$$, '23502', NULL,
                 'nor remove a route''s policy (23502)');
RESET ROLE;
SELECT is_empty($$SELECT r.route FROM ama.routes r LEFT JOIN ama.rate_policies p ON p.name = r.rate_policy WHERE p.name IS NULL$$,
                'every route references an existing policy');
CREATE TEMP TABLE contract_limits (route text, rate_limit int, key_kind text);
INSERT INTO contract_limits VALUES
    ('threads.list', 600, 'credential'), ('threads.get', 600, 'credential'), ('tokens.list', 600, 'credential'), ('agent.get', 600, 'credential'),
    ('messages.send', 120, 'credential'),
    ('tokens.create', 10, 'user'), ('tokens.revoke', 10, 'user'),
    ('agent.put', 30, 'user'),
    ('internal.users.put', 6000, 'credential'), ('internal.system_message', 6000, 'credential'),
    ('threads.create', 60, 'credential'), ('threads.set_mode', 60, 'credential'), ('messages.agent_send', 60, 'credential'),
    ('webhooks.create', 60, 'credential'), ('webhooks.delete', 60, 'credential'), ('webhooks.list', 600, 'credential'),
    ('events.poll', 300, 'credential'), ('public.events', 300, 'credential'),
    ('public.send', 10, 'ip'),
    -- the WebSocket streams' routes (067: opens and re-checks, typing), each limited like the event stream
    ('ws.threads', 300, 'credential'), ('ws.public', 300, 'credential'), ('ws.typing', 300, 'credential');
SELECT is((SELECT format('%s/%s per %s', p.rate_limit, p.period, p.key_kind) FROM ama.routes r JOIN ama.rate_policies p ON p.name = r.rate_policy
            WHERE r.route = c.route),
          format('%s/00:01:00 per %s', c.rate_limit, c.key_kind),
          format('route %s: %s a minute per %s', c.route, c.rate_limit, c.key_kind))
  FROM contract_limits c ORDER BY c.route;
SELECT is_empty($$SELECT route FROM ama.routes EXCEPT SELECT route FROM contract_limits$$, 'no route outside the contract''s list');
SELECT is((SELECT format('%s/%s', rate_limit, period) FROM ama.rate_policies WHERE name = 'auth_failures'), '10/00:01:00',
          'failed authentication: 10 a minute (per client IP and credential kind)');
-- A DBA's UPDATE applies at the next request.
SELECT is(pg_temp.req('tokens.list', 'jwt', NULL, pg_temp.jwt(:'v_u1'), '198.18.83.1', NULL) ->> 'status', '200', 'tokens.list is served (200) ...');
SET LOCAL ROLE ama_admin;
UPDATE ama.rate_policies SET rate_limit = 1 WHERE name = (SELECT rate_policy FROM ama.routes WHERE route = 'tokens.list');
RESET ROLE;
SELECT is(pg_temp.req('tokens.list', 'jwt', NULL, pg_temp.jwt(:'v_u1'), '198.18.83.1', NULL) ->> 'status', '429',
          '... and after one UPDATE of its policy to 1 a minute, the next request is 429');
SELECT is(pg_temp.req('tokens.list', 'jwt', NULL, pg_temp.jwt(:'v_u1'), '198.18.83.1', NULL) -> 'rate' ->> 'limit', '1',
          'the envelope reports the new limit');

-- ---------------------------------------------------------------------------
-- 4. A plan downgrade, on the very next request. O2 (starter) owns agent A2 (tokens t2a, t2b),
--    an active public page and workspace W2.
-- ---------------------------------------------------------------------------
INSERT INTO ama.agent_profiles (user_id, agent_actor_id, custom_slug, display_name) VALUES (:'v_o2', 'agent:' || :'v_a2', :'v_slug2', 'A2');
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by, participant_key)
VALUES (:'v_w2', 'workspace', :'v_o2', 'user:' || :'v_o2', 'workspace:' || :'v_o2');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    (:'v_w2', 'user:' || :'v_o2', 'user', '{read,send,manage}'), (:'v_w2', 'agent:' || :'v_a2', 'agent', '{read,send,run}');
INSERT INTO ama.agent_tokens (token_id, agent_actor_id, owner_user_id, token_hash, token_prefix) VALUES
    (:'v_t2a', 'agent:' || :'v_a2', :'v_o2', :'v_a2_hash', :'v_a2_prefix'),
    (:'v_t2b', 'agent:' || :'v_a2', :'v_o2', sha256('sp83-t2b'), 'ama_eat_0002');
SELECT is(pg_temp.req('events.poll', 'agent', :'v_a2_raw', NULL, '198.18.83.2', pg_temp.path('thread_id', :'v_w2')) ->> 'status', '200',
          'before the downgrade, O2''s agent token is served (200)');
SET LOCAL ROLE ama_admin;
SELECT lives_ok(format($q$SELECT ama.set_plan(%L, 'basic')$q$, :'v_o2'), 'a DBA sets O2 to basic');
RESET ROLE;
CREATE TEMP TABLE downgraded AS
SELECT r.route, pg_temp.req(r.route, 'agent', :'v_a2_raw', NULL, '198.18.83.3',
                            jsonb_build_object('path', jsonb_build_object('thread_id', :'v_w2', 'custom_slug', :'v_slug2', 'token_id', :'v_t2b'),
                                               'body', jsonb_build_object('content', 'x'))) AS env
  FROM ama.routes r;
SELECT is_empty($$SELECT route, env::text FROM downgraded
                   WHERE env ->> 'status' IS DISTINCT FROM '403' OR env -> 'body' ->> 'code' IS DISTINCT FROM 'FORBIDDEN'
                   UNION ALL SELECT r.route, 'not requested' FROM ama.routes r WHERE r.route NOT IN (SELECT route FROM downgraded)$$,
                'after the downgrade O2''s agent token gets 403 FORBIDDEN on every route');
SELECT is(pg_temp.req('public.send', NULL, NULL, NULL, '198.18.83.4',
                      pg_temp.path('custom_slug', :'v_slug2', jsonb_build_object('email', 'sp83-late@example.com', 'content', 'hi'))) ->> 'status', '404',
          'O2''s public page refuses new visitor messages (404)');
SELECT is(pg_temp.req('agent.put', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.5', '{"body": {"welcome_message": "x"}}') ->> 'status', '403',
          'the basic owner cannot change the profile (403)');
SELECT is(pg_temp.req('agent.put', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.5', '{"body": {"is_active": false, "display_name": "x"}}') ->> 'status', '403',
          'nor change it while switching the page off (403)');
SELECT is(pg_temp.req('agent.put', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.5', '{"body": {"is_active": false}}') ->> 'status', '200',
          'the basic owner can switch the page off (200)');
SELECT is((SELECT is_active FROM ama.agent_profiles WHERE user_id = :'v_o2'), false, '... and it is off');
SELECT is(pg_temp.req('agent.put', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.5', '{"body": {"is_active": true}}') ->> 'status', '403',
          'but cannot switch it back on (403)');
SELECT is(pg_temp.req('tokens.revoke', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.5', pg_temp.path('token_id', :'v_t2b')) ->> 'status', '200',
          'the basic owner can revoke a token (200)');
SET LOCAL ROLE ama_admin;
SELECT lives_ok(format($q$SELECT ama.set_plan(%L, 'starter')$q$, :'v_o2'), 'a DBA sets O2 back to starter');
RESET ROLE;
SELECT is(pg_temp.req('events.poll', 'agent', :'v_a2_raw', NULL, '198.18.83.6', pg_temp.path('thread_id', :'v_w2')) ->> 'status', '200',
          'after the upgrade O2''s agent token is served again (200)');
SELECT is(pg_temp.req('agent.put', 'jwt', NULL, pg_temp.jwt(:'v_o2'), '198.18.83.7', '{"body": {"is_active": true}}') ->> 'status', '200',
          'the starter owner switches the page back on (200)');
SELECT is(pg_temp.req('public.send', NULL, NULL, NULL, '198.18.83.8',
                      pg_temp.path('custom_slug', :'v_slug2', jsonb_build_object('email', 'sp83-back@example.com', 'content', 'hi'))) ->> 'status', '200',
          'and the public page takes visitor messages again (200)');

-- ---------------------------------------------------------------------------
-- 5. Visitors: an email is not a credential; a visitor token reaches its one thread only.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE vis (n int, env jsonb);
INSERT INTO vis VALUES (1, pg_temp.req('public.send', NULL, NULL, NULL, '198.18.83.10',
                                       pg_temp.path('custom_slug', :'fx_slug', jsonb_build_object('email', :'v_email', 'content', 'first'))));
SELECT coalesce((SELECT env -> 'body' ->> 'thread_id' FROM vis WHERE n = 1), '00000000-0000-4000-8000-000000000000') AS t1,
       coalesce((SELECT env -> 'body' ->> 'visitor_token' FROM vis WHERE n = 1), 'none') AS t1_token \gset
SELECT is((SELECT env ->> 'status' FROM vis WHERE n = 1), '200', 'first contact (no credential) is 200');
SELECT matches(:'t1_token'::text, '^ama_vst_[0-9a-f]{72}$', 'first contact returns a visitor_token');
SELECT is((SELECT count(*)::int FROM ama.messages WHERE thread_id::text = :'t1'), 1, 'the first message is in the new thread');
INSERT INTO vis VALUES (2, pg_temp.req('public.send', NULL, NULL, NULL, '198.18.83.11',
                                       pg_temp.path('custom_slug', :'fx_slug', jsonb_build_object('email', :'v_email', 'content', 'again'))));
SELECT is((SELECT env ->> 'status' FROM vis WHERE n = 2), '409', 'the same email again without the token is 409');
SELECT is((SELECT env -> 'body' ->> 'code' FROM vis WHERE n = 2), 'CONFLICT', '... with code CONFLICT');
SELECT ok((SELECT NOT (env::text LIKE '%' || :'t1' || '%') FROM vis WHERE n = 2), '... and does not name the existing thread');
INSERT INTO vis VALUES (3, pg_temp.req('public.send', NULL, NULL, NULL, '198.18.83.12',
                                       pg_temp.path('custom_slug', :'fx_slug', jsonb_build_object('email', upper(:'v_email'), 'content', 'again'))));
SELECT is((SELECT env ->> 'status' FROM vis WHERE n = 3), '409', 'the same email in upper case is 409 too');
SELECT is((SELECT count(*)::int FROM ama.messages WHERE thread_id::text = :'t1'), 1, 'nothing was written by the refused attempts');
INSERT INTO vis VALUES (4, pg_temp.req('public.send', 'visitor', :'t1_token', NULL, '198.18.83.13',
                                       pg_temp.path('custom_slug', :'fx_slug', jsonb_build_object('content', 'with my token'))));
SELECT is((SELECT env ->> 'status' FROM vis WHERE n = 4), '200', 'with the thread''s visitor token the visitor posts (200)');
SELECT is((SELECT env -> 'body' ->> 'thread_id' FROM vis WHERE n = 4), :'t1', '... into the same thread');
SELECT is(pg_temp.req('public.events', 'visitor', :'t1_token', NULL, '198.18.83.14', pg_temp.path('thread_id', :'t1')) ->> 'status', '200',
          'the visitor token reads its own thread (200)');
SELECT is(pg_temp.req('public.events', 'visitor', :'fx_visitor_raw', NULL, '198.18.83.14', pg_temp.path('thread_id', :'t1')) ->> 'status', '404',
          'another visitor''s token on that thread is 404');
-- Even if the other visitor somehow takes part in the thread, its token stays bound to its own thread.
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES (:'t1', 'visitor:' || :'fx_visitor', 'visitor', '{read,send}');
SELECT is(pg_temp.req('public.events', 'visitor', :'fx_visitor_raw', NULL, '198.18.83.14', pg_temp.path('thread_id', :'t1')) ->> 'status', '404',
          'a visitor token on another thread it participates in is still 404');
SELECT is(pg_temp.req('public.events', 'visitor', :'t1_token', NULL, '198.18.83.14', pg_temp.path('thread_id', :'fx_pub')) ->> 'status', '404',
          'the new visitor''s token on the older public thread is 404');

-- ---------------------------------------------------------------------------
-- 6. Creating a thread answers the same for a never-seen user id and an existing one.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE creates (label text, env jsonb);
INSERT INTO creates VALUES
    ('never seen', pg_temp.req('threads.create', 'jwt', NULL, pg_temp.jwt(:'fx_owner'), '198.18.83.20',
                               jsonb_build_object('body', jsonb_build_object('target_user_ids', jsonb_build_array(:'v_never'))))),
    ('existing', pg_temp.req('threads.create', 'jwt', NULL, pg_temp.jwt(:'fx_owner'), '198.18.83.20',
                             jsonb_build_object('body', jsonb_build_object('target_user_ids', jsonb_build_array(:'fx_member')))));
SELECT is((SELECT env ->> 'status' FROM creates WHERE label = 'never seen'), '200', 'threads.create with a never-seen user id is 200');
SELECT is((SELECT env ->> 'status' FROM creates WHERE label = 'existing'), '200', 'threads.create with an existing user id is 200');
CREATE FUNCTION pg_temp.shape(env jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' / ',
        (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(env -> 'body') k),
        (SELECT string_agg(x, ';' ORDER BY x) FROM (
            SELECT (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(p) k) || ':' || (p ->> 'participant_kind') || ':' || (p ->> 'capabilities') AS x
              FROM jsonb_array_elements(env -> 'body' -> 'participants') p) s),
        env -> 'body' ->> 'created', env -> 'body' ->> 'thread_type')
$$;
SELECT is((SELECT pg_temp.shape(env) FROM creates WHERE label = 'never seen'), (SELECT pg_temp.shape(env) FROM creates WHERE label = 'existing'),
          'both answers have the same shape (keys, participant kinds and capabilities, created, type)');

SELECT * FROM finish();
ROLLBACK;
