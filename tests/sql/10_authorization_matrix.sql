-- The authorization matrix: principal kind (user, agent, visitor, service, anonymous) x thread type
-- (public, workspace, private) x capability set x participant or not x operation, run AS THE REAL
-- REQUEST ROLES (authenticated, anon, service_role; ama_authenticator for the shim path).
-- Each cell runs inside its own subtransaction that is always rolled back, so cells are independent:
-- the cell's outcome is the value of its query, its row count, or the SQLSTATE it raised.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;

-- ---------------------------------------------------------------------------
-- Fixtures, built through the API so the default capabilities are the product's.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE ids (name text PRIMARY KEY, val text);
GRANT SELECT ON ids TO PUBLIC;  -- so the request roles can read fixture ids inside a cell

-- Users: owner O (starter), member M (basic), outsider X (starter, owns agent B).
INSERT INTO ama.users (user_id, email, plan) VALUES
    ('a0000000-0000-4000-8000-00000000000a', 'owner@example.com', 'starter'),
    ('a0000000-0000-4000-8000-00000000000b', 'member@example.com', 'basic'),
    ('a0000000-0000-4000-8000-00000000000c', 'outsider@example.com', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:a0000000-0000-4000-8000-00000000000a', 'user', 'a0000000-0000-4000-8000-00000000000a', 'Owner'),
    ('user:a0000000-0000-4000-8000-00000000000b', 'user', 'a0000000-0000-4000-8000-00000000000b', 'Member'),
    ('user:a0000000-0000-4000-8000-00000000000c', 'user', 'a0000000-0000-4000-8000-00000000000c', 'Outsider'),
    ('agent:b0000000-0000-4000-8000-00000000000b', 'agent', 'a0000000-0000-4000-8000-00000000000c', 'Outsider agent');
INSERT INTO ids VALUES
    ('owner', 'user:a0000000-0000-4000-8000-00000000000a'),
    ('member', 'user:a0000000-0000-4000-8000-00000000000b'),
    ('outsider_user', 'user:a0000000-0000-4000-8000-00000000000c'),
    ('outsider_agent', 'agent:b0000000-0000-4000-8000-00000000000b');

-- Clears the request context (superuser only), so the next block starts as nobody.
CREATE FUNCTION pg_temp.clear_context() RETURNS void LANGUAGE sql AS $$
    SELECT set_config('ama.actor_id', '', true), set_config('ama.principal_kind', '', true),
           set_config('ama.claims', '', true), set_config('ama.plan', '', true),
           set_config('ama.credential_id', '', true), set_config('request.jwt.claims', '', true);
$$;

DO $fixtures$
DECLARE
    r jsonb;
    agent text;
BEGIN
    -- Workspace: the owner's agent profile creates agent A and the workspace thread.
    PERFORM ama.impersonate((SELECT val FROM ids WHERE name = 'owner'));
    SET LOCAL ROLE authenticated;
    r := ama.api_agent_put('{"body": {"custom_slug": "owner-agent", "display_name": "Owner Agent"}}');
    RESET ROLE;
    agent := r ->> 'agent_actor_id';
    INSERT INTO ids VALUES ('agent', agent), ('workspace', r ->> 'workspace_thread_id');

    -- Private: the owner opens a thread with the member, then (as manager) adds agent A with read, send.
    SET LOCAL ROLE authenticated;
    r := ama.api_threads_create('{"body": {"target_user_ids": ["a0000000-0000-4000-8000-00000000000b"]}}');
    INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
    VALUES ((r ->> 'thread_id')::uuid, agent, 'agent', ARRAY['read', 'send']);
    RESET ROLE;
    INSERT INTO ids VALUES ('private', r ->> 'thread_id');

    -- Public: two anonymous visitors write to the owner's public agent (each gets a thread and a token).
    PERFORM pg_temp.clear_context();
    PERFORM set_config('ama.principal_kind', 'anon', true);  -- as ama.request sets it for an anonymous request
    SET LOCAL ROLE anon;
    r := ama.api_public_send('{"path": {"custom_slug": "owner-agent"}, "body": {"email": "v@example.com", "content": "hello"}}');
    RESET ROLE;
    INSERT INTO ids VALUES ('public', r ->> 'thread_id'), ('visitor_token', r ->> 'visitor_token'),
        ('visitor', (SELECT visitor_actor_id FROM ama.visitors WHERE thread_id = (r ->> 'thread_id')::uuid));
    PERFORM pg_temp.clear_context();
    PERFORM set_config('ama.principal_kind', 'anon', true);  -- as ama.request sets it for an anonymous request
    SET LOCAL ROLE anon;
    r := ama.api_public_send('{"path": {"custom_slug": "owner-agent"}, "body": {"email": "w@example.com", "content": "hi"}}');
    RESET ROLE;
    INSERT INTO ids VALUES ('public2', r ->> 'thread_id'), ('outsider_visitor_token', r ->> 'visitor_token'),
        ('outsider_visitor', (SELECT visitor_actor_id FROM ama.visitors WHERE thread_id = (r ->> 'thread_id')::uuid));
    PERFORM pg_temp.clear_context();
END
$fixtures$;

-- One system message per thread from a fixture service, so "can read messages" is a count of 0 or 1.
INSERT INTO ama.messages (thread_id, sender_id, role, content)
SELECT val::uuid, 'service:fixture', 'system', 'fixture' FROM ids WHERE name IN ('public', 'workspace', 'private');

SELECT plan(
      4                                   -- fixture sanity
    + 8                                   -- contract defaults, one per participant
    + 59 * 15                             -- the matrix: 59 scenarios x 15 operations
    + 1                                   -- matrix completeness
    + 40                                  -- shim path through ama.request
);

SELECT ok((SELECT val FROM ids WHERE name = 'agent') ~ '^agent:', 'fixture: agent A was created by api_agent_put');
SELECT ok((SELECT count(*) FROM ids WHERE name IN ('public', 'public2', 'workspace', 'private') AND val ~ '^[0-9a-f-]{36}$') = 4,
          'fixture: four threads');
SELECT ok((SELECT val FROM ids WHERE name = 'visitor') ~ '^visitor:', 'fixture: visitor V exists');
SELECT ok((SELECT val FROM ids WHERE name = 'visitor_token') ~ '^ama_vst_', 'fixture: first contact returned a visitor token');

-- ---------------------------------------------------------------------------
-- Contract section 3.2: default capabilities by thread type and participant.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE contract_defaults (ttype text, who text, caps text[]);
INSERT INTO contract_defaults VALUES
    -- public: the visitor created it and holds the creator's set (its manage covers the mode only),
    -- the public agent may run, and the owning user manages too.
    ('public',    'owner',   '{read,send,manage}'),
    ('public',    'agent',   '{read,send,run}'),
    ('public',    'visitor', '{read,send,manage}'),
    -- workspace: the owner and their own agent, nobody else.
    ('workspace', 'owner',   '{read,send,manage}'),
    ('workspace', 'agent',   '{read,send,run}'),
    -- private: the creator manages, other users read and send, agents read and send but never run.
    ('private',   'owner',   '{read,send,manage}'),
    ('private',   'member',  '{read,send}'),
    ('private',   'agent',   '{read,send}');

SELECT is((SELECT p.capabilities FROM ama.participants p
            WHERE p.thread_id = (SELECT val::uuid FROM ids WHERE name = d.ttype)
              AND p.actor_id = (SELECT val FROM ids WHERE name = d.who)),
          d.caps,
          format('contract default: %s thread, %s has %s', d.ttype, d.who, d.caps))
  FROM contract_defaults d ORDER BY d.ttype, d.who;

-- ---------------------------------------------------------------------------
-- Principals, scenarios and operations.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE principals (name text PRIMARY KEY, kind text, role text, actor_id text);
INSERT INTO principals
SELECT p.name, p.kind, p.role, (SELECT val FROM ids WHERE ids.name = p.name)
  FROM (VALUES
    ('owner',            'user',    'authenticated'),
    ('member',           'user',    'authenticated'),
    ('outsider_user',    'user',    'authenticated'),
    ('agent',            'agent',   'authenticated'),
    ('outsider_agent',   'agent',   'authenticated'),
    ('visitor',          'visitor', 'anon'),
    ('outsider_visitor', 'visitor', 'anon'),
    ('service',          'service', 'service_role'),
    ('anonymous',        'anon',    'anon')) p(name, kind, role);
UPDATE principals SET actor_id = 'service:ops' WHERE name = 'service';

-- Capability variants applied to a participant before a cell runs ('default' = the contract's set).
CREATE TEMP TABLE variants (variant text, caps text[]);
INSERT INTO variants VALUES
    ('default', NULL), ('none', '{}'), ('read only', '{read}'), ('send+manage, no read', '{send,manage}'),
    ('all four', '{read,send,run,manage}');

CREATE TEMP TABLE scenarios AS
SELECT row_number() OVER (ORDER BY t.ttype, p.name, v.variant) AS sid,
       p.name AS principal, p.kind, p.role, p.actor_id, t.ttype, (SELECT val::uuid FROM ids WHERE name = t.ttype) AS tid,
       (d.caps IS NOT NULL) AS participant, v.variant, coalesce(v.caps, d.caps) AS caps,
       (SELECT count(*) FROM contract_defaults x WHERE x.ttype = t.ttype) AS n_participants
  FROM principals p
 CROSS JOIN (VALUES ('public'), ('workspace'), ('private')) t(ttype)
  LEFT JOIN contract_defaults d ON d.ttype = t.ttype AND d.who = p.name
  JOIN variants v ON (d.caps IS NOT NULL) OR v.variant = 'default';
UPDATE scenarios SET variant = 'n/a' WHERE NOT participant;

-- Operations: kind 'query' records the value, 'exec' the row count; %1$L is the thread id and
-- %2$L an actor id to forge when the principal has none.
CREATE TEMP TABLE ops (op text PRIMARY KEY, kind text, sql text);
INSERT INTO ops VALUES
    ('read thread row',         'query', $q$SELECT count(*)::text FROM ama.threads WHERE thread_id = %1$L$q$),
    ('read participants',       'query', $q$SELECT count(*)::text FROM ama.participants WHERE thread_id = %1$L$q$),
    ('read messages',           'query', $q$SELECT count(*)::text FROM ama.messages WHERE thread_id = %1$L AND sender_id = 'service:fixture'$q$),
    ('api_threads_get',         'query', $q$SELECT 'ok' FROM ama.api_threads_get(jsonb_build_object('path', jsonb_build_object('thread_id', %1$L)))$q$),
    ('api_events_poll',         'query', $q$SELECT CASE WHEN (r -> 'events')::jsonb @> '[{"sender_id": "service:fixture"}]' THEN 'ok' ELSE r::text END
                                             FROM ama.api_events_poll(jsonb_build_object('path', jsonb_build_object('thread_id', %1$L))) r$q$),
    ('INSERT INTO messages',    'exec',  $q$INSERT INTO ama.messages (thread_id, sender_id, role, content)
                                            VALUES (%1$L, coalesce(ama.actor_id(), %2$L),
                                                    CASE ama.principal_kind() WHEN 'agent' THEN 'assistant' WHEN 'service' THEN 'system' ELSE 'user' END,
                                                    'raw insert')$q$),
    ('ama.post_message',        'query', $q$SELECT 'ok' FROM ama.post_message(%1$L::uuid, 'direct post')$q$),
    ('api_messages_agent_send', 'query', $q$SELECT 'ok' FROM ama.api_messages_agent_send(jsonb_build_object(
                                             'path', jsonb_build_object('thread_id', %1$L), 'body', jsonb_build_object('content', 'api send')))$q$),
    ('run capability',          'query', $q$SELECT coalesce('run' = ANY (ama._my_caps(%1$L)), false)::text$q$),
    ('UPDATE threads mode',     'exec',  $q$UPDATE ama.threads SET participation_mode = 'invocation_only' WHERE thread_id = %1$L$q$),
    ('api_threads_set_mode',    'query', $q$SELECT 'ok' FROM ama.api_threads_set_mode(jsonb_build_object(
                                             'path', jsonb_build_object('thread_id', %1$L), 'body', jsonb_build_object('participation_mode', 'invocation_only')))$q$),
    ('set_capabilities (self to all)', 'query', $q$SELECT 'ok' FROM ama.set_capabilities(%1$L::uuid, coalesce(ama.actor_id(), %2$L), ARRAY['read', 'send', 'run', 'manage'])$q$),
    ('UPDATE participants caps', 'exec', $q$UPDATE ama.participants SET capabilities = '{read,send,run,manage}' WHERE thread_id = %1$L$q$),
    -- The raw-SQL gaps: another owner's agent added by a manager, and a squatted private dedupe key.
    ('INSERT another owner''s agent', 'exec', $q$INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
                                                VALUES (%1$L, 'agent:b0000000-0000-4000-8000-00000000000b', 'agent', '{read,send}')$q$),
    ('INSERT thread with a dedupe key', 'exec', $q$INSERT INTO ama.threads (thread_type, created_by, participant_key)
                                                  VALUES ('private', coalesce(ama.actor_id(), %2$L), 'squatted')$q$);

-- ---------------------------------------------------------------------------
-- The expected outcome of every cell, as rules a reader can check against the contract.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE expected AS
SELECT s.sid, o.op,
    CASE WHEN NOT s.participant THEN
        -- Not a participant: the thread does not exist for the caller. SELECTs are silently
        -- filtered, API functions say AM404 (never 42501, so ids cannot be probed).
        CASE o.op
            WHEN 'read thread row' THEN '0'
            WHEN 'read participants' THEN '0'
            WHEN 'read messages' THEN '0'
            WHEN 'api_threads_get' THEN 'AM404'
            WHEN 'api_events_poll' THEN 'AM404'
            -- Trusted services post system messages into any thread; nobody else can.
            WHEN 'INSERT INTO messages' THEN CASE WHEN s.kind = 'service' THEN '1' ELSE '42501' END
            WHEN 'ama.post_message' THEN CASE WHEN s.kind = 'service' THEN 'ok' WHEN s.kind = 'anon' THEN '42501' ELSE 'AM404' END
            WHEN 'api_messages_agent_send' THEN 'AM404'
            WHEN 'run capability' THEN 'false'
            -- service_role has no UPDATE privilege on threads at all; for the others RLS hides the row.
            WHEN 'UPDATE threads mode' THEN CASE WHEN s.role IN ('authenticated', 'anon') THEN '0' ELSE '42501' END
            WHEN 'api_threads_set_mode' THEN 'AM404'
            WHEN 'set_capabilities (self to all)' THEN 'AM404'
            WHEN 'UPDATE participants caps' THEN '0'
            -- Nobody adds another owner's agent without that owner's allowance, or chooses a dedupe key.
            WHEN 'INSERT another owner''s agent' THEN '42501'
            WHEN 'INSERT thread with a dedupe key' THEN '42501'
        END
    ELSE
        -- A participant: sees the thread and its co-participants; everything else follows its capabilities.
        CASE o.op
            WHEN 'read thread row' THEN '1'
            WHEN 'read participants' THEN s.n_participants::text
            WHEN 'read messages' THEN CASE WHEN 'read' = ANY (s.caps) THEN '1' ELSE '0' END
            WHEN 'api_threads_get' THEN CASE WHEN 'read' = ANY (s.caps) THEN 'ok' ELSE '42501' END
            WHEN 'api_events_poll' THEN CASE WHEN 'read' = ANY (s.caps) THEN 'ok' ELSE '42501' END
            WHEN 'INSERT INTO messages' THEN CASE WHEN 'send' = ANY (s.caps) THEN '1' ELSE '42501' END
            WHEN 'ama.post_message' THEN CASE WHEN 'send' = ANY (s.caps) THEN 'ok' ELSE '42501' END
            WHEN 'api_messages_agent_send' THEN CASE WHEN 'send' = ANY (s.caps) THEN 'ok' ELSE '42501' END
            WHEN 'run capability' THEN ('run' = ANY (s.caps))::text
            -- Holders of manage change the mode, visitors included (the contract gives a public thread's creator manage).
            WHEN 'UPDATE threads mode' THEN CASE WHEN s.role NOT IN ('authenticated', 'anon') THEN '42501'
                                                 WHEN 'manage' = ANY (s.caps) THEN '1' ELSE '0' END
            WHEN 'api_threads_set_mode' THEN CASE WHEN 'manage' = ANY (s.caps) THEN 'ok' ELSE '42501' END
            -- Only user and agent managers change capabilities, and run goes only to agents that may hold it
            -- (an agent of the manager's owner): a manager agent may give itself all four, a user never holds run,
            -- and a visitor's manage covers the mode only.
            -- (Writing back the caps one already holds is no change, and always allowed.)
            WHEN 'set_capabilities (self to all)' THEN CASE WHEN s.caps @> '{read,send,run,manage}' THEN 'ok'
                                                           WHEN 'manage' = ANY (s.caps) AND s.kind = 'agent' THEN 'ok'
                                                           ELSE '42501' END
            -- Setting every participant to all four gives a user run: refused, except where the only row that changes is
            -- the manager's own agent (the workspace owner holding all four already); a non-manager cannot escalate itself.
            WHEN 'UPDATE participants caps' THEN CASE WHEN s.ttype = 'workspace' AND s.principal = 'owner' AND s.variant = 'all four'
                                                      THEN s.n_participants::text ELSE '42501' END
            WHEN 'INSERT another owner''s agent' THEN '42501'
            WHEN 'INSERT thread with a dedupe key' THEN '42501'
        END
    END AS outcome
  FROM scenarios s CROSS JOIN ops o;

-- ---------------------------------------------------------------------------
-- Run every cell as the principal's request role.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE actual (sid bigint, op text, outcome text);

DO $run$
DECLARE
    s record;
    o record;
    r text;
    n bigint;
    forged text := (SELECT val FROM ids WHERE name = 'owner');
BEGIN
    FOR s IN SELECT * FROM scenarios ORDER BY sid LOOP
        FOR o IN SELECT * FROM ops ORDER BY op LOOP
            BEGIN
                IF s.participant THEN
                    UPDATE ama.participants SET capabilities = s.caps WHERE thread_id = s.tid AND actor_id = s.actor_id;
                END IF;
                PERFORM pg_temp.clear_context();
                IF s.actor_id IS NOT NULL THEN
                    PERFORM ama.impersonate(s.actor_id);
                END IF;
                EXECUTE format('SET LOCAL ROLE %I', s.role);
                IF o.kind = 'query' THEN
                    EXECUTE format(o.sql, s.tid, forged) INTO r;
                ELSE
                    EXECUTE format(o.sql, s.tid, forged);
                    GET DIAGNOSTICS n = ROW_COUNT;
                    r := n::text;
                END IF;
                RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = coalesce(r, '<null>');
            EXCEPTION
                WHEN SQLSTATE 'ZZ999' THEN r := SQLERRM;
                WHEN OTHERS THEN r := SQLSTATE;
            END;
            INSERT INTO actual VALUES (s.sid, o.op, r);
        END LOOP;
    END LOOP;
END
$run$;

SELECT is(a.outcome, e.outcome,
          format('%s thread | %s (%s as %s) | %s | caps %s | %s',
                 s.ttype, s.principal, s.kind, s.role,
                 CASE WHEN s.participant THEN 'participant' ELSE 'not a participant' END,
                 s.variant || CASE WHEN s.participant THEN ' ' || s.caps::text ELSE '' END, e.op))
  FROM expected e JOIN actual a USING (sid, op) JOIN scenarios s USING (sid)
 ORDER BY s.sid, e.op;

SELECT is((SELECT count(*) FROM actual), (SELECT count(*) FROM scenarios) * (SELECT count(*) FROM ops),
          'every cell of the matrix ran (' || (SELECT count(*) FROM scenarios) || ' scenarios)');

-- ---------------------------------------------------------------------------
-- The shim path: ama.request() as ama_authenticator, with the real credentials.
-- ---------------------------------------------------------------------------
DO $tokens$
DECLARE
    r record;
BEGIN
    PERFORM ama.impersonate((SELECT val FROM ids WHERE name = 'owner'));
    SET LOCAL ROLE authenticated;
    SELECT * INTO r FROM ama.issue_agent_token((SELECT val FROM ids WHERE name = 'agent'), 'A');
    RESET ROLE;
    INSERT INTO ids VALUES ('agent_token', r.raw_token);
    PERFORM ama.impersonate((SELECT val FROM ids WHERE name = 'outsider_user'));
    SET LOCAL ROLE authenticated;
    SELECT * INTO r FROM ama.issue_agent_token((SELECT val FROM ids WHERE name = 'outsider_agent'), 'B');
    RESET ROLE;
    INSERT INTO ids VALUES ('outsider_agent_token', r.raw_token);
    SELECT * INTO r FROM ama.create_internal_key('matrix-svc');
    INSERT INTO ids VALUES ('internal_key', r.raw_key);
    PERFORM pg_temp.clear_context();
END
$tokens$;

CREATE TEMP TABLE shim_cases (label text, cred_kind text, cred text, claims jsonb, route text, thread text, body jsonb, expected text);
INSERT INTO shim_cases
SELECT c.label, c.cred_kind, (SELECT val FROM ids WHERE name = c.cred),
       CASE WHEN c.sub IS NOT NULL THEN jsonb_build_object('sub', c.sub, 'aud', 'authenticated') END,
       c.route, c.thread, c.body, c.expected
  FROM (VALUES
    -- users with a JWT: participants get 200, everyone else AM404.
    ('owner jwt',    'jwt', NULL, 'a0000000-0000-4000-8000-00000000000a', 'threads.get', 'public',    NULL::jsonb, '200'),
    ('owner jwt',    'jwt', NULL, 'a0000000-0000-4000-8000-00000000000a', 'threads.get', 'workspace', NULL, '200'),
    ('owner jwt',    'jwt', NULL, 'a0000000-0000-4000-8000-00000000000a', 'threads.get', 'private',   NULL, '200'),
    ('member jwt',   'jwt', NULL, 'a0000000-0000-4000-8000-00000000000b', 'threads.get', 'public',    NULL, 'AM404'),
    ('member jwt',   'jwt', NULL, 'a0000000-0000-4000-8000-00000000000b', 'threads.get', 'workspace', NULL, 'AM404'),
    ('member jwt',   'jwt', NULL, 'a0000000-0000-4000-8000-00000000000b', 'threads.get', 'private',   NULL, '200'),
    ('outsider jwt', 'jwt', NULL, 'a0000000-0000-4000-8000-00000000000c', 'threads.get', 'public',    NULL, 'AM404'),
    ('outsider jwt', 'jwt', NULL, 'a0000000-0000-4000-8000-00000000000c', 'threads.get', 'workspace', NULL, 'AM404'),
    ('outsider jwt', 'jwt', NULL, 'a0000000-0000-4000-8000-00000000000c', 'threads.get', 'private',   NULL, 'AM404'),
    ('member jwt',   'jwt', NULL, 'a0000000-0000-4000-8000-00000000000b', 'messages.send', 'private', '{"content": "via shim"}', '200'),
    ('outsider jwt', 'jwt', NULL, 'a0000000-0000-4000-8000-00000000000c', 'messages.send', 'private', '{"content": "via shim"}', 'AM404'),
    ('member jwt',   'jwt', NULL, 'a0000000-0000-4000-8000-00000000000b', 'threads.set_mode', 'private', '{"participation_mode": "open"}', '42501'),
    ('owner jwt',    'jwt', NULL, 'a0000000-0000-4000-8000-00000000000a', 'threads.set_mode', 'private', '{"participation_mode": "open"}', '200'),
    ('outsider jwt', 'jwt', NULL, 'a0000000-0000-4000-8000-00000000000c', 'threads.set_mode', 'private', '{"participation_mode": "open"}', 'AM404'),
    -- agents with their token: only the threads they take part in exist.
    ('agent A token', 'agent', 'agent_token', NULL, 'events.poll', 'public',    NULL, '200'),
    ('agent A token', 'agent', 'agent_token', NULL, 'events.poll', 'workspace', NULL, '200'),
    ('agent A token', 'agent', 'agent_token', NULL, 'events.poll', 'private',   NULL, '200'),
    ('agent A token', 'agent', 'agent_token', NULL, 'messages.agent_send', 'private', '{"content": "from A"}', '200'),
    ('agent A token', 'agent', 'agent_token', NULL, 'threads.set_mode', 'private', '{"participation_mode": "open"}', '42501'),
    ('agent A token', 'agent', 'agent_token', NULL, 'threads.get', 'private', NULL, '403'),
    ('agent B token', 'agent', 'outsider_agent_token', NULL, 'events.poll', 'public',    NULL, 'AM404'),
    ('agent B token', 'agent', 'outsider_agent_token', NULL, 'events.poll', 'workspace', NULL, 'AM404'),
    ('agent B token', 'agent', 'outsider_agent_token', NULL, 'events.poll', 'private',   NULL, 'AM404'),
    ('agent B token', 'agent', 'outsider_agent_token', NULL, 'messages.agent_send', 'private', '{"content": "from B"}', 'AM404'),
    -- visitors with their visitor token: their own public thread only.
    ('visitor V token', 'visitor', 'visitor_token', NULL, 'public.events', 'public',    NULL, '200'),
    ('visitor V token', 'visitor', 'visitor_token', NULL, 'public.events', 'public2',   NULL, 'AM404'),
    ('visitor V token', 'visitor', 'visitor_token', NULL, 'public.events', 'workspace', NULL, 'AM404'),
    ('visitor V token', 'visitor', 'visitor_token', NULL, 'public.events', 'private',   NULL, 'AM404'),
    ('visitor V token', 'visitor', 'visitor_token', NULL, 'events.poll',   'public',    NULL, '403'),
    ('visitor W token', 'visitor', 'outsider_visitor_token', NULL, 'public.events', 'public',  NULL, 'AM404'),
    ('visitor W token', 'visitor', 'outsider_visitor_token', NULL, 'public.events', 'public2', NULL, '200'),
    -- trusted services with an internal key: system messages anywhere, but no user routes.
    ('service key', 'internal', 'internal_key', NULL, 'internal.system_message', 'public',    '{"content": "sys"}', '200'),
    ('service key', 'internal', 'internal_key', NULL, 'internal.system_message', 'workspace', '{"content": "sys"}', '200'),
    ('service key', 'internal', 'internal_key', NULL, 'internal.system_message', 'private',   '{"content": "sys"}', '200'),
    ('service key', 'internal', 'internal_key', NULL, 'threads.get', 'private', NULL, '403'),
    ('service key', 'internal', 'internal_key', NULL, 'events.poll', 'private', NULL, '403'),
    -- anonymous: no credential, no thread.
    ('anonymous', NULL, NULL, NULL, 'threads.get',   'private', NULL, '401'),
    ('anonymous', NULL, NULL, NULL, 'events.poll',   'public',  NULL, '401'),
    ('anonymous', NULL, NULL, NULL, 'public.events', 'public',  NULL, '401'),
    ('anonymous', NULL, NULL, NULL, 'messages.send', 'private', '{"content": "x"}', '401')
  ) c(label, cred_kind, cred, sub, route, thread, body, expected);

CREATE TEMP TABLE shim_actual (label text, route text, thread text, outcome text);
DO $shim$
DECLARE
    c record;
    r text;
BEGIN
    FOR c IN SELECT * FROM shim_cases LOOP
        BEGIN
            PERFORM pg_temp.clear_context();
            SET LOCAL ROLE ama_authenticator;
            -- Route errors come back as envelopes carrying their SQLSTATE; report that, else the status.
            r := (SELECT coalesce(e ->> 'sqlstate', e ->> 'status') FROM (SELECT ama.request(c.route, c.cred_kind, c.cred, c.claims, '192.0.2.10'::inet,
                             jsonb_build_object('path', jsonb_build_object('thread_id', (SELECT val FROM ids WHERE name = c.thread)),
                                                'query', '{}'::jsonb, 'body', coalesce(c.body, '{}'::jsonb))) AS e) x);
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = coalesce(r, '<null>');
        EXCEPTION
            WHEN SQLSTATE 'ZZ999' THEN r := SQLERRM;
            WHEN OTHERS THEN r := SQLSTATE;
        END;
        INSERT INTO shim_actual VALUES (c.label, c.route, c.thread, r);
    END LOOP;
END
$shim$;

SELECT is(a.outcome, c.expected, format('ama.request as ama_authenticator: %s | %s | %s thread', c.label, c.route, c.thread))
  FROM shim_cases c JOIN shim_actual a USING (label, route, thread);

SELECT * FROM finish();
ROLLBACK;
