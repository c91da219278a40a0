-- Direct-SQL forgery attempts: no request role, trusted-service login or the authenticator can set
-- the request context itself, and nothing a session CAN set (request.jwt.claims) grants access.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;

-- Victim O owns a private thread with member M; attacker X takes part in nothing.
INSERT INTO ama.users (user_id, email, plan) VALUES
    ('c0000000-0000-4000-8000-00000000000a', 'victim@example.com', 'starter'),
    ('c0000000-0000-4000-8000-00000000000b', 'member@example.com', 'basic'),
    ('c0000000-0000-4000-8000-00000000000c', 'attacker@example.com', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:c0000000-0000-4000-8000-00000000000a', 'user', 'c0000000-0000-4000-8000-00000000000a'),
    ('user:c0000000-0000-4000-8000-00000000000b', 'user', 'c0000000-0000-4000-8000-00000000000b'),
    ('user:c0000000-0000-4000-8000-00000000000c', 'user', 'c0000000-0000-4000-8000-00000000000c');
INSERT INTO ama.threads (thread_id, thread_type, created_by) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'private', 'user:c0000000-0000-4000-8000-00000000000a');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000b', 'user', '{read,send}');
INSERT INTO ama.messages (thread_id, sender_id, role, content) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000a', 'user', 'secret');

-- A login role for a trusted service that uses SQL directly (member of ama_service, inheriting).
CREATE ROLE forge_test_svc LOGIN NOSUPERUSER IN ROLE ama_service;

CREATE TEMP TABLE attackers (role text);
INSERT INTO attackers VALUES ('anon'), ('authenticated'), ('service_role'), ('forge_test_svc'), ('ama_authenticator');

CREATE TEMP TABLE settings (name text);
INSERT INTO settings VALUES ('ama.actor_id'), ('ama.principal_kind'), ('ama.claims'), ('ama.plan'),
                            ('ama.credential_id'), ('ama.client_ip');

-- Cells: role, label, statement, expected outcome ('ok', a value, or a SQLSTATE).
CREATE TEMP TABLE cells (role text, label text, sql text, expected text);

-- 1. Setting any context variable, with set_config or SET / SET LOCAL: 42501 for every role.
INSERT INTO cells
SELECT a.role, format('set_config(%L, ..., true)', s.name),
       format($q$SELECT set_config(%L, 'user:c0000000-0000-4000-8000-00000000000a', true)$q$, s.name), '42501'
  FROM attackers a CROSS JOIN settings s;
INSERT INTO cells
SELECT a.role, format('set_config(%L, ..., false)', s.name),
       format($q$SELECT set_config(%L, 'user:c0000000-0000-4000-8000-00000000000a', false)$q$, s.name), '42501'
  FROM attackers a CROSS JOIN settings s;
INSERT INTO cells
SELECT a.role, format('SET LOCAL %s', s.name),
       format($q$SET LOCAL %s = 'user:c0000000-0000-4000-8000-00000000000a'$q$, s.name), '42501'
  FROM attackers a CROSS JOIN settings s;
INSERT INTO cells
SELECT a.role, format('SET %s', s.name),
       format($q$SET %s = 'user:c0000000-0000-4000-8000-00000000000a'$q$, s.name), '42501'
  FROM attackers a CROSS JOIN settings s;
-- The ama prefix is reserved: no look-alike placeholder can be created (42602 invalid name).
INSERT INTO cells
SELECT a.role, 'SET ama.actor_idx (reserved prefix)', $q$SET LOCAL ama.actor_idx = 'x'$q$, '42602' FROM attackers a;

-- 2. request.jwt.claims is a placeholder anyone may set: it must grant nothing.
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: ama.actor_id() stays NULL',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}', true),
                 set_config('request.jwt.claim.sub', 'c0000000-0000-4000-8000-00000000000a', true);
          SELECT coalesce(ama.actor_id(), 'NULL') || '/' || coalesce(ama.uid()::text, 'NULL')$q$, 'NULL/NULL'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: victim thread invisible',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated"}', true);
          SELECT count(*)::text FROM ama.threads$q$, '0'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: victim messages invisible',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated"}', true);
          SELECT count(*)::text FROM ama.messages$q$, '0'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: victim participants invisible',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated"}', true);
          SELECT count(*)::text FROM ama.participants$q$, '0'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: api_threads_get is AM404',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated"}', true);
          SELECT 'ok' FROM ama.api_threads_get('{"path": {"thread_id": "d0000000-0000-4000-8000-000000000001"}}')$q$, 'AM404'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'forged request.jwt.claims: cannot post into the victim thread',
       $q$SELECT set_config('request.jwt.claims', '{"sub": "c0000000-0000-4000-8000-00000000000a", "role": "authenticated"}', true);
          INSERT INTO ama.messages (thread_id, sender_id, role, content)
          VALUES ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000a', 'user', 'forged')$q$, '42501'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
-- The authenticator itself has no table privilege at all.
INSERT INTO cells VALUES
    ('ama_authenticator', 'no SELECT on ama.threads', $q$SELECT count(*)::text FROM ama.threads$q$, '42501'),
    ('ama_authenticator', 'no SELECT on ama.messages', $q$SELECT count(*)::text FROM ama.messages$q$, '42501'),
    ('ama_authenticator', 'SET ROLE authenticated without context sees no thread',
     $q$SELECT set_config('role', 'authenticated', true); SELECT count(*)::text FROM ama.threads$q$, '0'),
    ('ama_authenticator', 'SET ROLE service_role without context sees no thread',
     $q$SELECT set_config('role', 'service_role', true); SELECT count(*)::text FROM ama.threads$q$, '0'),
    -- (SET ROLE is checked against the session user, a superuser here, so membership is checked instead.)
    ('ama_authenticator', 'is not a member of ama_admin', $q$SELECT pg_has_role('ama_authenticator', 'ama_admin', 'MEMBER')::text$q$, 'false'),
    ('ama_authenticator', 'is not a member of the extension owner', $q$SELECT pg_has_role('ama_authenticator', (SELECT extowner FROM pg_extension WHERE extname = 'ama_pg'), 'MEMBER')::text$q$, 'false');

-- 3. Entry points reserved to others: ama.request (authenticator only), ama.impersonate (DBAs only).
INSERT INTO cells
SELECT a.role, 'cannot EXECUTE ama.request',
       $q$SELECT ama.request('threads.get', 'jwt', NULL, '{"sub": "c0000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                             '127.0.0.1', '{"path": {"thread_id": "d0000000-0000-4000-8000-000000000001"}}')::text$q$, '42501'
  FROM attackers a WHERE a.role <> 'ama_authenticator';
INSERT INTO cells
SELECT a.role, 'cannot EXECUTE ama.impersonate',
       $q$SELECT ama.impersonate('user:c0000000-0000-4000-8000-00000000000a')$q$, '42501'
  FROM attackers a;
INSERT INTO cells
SELECT a.role, 'cannot read the audit log', $q$SELECT count(*)::text FROM ama.audit_log$q$, '42501' FROM attackers a;
INSERT INTO cells
SELECT a.role, 'cannot read internal keys', $q$SELECT count(*)::text FROM ama.internal_keys$q$, '42501' FROM attackers a;
INSERT INTO cells
SELECT a.role, 'cannot call ama.audit_events', $q$SELECT count(*)::text FROM ama.audit_events()$q$, '42501' FROM attackers a;
INSERT INTO cells
SELECT a.role, 'cannot call ama.set_plan', $q$SELECT ama.set_plan('c0000000-0000-4000-8000-00000000000c', 'starter')::text$q$, '42501' FROM attackers a;
-- The request role itself only reaches the other request roles through the authenticator.
INSERT INTO cells VALUES
    ('authenticated', 'is not a member of service_role', $q$SELECT pg_has_role('authenticated', 'service_role', 'MEMBER')::text$q$, 'false'),
    ('anon', 'is not a member of authenticated', $q$SELECT pg_has_role('anon', 'authenticated', 'MEMBER')::text$q$, 'false'),
    ('service_role', 'is not a member of ama_admin', $q$SELECT pg_has_role('service_role', 'ama_admin', 'MEMBER')::text$q$, 'false');

-- 4. A real but unprivileged identity cannot forge its way in either (attacker X impersonated properly).
CREATE TEMP TABLE as_attacker (label text, sql text, expected text);
INSERT INTO as_attacker VALUES
    ('sees no thread', $q$SELECT count(*)::text FROM ama.threads$q$, '0'),
    ('sees no message', $q$SELECT count(*)::text FROM ama.messages$q$, '0'),
    ('post as the victim', $q$INSERT INTO ama.messages (thread_id, sender_id, role, content)
        VALUES ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000a', 'user', 'forged')$q$, '42501'),
    ('post as a system message', $q$INSERT INTO ama.messages (thread_id, sender_id, role, content)
        VALUES ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000c', 'system', 'forged')$q$, '42501'),
    ('post into an unknown thread is the same 42501 (no existence oracle)', $q$INSERT INTO ama.messages (thread_id, sender_id, role, content)
        VALUES ('d0000000-0000-4000-8000-00000000ffff', 'user:c0000000-0000-4000-8000-00000000000c', 'user', 'probe')$q$, '42501'),
    ('post into the victim thread in own name', $q$INSERT INTO ama.messages (thread_id, sender_id, role, content)
        VALUES ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000c', 'user', 'probe')$q$, '42501'),
    ('ama.post_message into the victim thread', $q$SELECT 'ok' FROM ama.post_message('d0000000-0000-4000-8000-000000000001', 'x')$q$, 'AM404'),
    ('ama.post_message into an unknown thread', $q$SELECT 'ok' FROM ama.post_message('d0000000-0000-4000-8000-00000000ffff', 'x')$q$, 'AM404'),
    ('join the victim thread', $q$INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
        VALUES ('d0000000-0000-4000-8000-000000000001', 'user:c0000000-0000-4000-8000-00000000000c', 'user', '{read,send,manage}')$q$, '42501'),
    ('change own plan', $q$UPDATE ama.users SET plan = 'starter' WHERE user_id = 'c0000000-0000-4000-8000-00000000000c'$q$, '42501'),
    ('create a user', $q$INSERT INTO ama.users (user_id) VALUES ('c0000000-0000-4000-8000-0000000000ff')$q$, '42501'),
    ('upsert_user (services only)', $q$SELECT 'ok' FROM ama.upsert_user('c0000000-0000-4000-8000-00000000000c', NULL, NULL, 'starter')$q$, '42501'),
    ('create an agent owned by the victim', $q$INSERT INTO ama.actors (actor_id, kind, owner_user_id)
        VALUES ('agent:c0000000-0000-4000-8000-0000000000aa', 'agent', 'c0000000-0000-4000-8000-00000000000a')$q$, '42501'),
    ('create a user actor', $q$INSERT INTO ama.actors (actor_id, kind, owner_user_id)
        VALUES ('user:c0000000-0000-4000-8000-0000000000ff', 'user', 'c0000000-0000-4000-8000-00000000000c')$q$, '42501'),
    ('read the victim user row', $q$SELECT count(*)::text FROM ama.users WHERE user_id = 'c0000000-0000-4000-8000-00000000000a'$q$, '0'),
    ('read the victim actor row', $q$SELECT count(*)::text FROM ama.actors WHERE actor_id = 'user:c0000000-0000-4000-8000-00000000000a'$q$, '0'),
    ('UPDATE the victim thread', $q$UPDATE ama.threads SET is_archived = true WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'$q$, '0'),
    ('UPDATE a non-granted thread column', $q$UPDATE ama.threads SET created_by = 'x' WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'$q$, '42501'),
    ('DELETE from messages', $q$DELETE FROM ama.messages$q$, '42501'),
    ('DELETE from threads', $q$DELETE FROM ama.threads$q$, '42501'),
    ('DELETE victim participants', $q$DELETE FROM ama.participants WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'$q$, '0');

SELECT plan((SELECT count(*)::int FROM cells) + (SELECT count(*)::int FROM as_attacker) + 4);

CREATE TEMP TABLE results (n serial, role text, label text, outcome text, expected text);
DO $run$
DECLARE
    c record;
    r text;
    n bigint;
BEGIN
    FOR c IN SELECT * FROM cells LOOP
        BEGIN
            EXECUTE format('SET LOCAL ROLE %I', c.role);
            IF c.sql ~* '^\s*SELECT' THEN
                EXECUTE c.sql INTO r;
            ELSE
                EXECUTE c.sql;
                r := 'ok';
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = coalesce(r, '<null>');
        EXCEPTION
            WHEN SQLSTATE 'ZZ999' THEN r := SQLERRM;
            WHEN OTHERS THEN r := SQLSTATE;
        END;
        INSERT INTO results (role, label, outcome, expected) VALUES (c.role, c.label, r, c.expected);
    END LOOP;
    FOR c IN SELECT * FROM as_attacker LOOP
        BEGIN
            PERFORM ama.impersonate('user:c0000000-0000-4000-8000-00000000000c');
            SET LOCAL ROLE authenticated;
            IF c.sql ~* '^\s*SELECT' THEN
                EXECUTE c.sql INTO r;
            ELSE
                EXECUTE c.sql;
                GET DIAGNOSTICS n = ROW_COUNT;
                r := n::text;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = coalesce(r, '<null>');
        EXCEPTION
            WHEN SQLSTATE 'ZZ999' THEN r := SQLERRM;
            WHEN OTHERS THEN r := SQLSTATE;
        END;
        INSERT INTO results (role, label, outcome, expected) VALUES ('authenticated as attacker X', c.label, r, c.expected);
    END LOOP;
END
$run$;

SELECT is(outcome, expected, format('%s: %s', role, label)) FROM results ORDER BY n;

-- After all of that, nothing changed: the victim's thread and message are intact and unseen.
SELECT is((SELECT count(*)::int FROM ama.messages WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'), 1,
          'the victim thread still holds exactly its one message');
SELECT is((SELECT last_seq FROM ama.threads WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'), 1::bigint,
          'no forged attempt bumped the victim thread''s last_seq');
SELECT is((SELECT count(*)::int FROM ama.participants WHERE thread_id = 'd0000000-0000-4000-8000-000000000001'), 2,
          'the victim thread still has its two participants');

-- The authenticator can switch to service_role, but that is not a trusted SQL service without a key.
SELECT ok(NOT pg_has_role('ama_authenticator', 'ama_service', 'MEMBER'),
          'ama_authenticator cannot become a trusted SQL service (ama_service) without an internal key');

SELECT * FROM finish();
ROLLBACK;
