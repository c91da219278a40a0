-- External agent tokens and internal API keys: plan and ownership gating, hash-only storage,
-- immediate and final revocation, malformed input, key rotation, and an audit log that is
-- append-only and never holds a secret.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(71);

-- Fixtures: S is starter and owns agent AS; B is basic and owns agent AB; X is starter and owns agent AX.
INSERT INTO ama.users (user_id, plan) VALUES
    ('e0000000-0000-4000-8000-00000000000a', 'starter'),
    ('e0000000-0000-4000-8000-00000000000b', 'basic'),
    ('e0000000-0000-4000-8000-00000000000c', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:e0000000-0000-4000-8000-00000000000a', 'user', 'e0000000-0000-4000-8000-00000000000a'),
    ('user:e0000000-0000-4000-8000-00000000000b', 'user', 'e0000000-0000-4000-8000-00000000000b'),
    ('user:e0000000-0000-4000-8000-00000000000c', 'user', 'e0000000-0000-4000-8000-00000000000c'),
    ('agent:e1000000-0000-4000-8000-00000000000a', 'agent', 'e0000000-0000-4000-8000-00000000000a'),
    ('agent:e1000000-0000-4000-8000-00000000000b', 'agent', 'e0000000-0000-4000-8000-00000000000b'),
    ('agent:e1000000-0000-4000-8000-00000000000c', 'agent', 'e0000000-0000-4000-8000-00000000000c');
-- A workspace thread of S with agent AS, so an agent request has something to read.
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('e2000000-0000-4000-8000-000000000001', 'workspace', 'e0000000-0000-4000-8000-00000000000a', 'user:e0000000-0000-4000-8000-00000000000a');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('e2000000-0000-4000-8000-000000000001', 'user:e0000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('e2000000-0000-4000-8000-000000000001', 'agent:e1000000-0000-4000-8000-00000000000a', 'agent', '{read,send,run}');

CREATE TEMP TABLE secrets (name text PRIMARY KEY, val text, id uuid);
GRANT SELECT ON secrets TO PUBLIC;  -- test bookkeeping readable by the request roles

-- One agent request through the shim, as ama_authenticator; returns the envelope status (or the SQLSTATE).
-- Its effects (last_used_at, audit rows) are kept.
CREATE FUNCTION pg_temp.agent_status(token text, ip inet) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    BEGIN
        SET LOCAL ROLE ama_authenticator;
        r := (SELECT coalesce(e ->> 'sqlstate', e ->> 'status') FROM (SELECT ama.request('events.poll', 'agent', token, NULL, ip,
                         '{"path": {"thread_id": "e2000000-0000-4000-8000-000000000001"}}') AS e) x);
    EXCEPTION WHEN OTHERS THEN r := SQLSTATE;
    END;
    RESET ROLE;
    RETURN r;
END $$;

-- One internal-key request through the shim; returns the envelope status (or the SQLSTATE).
CREATE FUNCTION pg_temp.key_status(key text, ip inet) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    BEGIN
        SET LOCAL ROLE ama_authenticator;
        r := (SELECT coalesce(e ->> 'sqlstate', e ->> 'status') FROM (SELECT ama.request('internal.users.put', 'internal', key, NULL, ip,
                         '{"path": {"user_id": "e0000000-0000-4000-8000-0000000000ff"}, "body": {"display_name": "k"}}') AS e) x);
    EXCEPTION WHEN OTHERS THEN r := SQLSTATE;
    END;
    RESET ROLE;
    RETURN r;
END $$;

-- ---------------------------------------------------------------------------
-- Issuing: starter plan and ownership of the agent.
-- ---------------------------------------------------------------------------
SELECT ama.impersonate('user:e0000000-0000-4000-8000-00000000000b');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000b')$$,
                 'AM403', 'this needs the starter plan or higher', 'basic user: issuing a token raises AM403');
SELECT throws_like($$SELECT * FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000b')$$,
                   '%starter%', 'basic user: the AM403 message names the starter plan');
SELECT throws_ok($$SELECT ama.api_tokens_create('{"body": {"agent_actor_id": "agent:e1000000-0000-4000-8000-00000000000b"}}')$$,
                 'AM403', 'this needs the starter plan or higher', 'basic user: POST tokens raises AM403 too');
RESET ROLE;

SELECT ama.impersonate('user:e0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000c')$$,
                 '42501', 'the agent actor belongs to another user', 'starter user: issuing for another user''s agent raises 42501');
SELECT throws_ok($$SELECT * FROM ama.issue_agent_token('agent:not-a-uuid')$$,
                 '22023', NULL, 'starter user: a malformed agent id raises 22023');
SELECT throws_ok($$SELECT * FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000a', 'x', now() - interval '1 minute')$$,
                 '22023', 'expires_at must be in the future', 'an expiry in the past raises 22023');
-- Direct INSERT with a chosen hash for another user's agent is refused by RLS.
SELECT throws_ok($$INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
                   VALUES ('agent:e1000000-0000-4000-8000-00000000000c', 'e0000000-0000-4000-8000-00000000000a', sha256('x'), 'ama_eat_abcd')$$,
                 '42501', NULL, 'direct INSERT of a token for another user''s agent raises 42501');
SELECT throws_ok($$INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
                   VALUES ('agent:e1000000-0000-4000-8000-00000000000c', 'e0000000-0000-4000-8000-00000000000c', sha256('x'), 'ama_eat_abcd')$$,
                 '42501', NULL, 'direct INSERT of a token in another user''s name raises 42501');
RESET ROLE;

-- The issue itself (as S, through the request role), keeping the raw token for the checks below.
DO $$
DECLARE r record;
BEGIN
    PERFORM ama.impersonate('user:e0000000-0000-4000-8000-00000000000a');
    SET LOCAL ROLE authenticated;
    SELECT * INTO r FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000a', 'Agent S');
    RESET ROLE;
    INSERT INTO secrets VALUES ('token', r.raw_token, r.token_id), ('token_prefix', r.token_prefix, r.token_id);
    PERFORM ama.impersonate('user:e0000000-0000-4000-8000-00000000000c');
    SET LOCAL ROLE authenticated;
    SELECT * INTO r FROM ama.issue_agent_token('agent:e1000000-0000-4000-8000-00000000000c', 'Agent X');
    RESET ROLE;
    INSERT INTO secrets VALUES ('x_token', r.raw_token, r.token_id);
END $$;

SELECT matches((SELECT val FROM secrets WHERE name = 'token'), '^ama_eat_[0-9a-f]{40,}$',
               'the raw token is ama_eat_ + hex (at least 128 random bits + 32-bit checksum)');
SELECT is((SELECT val FROM secrets WHERE name = 'token_prefix'), left((SELECT val FROM secrets WHERE name = 'token'), 12),
          'the display prefix is ama_eat_ + the first 4 hex digits');

-- ---------------------------------------------------------------------------
-- Storage: only the SHA-256 hash.
-- ---------------------------------------------------------------------------
SELECT columns_are('ama', 'agent_tokens',
    ARRAY['token_id', 'agent_actor_id', 'owner_user_id', 'token_hash', 'token_prefix', 'agent_display_name',
          'created_at', 'expires_at', 'last_used_at', 'revoked_at'],
    'agent_tokens has no column for the raw token');
SELECT col_type_is('ama', 'agent_tokens', 'token_hash', 'bytea', 'token_hash is bytea');
SELECT is((SELECT token_hash FROM ama.agent_tokens WHERE token_id = (SELECT id FROM secrets WHERE name = 'token')),
          sha256(convert_to((SELECT val FROM secrets WHERE name = 'token'), 'UTF8')),
          'token_hash = sha256(raw token)');
SELECT is(ama.token_hash((SELECT val FROM secrets WHERE name = 'token'), 'agent'),
          sha256(convert_to((SELECT val FROM secrets WHERE name = 'token'), 'UTF8')),
          'ama.token_hash agrees with sha256');
SELECT is((SELECT count(*)::int FROM ama.agent_tokens t
            WHERE to_jsonb(t)::text LIKE '%' || substr((SELECT val FROM secrets WHERE name = 'token'), 13) || '%'),
          0, 'no stored token row contains the raw token''s secret part');

-- ---------------------------------------------------------------------------
-- Listing: the owner's tokens only, never the hash.
-- ---------------------------------------------------------------------------
SELECT ama.impersonate('user:e0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT throws_ok('SELECT token_hash FROM ama.agent_tokens', '42501', NULL, 'authenticated cannot SELECT token_hash (column privilege)');
SELECT throws_ok('SELECT * FROM ama.agent_tokens', '42501', NULL, 'authenticated cannot SELECT * from agent_tokens');
SELECT is((SELECT count(*)::int FROM ama.agent_tokens WHERE token_id IS NOT NULL), 1, 'the owner sees exactly their one token row');
SELECT is((SELECT count(*)::int FROM ama.list_agent_tokens()), 1, 'list_agent_tokens shows the owner''s one token');
SELECT is((SELECT token_prefix FROM ama.list_agent_tokens()), (SELECT val FROM secrets WHERE name = 'token_prefix'),
          'list_agent_tokens shows the display prefix');
SELECT ok(NOT (ama.api_tokens_list('{}')::text LIKE '%' || substr((SELECT val FROM secrets WHERE name = 'token'), 13) || '%'),
          'GET tokens does not contain the raw token');
SELECT ok(ama.api_tokens_list('{}')::text NOT LIKE '%token_hash%', 'GET tokens has no token_hash field');
SELECT is(jsonb_array_length(ama.api_tokens_list('{}') -> 'tokens'), 1, 'GET tokens lists one token');
SELECT throws_ok(format('SELECT ama.revoke_agent_token(%L)', (SELECT id FROM secrets WHERE name = 'x_token')),
                 'AM404', 'token not found', 'revoking another user''s token raises AM404');
RESET ROLE;
SELECT ok(NOT (ama.api_tokens_list('{}')::text LIKE '%' || encode((SELECT token_hash FROM ama.agent_tokens WHERE token_id = (SELECT id FROM secrets WHERE name = 'token')), 'hex') || '%'),
          'GET tokens does not contain the token hash');

-- ---------------------------------------------------------------------------
-- Use and revocation, through ama.request as ama_authenticator.
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.agent_status((SELECT val FROM secrets WHERE name = 'token'), '198.51.100.40'), '200', 'a fresh token authenticates (200)');
SELECT isnt((SELECT last_used_at FROM ama.agent_tokens WHERE token_id = (SELECT id FROM secrets WHERE name = 'token')), NULL,
            'last_used_at is recorded on use');
SELECT ama.impersonate('user:e0000000-0000-4000-8000-00000000000a');
SET LOCAL ROLE authenticated;
SELECT isnt(ama.revoke_agent_token((SELECT id FROM secrets WHERE name = 'token')), NULL, 'the owner revokes the token');
SELECT throws_ok(format('UPDATE ama.agent_tokens SET revoked_at = NULL WHERE token_id = %L', (SELECT id FROM secrets WHERE name = 'token')),
                 '42501', NULL, 'a revoked token cannot be un-revoked by its owner (42501)');
RESET ROLE;
SELECT is(pg_temp.agent_status((SELECT val FROM secrets WHERE name = 'token'), '198.51.100.40'), '401', 'the revoked token gets 401 at once');
SELECT is((SELECT revoked_at IS NOT NULL FROM ama.agent_tokens WHERE token_id = (SELECT id FROM secrets WHERE name = 'token')), true,
          'the revocation is stored');
-- Expiry: the other user's token, expired by a DBA, is refused too.
SELECT is(pg_temp.agent_status((SELECT val FROM secrets WHERE name = 'x_token'), '198.51.100.40'), 'AM404',
          'agent X''s live token authenticates but S''s workspace does not exist for it (AM404)');
UPDATE ama.agent_tokens SET expires_at = now() - interval '1 second' WHERE token_id = (SELECT id FROM secrets WHERE name = 'x_token');
SELECT is(pg_temp.agent_status((SELECT val FROM secrets WHERE name = 'x_token'), '198.51.100.40'), '401', 'an expired token gets 401');

-- ---------------------------------------------------------------------------
-- Malformed tokens: 401 envelopes from the shim path, 28000 from ama.token_hash, no secret echoed.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE bad_tokens (label text, tok text);
INSERT INTO bad_tokens
SELECT 'wrong prefix', 'ama_xyz_' || substr(val, 9) FROM secrets WHERE name = 'token'
UNION ALL SELECT 'bad hex', 'ama_eat_' || repeat('zz', 20) FROM secrets WHERE name = 'token'
UNION ALL SELECT 'wrong checksum', left(val, length(val) - 1) || CASE right(val, 1) WHEN '0' THEN '1' ELSE '0' END FROM secrets WHERE name = 'token'
UNION ALL SELECT 'truncated', left(val, 20) FROM secrets WHERE name = 'token'
UNION ALL SELECT 'empty', '';
SELECT is(pg_temp.agent_status(tok, '198.51.100.41'), '401', 'malformed token (' || label || ') gets a 401 envelope') FROM bad_tokens ORDER BY label;
SELECT is(pg_temp.agent_status(NULL, '198.51.100.41'), '401', 'a NULL agent token gets a 401 envelope');
SELECT throws_ok(format('SELECT ama.token_hash(%L, %L)', tok, 'agent'), '28000', 'invalid or expired credential',
                 'ama.token_hash rejects a token with ' || label || ' (28000, no echo)') FROM bad_tokens ORDER BY label;
SELECT throws_ok($$SELECT ama.token_hash(NULL, 'agent')$$, '22004', NULL, 'ama.token_hash(NULL) raises 22004');

-- ---------------------------------------------------------------------------
-- Internal API keys: created by a DBA, two active at once, revoking one leaves the other.
-- ---------------------------------------------------------------------------
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM ama.create_internal_key('nope')$$, '42501', NULL, 'authenticated cannot create an internal key');
RESET ROLE;
SET LOCAL ROLE service_role;
SELECT throws_ok($$SELECT * FROM ama.create_internal_key('nope')$$, '42501', NULL, 'service_role cannot create an internal key');
RESET ROLE;
DO $$
DECLARE r record; q record;
BEGIN
    SET LOCAL ROLE ama_admin;
    SELECT * INTO r FROM ama.create_internal_key('svc-one');
    SELECT * INTO q FROM ama.create_internal_key('svc-two');
    RESET ROLE;
    INSERT INTO secrets VALUES ('key1', r.raw_key, r.key_id), ('key2', q.raw_key, q.key_id);
END $$;
SET LOCAL ROLE ama_admin;
SELECT throws_ok($$SELECT * FROM ama.create_internal_key('svc-one')$$, 'AM409', NULL, 'a duplicate key name raises AM409');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM ama.internal_keys WHERE key_hash IN (
            sha256(convert_to((SELECT val FROM secrets WHERE name = 'key1'), 'UTF8')),
            sha256(convert_to((SELECT val FROM secrets WHERE name = 'key2'), 'UTF8')))), 2,
          'internal keys are stored as sha256 of the raw key');
SELECT is(pg_temp.key_status((SELECT val FROM secrets WHERE name = 'key1'), '198.51.100.42'), '200', 'key one works');
SELECT is(pg_temp.key_status((SELECT val FROM secrets WHERE name = 'key2'), '198.51.100.42'), '200', 'key two works at the same time');
SET LOCAL ROLE ama_admin;
SELECT is(ama.revoke_internal_key('svc-one'), true, 'a DBA revokes key one');
RESET ROLE;
SELECT is(pg_temp.key_status((SELECT val FROM secrets WHERE name = 'key1'), '198.51.100.42'), '401', 'key one is refused at once (401)');
SELECT is(pg_temp.key_status((SELECT val FROM secrets WHERE name = 'key2'), '198.51.100.42'), '200', 'key two still works');
SELECT is(pg_temp.key_status('not-a-key', '198.51.100.42'), '401', 'a malformed key gets 401');

-- ---------------------------------------------------------------------------
-- The audit log: the right events, never a secret, append-only even for a superuser.
-- ---------------------------------------------------------------------------
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'token_issued' AND subject = (SELECT id FROM secrets WHERE name = 'token')::text),
          'audit: token_issued for the token');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'token_issued' AND actor_id = 'user:e0000000-0000-4000-8000-00000000000a'),
          'audit: token_issued names the issuing user');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'token_revoked' AND subject = (SELECT id FROM secrets WHERE name = 'token')::text),
          'audit: token_revoked for the token');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'key_created' AND subject IN
            (SELECT id::text FROM secrets WHERE name IN ('key1', 'key2'))), 2, 'audit: key_created for both keys');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'key_revoked' AND subject = (SELECT id FROM secrets WHERE name = 'key1')::text),
          'audit: key_revoked for key one');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'key_used'), 'audit: key_used');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'auth_failed' AND client_ip = '198.51.100.41'), 'audit: auth_failed with the client IP');
-- Without the auth_failures policy, failures are still refused and audited.
DELETE FROM ama.rate_policies WHERE name = 'auth_failures';
SELECT is(pg_temp.agent_status((SELECT val FROM secrets WHERE name = 'token'), '198.51.100.42'), '401',
          'without the auth_failures policy a bad token still gets 401');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'auth_failed' AND client_ip = '198.51.100.42'),
          'without the auth_failures policy the failure is still audited');
SELECT is_empty(
    $$SELECT a.audit_id, s.name FROM ama.audit_log a, secrets s
       WHERE s.name IN ('token', 'x_token', 'key1', 'key2')
         AND (to_jsonb(a)::text LIKE '%' || substr(s.val, 13) || '%'
              OR to_jsonb(a)::text LIKE '%' || encode(sha256(convert_to(s.val, 'UTF8')), 'hex') || '%')$$,
    'no audit row or detail holds a raw token, a raw key or their hash');
SELECT is_empty(
    $$SELECT a.audit_id FROM ama.audit_log a, bad_tokens b WHERE b.tok <> '' AND to_jsonb(a)::text LIKE '%' || substr(b.tok, 9) || '%'$$,
    'no audit row holds a rejected token''s text');
SELECT throws_ok('UPDATE ama.audit_log SET event = event', '42501', 'ama.audit_log is append-only', 'superuser UPDATE of audit_log raises 42501');
SELECT throws_ok('DELETE FROM ama.audit_log', '42501', 'ama.audit_log is append-only', 'superuser DELETE from audit_log raises 42501');
SELECT throws_ok('TRUNCATE ama.audit_log', '42501', 'ama.audit_log is append-only', 'superuser TRUNCATE of audit_log raises 42501');
SET LOCAL ROLE ama_admin;
SELECT throws_ok('DELETE FROM ama.audit_log', '42501', NULL, 'ama_admin DELETE from audit_log raises 42501');
SELECT ok((SELECT count(*) FROM ama.audit_events()) > 0, 'ama_admin reads the audit log through ama.audit_events');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
