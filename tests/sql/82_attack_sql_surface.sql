-- Attack: what a request role or a trusted service can do with plain SQL instead of the API.
--   1. forge the audit log (ama._audit), or touch credentials by id (ama._credential_used);
--   2. change a plan without the limit and the audit (every path: upsert_user, plain UPDATE by a
--      service login and by service_role, set_plan by a DBA);
--   3. issue agent tokens past the plan's cap, through the function or by a plain INSERT;
--   4. learn an email from a display name;
--   5. squat another pair's private-thread dedupe key; add another owner's agent (or a visitor) to a
--      thread, or give it run; and a visitor using the manage it holds on its own thread.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(76);

\ir include/8x_fixture.psql

-- More people: X (starter) owns agent AX; S (starter) owns agent AS (token cap); fresh users per plan path.
SELECT gen_random_uuid() AS x, gen_random_uuid() AS ax, gen_random_uuid() AS s, gen_random_uuid() AS as_,
       gen_random_uuid() AS p1, gen_random_uuid() AS p2, gen_random_uuid() AS p3, gen_random_uuid() AS p4, gen_random_uuid() AS p5,
       gen_random_uuid() AS alice, gen_random_uuid() AS bob,
       'sp82-alice-' || substr(md5(random()::text), 1, 8) AS alice_local,
       'sp82-bob-' || substr(md5(random()::text), 1, 8) AS bob_local \gset u_
INSERT INTO ama.users (user_id, plan) VALUES (:'u_x', 'starter'), (:'u_s', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:' || :'u_x', 'user', :'u_x', 'X'), ('agent:' || :'u_ax', 'agent', :'u_x', 'AX'),
    ('user:' || :'u_s', 'user', :'u_s', 'S'), ('agent:' || :'u_as_', 'agent', :'u_s', 'AS');

-- One statement as a role (and optionally an impersonated actor), rolled back unless keep; returns 'ok', a value or the SQLSTATE.
CREATE FUNCTION pg_temp.try(who text, actor text, stmt text, keep boolean DEFAULT false) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    BEGIN
        IF actor IS NOT NULL THEN
            PERFORM ama.impersonate(actor);
        END IF;
        EXECUTE format('SET LOCAL ROLE %I', who);
        IF stmt ~* '^\s*(SELECT|WITH)' THEN
            EXECUTE stmt INTO r;
        ELSE
            EXECUTE stmt;
            r := 'ok';
        END IF;
        r := coalesce(nullif(r, ''), 'ok');
        IF NOT keep THEN
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = r;
        END IF;
    EXCEPTION
        WHEN SQLSTATE 'ZZ999' THEN r := SQLERRM;
        WHEN OTHERS THEN r := SQLSTATE;
    END;
    RESET ROLE;
    PERFORM set_config(s, '', true) FROM unnest(ARRAY['ama.actor_id', 'ama.principal_kind', 'ama.claims', 'ama.credential_id', 'ama.plan']) s;
    RETURN r;
END
$$;

-- ---------------------------------------------------------------------------
-- 1. The audit log cannot be forged; credentials cannot be touched by id.
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.try(r, NULL, $q$SELECT ama._audit('plan_changed', 'user:forged', '{"forged": true}')::text$q$), '42501',
          format('%s cannot call ama._audit (42501)', r))
  FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp8x_svc', 'ama_authenticator']) r;
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE subject = 'user:forged'), 0, 'no forged audit row exists');
-- The old by-id signature is gone, for services too.
SELECT is(pg_temp.try(r, NULL, format($q$SELECT ama._credential_used('internal', %L::uuid)::text$q$,
                                     (SELECT key_id FROM ama.internal_keys WHERE name = :'fx_key_name'))), '42883',
          format('%s: ama._credential_used(kind, id) does not exist (42883)', r))
  FROM unnest(ARRAY['service_role', 'sp8x_svc']) r;
-- Knowing an id (or hashing it) gives nothing: no last_used_at, no audit row.
CREATE TEMP TABLE before_use AS
SELECT (SELECT count(*) FROM ama.audit_log) AS audit_rows,
       (SELECT count(*) FROM ama.internal_keys WHERE last_used_at IS NOT NULL) AS keys_used,
       (SELECT count(*) FROM ama.agent_tokens WHERE last_used_at IS NOT NULL) AS tokens_used,
       (SELECT count(*) FROM ama.visitor_tokens WHERE last_used_at IS NOT NULL) AS visitor_used;
SELECT is(
    ARRAY(SELECT pg_temp.try('sp8x_svc', NULL, format($q$SELECT ama._credential_used(%L, %s)::text$q$, k.kind, h.expr), true)
            FROM (VALUES ('internal'), ('agent'), ('visitor')) k(kind),
                 (VALUES ('sha256(gen_random_uuid()::text::bytea)'),
                         (format('decode(replace(%L, ''-'', ''''), ''hex'')', (SELECT key_id FROM ama.internal_keys WHERE name = :'fx_key_name'))),
                         (format('sha256(%L::bytea)', (SELECT key_id FROM ama.internal_keys WHERE name = :'fx_key_name'))),
                         (format('sha256(%L::bytea)', :'fx_tok_id'))) h(expr)),
    array_fill('ok'::text, ARRAY[12]),
    'a service may call ama._credential_used(kind, hash) with a random hash or with a hash of a known id');
SELECT is((SELECT ARRAY[(SELECT count(*) FROM ama.audit_log), (SELECT count(*) FROM ama.internal_keys WHERE last_used_at IS NOT NULL),
                        (SELECT count(*) FROM ama.agent_tokens WHERE last_used_at IS NOT NULL),
                        (SELECT count(*) FROM ama.visitor_tokens WHERE last_used_at IS NOT NULL)]),
          (SELECT ARRAY[audit_rows, keys_used, tokens_used, visitor_used] FROM before_use),
          '... and that changed no last_used_at and wrote no audit row');
-- Security events are written by the data change itself, whatever path made it.
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_s',
                      format($q$INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
                                VALUES (%L, %L, sha256('sp82-raw-insert'), 'ama_eat_0000')$q$,
                             'agent:' || :'u_as_', :'u_s'), true),
          'ok', 'a starter user inserts an agent token row directly (plain INSERT under RLS; token_id is not theirs to choose)');
SELECT coalesce((SELECT token_id::text FROM ama.agent_tokens WHERE token_hash = sha256('sp82-raw-insert')), 'none') AS raw_insert_id \gset
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'token_issued' AND subject = :'raw_insert_id'), 1,
          '... and the token_issued audit row is written anyway');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_s',
                      format($q$WITH u AS (UPDATE ama.agent_tokens SET revoked_at = now() WHERE token_id::text = %L RETURNING 1)
                                SELECT count(*)::text FROM u$q$, :'raw_insert_id'), true),
          '1', 'the owner revokes it with a plain UPDATE');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'token_revoked' AND subject = :'raw_insert_id'), 1,
          '... and exactly one token_revoked audit row is written');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
                      format($q$UPDATE ama.participants SET capabilities = '{read}' WHERE thread_id = %L AND actor_id = %L$q$,
                             :'fx_pub', 'visitor:' || :'fx_visitor'), true),
          'ok', 'a manager changes capabilities with a plain UPDATE');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'capabilities_changed' AND subject = :'fx_pub'), 1,
          '... and the capabilities_changed audit row is written anyway');

-- ---------------------------------------------------------------------------
-- 2. Plan changes: every path is limited (5 a minute per user, then AM429) and audited once per change.
-- ---------------------------------------------------------------------------
INSERT INTO ama.users (user_id, plan) SELECT u::uuid, 'basic' FROM unnest(ARRAY[:'u_p2', :'u_p3', :'u_p4', :'u_p5']) u;
INSERT INTO ama.actors (actor_id, kind, owner_user_id) SELECT 'user:' || u, 'user', u::uuid FROM unnest(ARRAY[:'u_p2', :'u_p3', :'u_p4', :'u_p5']) u;
SELECT is(pg_temp.try('sp8x_svc', NULL, format($q$SELECT plan FROM ama.upsert_user(%L, NULL, NULL, 'basic')$q$, :'u_p1'), true),
          'basic', 'a service creates user P1 with upsert_user');
CREATE TEMP TABLE plan_paths (ord int, label text, uid uuid, who text, actor text, stmt text);
INSERT INTO plan_paths VALUES
    (1, 'ama.upsert_user by a service login', :'u_p1', 'sp8x_svc', NULL, $q$SELECT plan FROM ama.upsert_user(%L, NULL, NULL, %L)$q$),
    (2, 'plain UPDATE by a service login', :'u_p2', 'sp8x_svc', NULL, $q$UPDATE ama.users SET plan = %2$L WHERE user_id = %1$L$q$),
    (3, 'plain UPDATE by service_role (service context)', :'u_p3', 'service_role', 'service:sp82', $q$UPDATE ama.users SET plan = %2$L WHERE user_id = %1$L$q$),
    (4, 'ama.set_plan by ama_admin', :'u_p4', 'ama_admin', NULL, $q$SELECT ama.set_plan(%L, %L)::text$q$);
CREATE TEMP TABLE plan_runs (ord int, n int, outcome text);
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM plan_paths ORDER BY ord LOOP
        FOR i IN 1..6 LOOP
            INSERT INTO plan_runs VALUES (p.ord, i,
                pg_temp.try(p.who, p.actor, format(p.stmt, p.uid, CASE WHEN i % 2 = 1 THEN 'starter' ELSE 'basic' END), true));
        END LOOP;
    END LOOP;
END
$$;
SELECT is(ARRAY(SELECT CASE WHEN r.outcome IN ('ok', 'starter', 'basic', '') THEN 'ok' ELSE r.outcome END FROM plan_runs r WHERE r.ord = p.ord ORDER BY r.n),
          ARRAY['ok', 'ok', 'ok', 'ok', 'ok', 'AM429'],
          format('%s: 5 plan changes a minute, the 6th raises AM429', p.label))
  FROM plan_paths p ORDER BY p.ord;
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'plan_changed' AND subject = 'user:' || p.uid), 5,
          format('%s: exactly one plan_changed audit row per change (5)', p.label))
  FROM plan_paths p ORDER BY p.ord;
SELECT is((SELECT plan FROM ama.users WHERE user_id = p.uid), 'starter', format('%s: the refused 6th change left the plan as it was', p.label))
  FROM plan_paths p ORDER BY p.ord;
-- Through the shim too (internal key, PUT /internal/v1/users): the 6th change answers 429.
SELECT is(ARRAY(SELECT pg_temp.try('ama_authenticator', NULL,
                    format($q$SELECT ama.request('internal.users.put', 'internal', %L, NULL, '198.18.82.1', %L) ->> 'status'$q$,
                           :'fx_key_raw', jsonb_build_object('path', jsonb_build_object('user_id', :'u_p5'),
                                                             'body', jsonb_build_object('plan', CASE WHEN i % 2 = 1 THEN 'starter' ELSE 'basic' END))), true)
                FROM generate_series(1, 6) i),
          ARRAY['200', '200', '200', '200', '200', '429'],
          'internal.users.put through ama.request: 5 plan changes, the 6th is 429');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'plan_changed' AND subject = 'user:' || :'u_p5'), 5,
          'internal.users.put: exactly 5 plan_changed audit rows');
SELECT is(pg_temp.try('sp8x_svc', NULL, format($q$SELECT plan FROM ama.upsert_user(%L, NULL, 'same plan', 'starter')$q$, :'u_p1'), true),
          'starter', 'an upsert that keeps the plan is not a change ...');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'plan_changed' AND subject = 'user:' || :'u_p1'), 5,
          '... and writes no plan_changed row');

-- ---------------------------------------------------------------------------
-- 3. Agent tokens are capped per plan (ama.plans.max_agent_tokens); starter capped at 2 here.
-- ---------------------------------------------------------------------------
SELECT has_column('ama', 'plans', 'max_agent_tokens', 'ama.plans has max_agent_tokens (the per-plan cap is data)');
SELECT is(pg_temp.try(current_user::text, NULL, $q$SELECT (max_agent_tokens > 0)::text || '/' || (SELECT max_agent_tokens FROM ama.plans WHERE plan = 'basic') FROM ama.plans WHERE plan = 'starter'$q$),
          'true/0', 'starter allows some agent tokens, basic none');
DO $$
BEGIN
    EXECUTE 'UPDATE ama.plans SET max_agent_tokens = 2 WHERE plan = ''starter''';
EXCEPTION WHEN undefined_column THEN NULL;
END
$$;
SELECT is(ARRAY(SELECT pg_temp.try('authenticated', 'user:' || :'u_s',
                                   format($q$SELECT 'ok' FROM ama.issue_agent_token(%L, 'cap')$q$, 'agent:' || :'u_as_'), true)
                  FROM generate_series(1, 3)),
          ARRAY['ok', 'ok', 'AM403'],
          'a starter user (cap 2, one earlier token revoked) issues 2 tokens; the 3rd raises AM403');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_s',
                      format($q$INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
                                VALUES (%L, %L, sha256('sp82-over-cap'), 'ama_eat_0001')$q$, 'agent:' || :'u_as_', :'u_s')),
          'AM403', 'a plain INSERT past the cap is refused too (trigger agent_tokens_cap, AM403)');
SELECT is(pg_temp.try('ama_authenticator', NULL,
              format($q$SELECT ama.request('tokens.create', 'jwt', NULL, %L, '198.18.82.2', %L) ->> 'status'$q$,
                     jsonb_build_object('sub', :'u_s', 'aud', 'authenticated', 'role', 'authenticated'),
                     jsonb_build_object('body', jsonb_build_object('agent_actor_id', 'agent:' || :'u_as_')))),
          '403', 'POST tokens past the cap answers 403 through ama.request');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_s',
              $q$SELECT ama.revoke_agent_token((SELECT token_id FROM ama.agent_tokens WHERE revoked_at IS NULL ORDER BY created_at LIMIT 1))::text IS NOT NULL$q$, true),
          'true', 'revoking one token ...');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_s',
                      format($q$SELECT 'ok' FROM ama.issue_agent_token(%L, 'cap')$q$, 'agent:' || :'u_as_')),
          'ok', '... frees a slot');

-- ---------------------------------------------------------------------------
-- 4. An email is never a display name.
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.try('sp8x_svc', NULL, format($q$SELECT user_id::text FROM ama.upsert_user(%L, %L, NULL, NULL)$q$,
                                              :'u_alice', :'u_alice_local' || '@example.com'), true),
          :'u_alice', 'a service creates Alice with an email and no display name');
SELECT ok((SELECT strpos(display_name, :'u_alice_local') = 0 AND strpos(display_name, '@') = 0 FROM ama.actors WHERE actor_id = 'user:' || :'u_alice'),
          'Alice''s display name contains neither her email nor its local part');
SELECT is(pg_temp.try('ama_authenticator', NULL,
              format($q$SELECT ama.request('threads.list', 'jwt', NULL, %L, '198.18.82.3', '{}') ->> 'status'$q$,
                     jsonb_build_object('sub', :'u_bob', 'aud', 'authenticated', 'role', 'authenticated', 'email', :'u_bob_local' || '@example.com')), true),
          '200', 'Bob is first seen through ama.request with an email claim');
SELECT ok((SELECT strpos(display_name, :'u_bob_local') = 0 AND strpos(display_name, '@') = 0 FROM ama.actors WHERE actor_id = 'user:' || :'u_bob'),
          'Bob''s display name contains neither his email nor its local part');
CREATE TEMP TABLE opened (label text, body text);
INSERT INTO opened
SELECT 'threads.create', pg_temp.try('ama_authenticator', NULL,
           format($q$SELECT ama.request('threads.create', 'jwt', NULL, %L, '198.18.82.4', %L)::text$q$,
                  jsonb_build_object('sub', :'fx_owner', 'aud', 'authenticated', 'role', 'authenticated'),
                  jsonb_build_object('body', jsonb_build_object('target_user_ids', jsonb_build_array(:'u_alice', :'u_bob')))), true);
SELECT is((SELECT CASE WHEN body LIKE '{%' THEN body::jsonb ->> 'status' ELSE body END FROM opened), '200', 'the owner opens a thread with Alice and Bob');
SELECT ok((SELECT strpos(body, :'u_alice_local') = 0 AND strpos(body, :'u_bob_local') = 0 FROM opened),
          'no participant''s display_name (nor anything in the response) shows Alice''s or Bob''s email');

-- ---------------------------------------------------------------------------
-- 5a. A private thread's dedupe key cannot be chosen or squatted.
-- ---------------------------------------------------------------------------
SELECT encode(sha256(convert_to(array_to_string(ARRAY(SELECT x FROM unnest(ARRAY['user:' || :'fx_member', 'user:' || :'u_x']) x ORDER BY x), ','), 'UTF8')), 'hex') AS pair_key \gset
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
              format($q$INSERT INTO ama.threads (thread_id, thread_type, created_by, participant_key) VALUES (gen_random_uuid(), 'private', %L, %L)$q$,
                     'user:' || :'fx_owner', :'pair_key')),
          '42501', 'a user cannot INSERT a private thread carrying a participant_key (another pair''s) (42501)');
SELECT is(pg_temp.try('authenticated', 'agent:' || :'fx_agent',
              format($q$INSERT INTO ama.threads (thread_id, thread_type, created_by, participant_key) VALUES (gen_random_uuid(), 'private', %L, 'chosen')$q$,
                     'agent:' || :'fx_agent')),
          '42501', 'an agent cannot INSERT a private thread carrying a participant_key (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
              format($q$UPDATE ama.threads SET participant_key = %L WHERE thread_id = %L$q$, :'pair_key', :'fx_ws')),
          '42501', 'nor set it later with UPDATE (42501)');
-- Squatting through the sealing helper: create a keyless thread, add ONLY the other pair, seal it.
SELECT pg_temp.try('authenticated', 'user:' || :'fx_owner',
       format($q$DO $x$ BEGIN
                   INSERT INTO ama.threads (thread_id, thread_type, created_by) VALUES ('82000000-0000-4000-8000-0000000000aa', 'private', %1$L);
                   INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
                       ('82000000-0000-4000-8000-0000000000aa', %2$L, 'user', '{read}'),
                       ('82000000-0000-4000-8000-0000000000aa', %3$L, 'user', '{read,send,manage}');
                   PERFORM ama._seal_private_thread('82000000-0000-4000-8000-0000000000aa');
                 END $x$$q$, 'user:' || :'fx_owner', 'user:' || :'fx_member', 'user:' || :'u_x'), true) \g /dev/null
SELECT is((SELECT count(*)::int FROM ama.threads WHERE participant_key = :'pair_key'), 0,
          'a user cannot make a thread of two OTHER users that holds their pair''s dedupe key');
SELECT is(pg_temp.try('ama_authenticator', NULL,
              format($q$SELECT (r -> 'body' -> 'participants') @> %L::jsonb AND r ->> 'status' = '200' FROM ama.request('threads.create', 'jwt', NULL, %L, '198.18.82.5', %L) r$q$,
                     jsonb_build_array(jsonb_build_object('sender_id', 'user:' || :'fx_member', 'capabilities', '["read", "send", "manage"]'::jsonb)),
                     jsonb_build_object('sub', :'fx_member', 'aud', 'authenticated', 'role', 'authenticated'),
                     jsonb_build_object('body', jsonb_build_object('target_user_ids', jsonb_build_array(:'u_x'))))),
          'true', 'the member then opens the thread with X and manages it (the contract''s creator defaults)');

-- ---------------------------------------------------------------------------
-- 5b. A manager adds users, its own agents, and agents their owners allowed in; nothing else.
--     Thread T: private, created by O (manager) with member M, then X added by O.
-- ---------------------------------------------------------------------------
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('82000000-0000-4000-8000-0000000000b1', 'private', :'fx_owner', 'user:' || :'fx_owner');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('82000000-0000-4000-8000-0000000000b1', 'user:' || :'fx_owner', 'user', '{read,send,manage}'),
    ('82000000-0000-4000-8000-0000000000b1', 'user:' || :'fx_member', 'user', '{read,send}');
CREATE FUNCTION pg_temp.add(actor text, caps text) RETURNS text LANGUAGE sql AS $$
    SELECT format($q$INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
                     VALUES ('82000000-0000-4000-8000-0000000000b1', %L, split_part(%L, ':', 1), %L)$q$, actor, actor, caps)
$$;
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('user:' || :'u_x', '{read,send}'), true), 'ok',
          'the manager adds user X');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('agent:' || :'fx_agent', '{read,send,run}')), 'ok',
          'the manager adds its own agent, even with run');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('agent:' || :'u_ax', '{read,send}')), '42501',
          'the manager cannot add X''s agent that X has not allowed in (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('agent:' || :'u_ax', '{read,send,run}')), '42501',
          'nor with run (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('visitor:' || :'fx_visitor', '{read}')), '42501',
          'the manager can never add a visitor (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_member', pg_temp.add('agent:' || :'u_ax', '{read}')), '42501',
          'a non-manager adds nobody (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
              format($q$SELECT ama.allow_agent('82000000-0000-4000-8000-0000000000b1', %L)::text$q$, 'agent:' || :'u_ax')),
          '42501', 'O cannot allow X''s agent in (only its owner can) (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_x',
              format($q$SELECT ama.allow_agent(%L, %L)::text$q$, :'fx_ws', 'agent:' || :'u_ax')),
          'AM404', 'X cannot allow its agent into a thread X does not take part in (AM404)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_x',
              format($q$SELECT ama.allow_agent('82000000-0000-4000-8000-0000000000b1', %L)::text$q$, 'agent:' || :'u_ax'), true),
          'true', 'X allows its agent AX into T');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner', pg_temp.add('agent:' || :'u_ax', '{read,send}'), true), 'ok',
          'then the manager may add AX');
SELECT is(pg_temp.try('authenticated', 'user:' || :'u_x',
              format($q$DELETE FROM ama.agent_allowances WHERE thread_id = '82000000-0000-4000-8000-0000000000b1' AND agent_actor_id = %L$q$,
                     'agent:' || :'u_ax'), true),
          'ok', 'X withdraws the allowance');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
              format($q$SELECT ama.grant_capabilities('82000000-0000-4000-8000-0000000000b1', %L, '{run}')::text$q$, 'agent:' || :'u_ax')),
          '42501', 'without the allowance the manager cannot grant run to X''s agent (42501)');
SELECT is(pg_temp.try('authenticated', 'user:' || :'fx_owner',
              format($q$UPDATE ama.participants SET capabilities = '{read,send,run}' WHERE thread_id = '82000000-0000-4000-8000-0000000000b1' AND actor_id = %L$q$,
                     'agent:' || :'u_ax')),
          '42501', 'nor with a plain UPDATE (42501)');

-- ---------------------------------------------------------------------------
-- 5c. A visitor who started a public thread holds read, send, manage (contract 3.2) and may use manage
--     on that thread under RLS: the participation mode, nothing else.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE first_contact AS
SELECT CASE WHEN r LIKE '{%' THEN r::jsonb -> 'body' ->> 'thread_id' END AS thread_id,
       CASE WHEN r LIKE '{%' THEN r::jsonb -> 'body' ->> 'visitor_token' END AS token,
       CASE WHEN r LIKE '{%' THEN r::jsonb ->> 'status' ELSE r END AS status
  FROM (SELECT pg_temp.try('ama_authenticator', NULL,
            format($q$SELECT ama.request('public.send', NULL, NULL, NULL, '198.18.82.6', %L)::text$q$,
                   jsonb_build_object('path', jsonb_build_object('custom_slug', :'fx_slug'),
                                      'body', jsonb_build_object('email', 'sp82-first@example.com', 'content', 'hello'))), true) AS r) x;
SELECT coalesce((SELECT visitor_actor_id FROM ama.visitors WHERE thread_id::text = (SELECT thread_id FROM first_contact)), 'visitor:none') AS new_visitor,
       coalesce((SELECT thread_id FROM first_contact), '00000000-0000-4000-8000-000000000000') AS new_thread \gset
SELECT ok((SELECT status = '200' AND token LIKE 'ama\_vst\_%' FROM first_contact), 'first contact through ama.request answers 200 with a visitor_token');
SELECT is((SELECT capabilities FROM ama.participants WHERE thread_id = :'new_thread' AND actor_id = :'new_visitor'), '{read,send,manage}'::text[],
          'the visitor who created the public thread holds read, send, manage');
SELECT is(pg_temp.try('anon', :'new_visitor',
              format($q$WITH u AS (UPDATE ama.threads SET participation_mode = 'invocation_only' WHERE thread_id = %L RETURNING 1)
                        SELECT count(*)::text FROM u$q$, :'new_thread')),
          '1', 'the visitor (anon, visitor context) changes its thread''s participation_mode under RLS');
SELECT is(pg_temp.try('anon', :'new_visitor',
              format($q$WITH u AS (UPDATE ama.threads SET participation_mode = 'invocation_only' WHERE thread_id = %L RETURNING 1)
                        SELECT count(*)::text FROM u$q$, :'fx_pub')),
          '0', 'but not another visitor''s thread (0 rows)');
SELECT is(pg_temp.try('anon', :'new_visitor',
              format($q$UPDATE ama.participants SET capabilities = '{read,send,run,manage}' WHERE thread_id = %L$q$, :'new_thread')),
          '42501', 'the visitor''s manage does not extend to capabilities (42501)');

-- ---------------------------------------------------------------------------
-- The one audit writer and the provisioning function, tried as each role.
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.try(r, NULL, $q$SELECT ama._audit_as('user:forged', '203.0.113.9', 'plan_changed', NULL, '{}')::text$q$), '42501',
          format('%s cannot append an audit row through ama._audit_as (42501)', r))
  FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp8x_svc']) r;
SELECT is(pg_temp.try(r, NULL, $q$SELECT ama._provision_user(gen_random_uuid())$q$), '42501',
          format('%s cannot provision users (42501)', r))
  FROM unnest(ARRAY['anon', 'authenticated']) r;
-- a service may provision, but never change an existing user's plan this way (that path is
-- ama.upsert_user, limited and audited by the plan-change trigger)
SELECT is(pg_temp.try('sp8x_svc', NULL, format($q$SELECT ama._provision_user(%L, NULL, 'starter')$q$, :'fx_member')),
          'basic', 'provisioning an existing user returns its plan unchanged');

SELECT * FROM finish();
ROLLBACK;
