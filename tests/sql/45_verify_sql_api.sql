-- The SQL verifiers for trusted services, ama.verify_agent_token and ama.verify_internal_key, run
-- as ama_service: live credentials verify, every kind of bad credential raises 28000 without
-- echoing it, revocation and expiry hold for the very next call, last_used_at is written at most
-- once a minute, each key use is audited, and the request roles cannot call them.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
BEGIN;
SELECT plan(24);

-- Fixtures: user V (starter) owns agent AV, which has token t1; internal key k1.
INSERT INTO ama.users (user_id, plan) VALUES ('f0000000-0000-4000-8000-00000000000a', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:f0000000-0000-4000-8000-00000000000a', 'user', 'f0000000-0000-4000-8000-00000000000a'),
    ('agent:f1000000-0000-4000-8000-00000000000a', 'agent', 'f0000000-0000-4000-8000-00000000000a');
CREATE TEMP TABLE creds (name text PRIMARY KEY, raw text, id uuid);
GRANT SELECT ON creds TO PUBLIC;  -- test bookkeeping readable by the roles below
WITH t AS (SELECT * FROM ama._token_new('agent')),
     ins AS (INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
             SELECT 'agent:f1000000-0000-4000-8000-00000000000a', 'f0000000-0000-4000-8000-00000000000a', token_hash, token_prefix
               FROM t RETURNING token_id)
INSERT INTO creds SELECT 't1', t.raw_token, ins.token_id FROM t, ins;
INSERT INTO creds SELECT 'k1', raw_key, key_id FROM ama.create_internal_key('verify-test');
-- A well-formed visitor token and a token whose checksum is off by one digit.
INSERT INTO creds SELECT 'visitor', raw_token, NULL FROM ama._token_new('visitor');
INSERT INTO creds SELECT 'badsum', left(raw, length(raw) - 1)
                         || CASE right(raw, 1) WHEN '0' THEN '1' ELSE '0' END, NULL
  FROM creds WHERE name = 't1';

SET LOCAL ROLE ama_service;

-- Live credentials verify.
SELECT results_eq(
    $$SELECT token_id, agent_actor_id FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1'))$$,
    $$SELECT id::text, 'agent:f1000000-0000-4000-8000-00000000000a' FROM creds WHERE name = 't1'$$,
    'ama_service verifies a live agent token: its token id and agent');
SELECT results_eq(
    $$SELECT key_id, actor_id FROM ama.verify_internal_key((SELECT raw FROM creds WHERE name = 'k1'))$$,
    $$SELECT id::text, 'service:verify-test' FROM creds WHERE name = 'k1'$$,
    'ama_service verifies a live internal key: its key id and service actor');

-- Bad credentials: 28000 with one generic message.
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 'badsum'))$$,
                 '28000', 'invalid or expired credential', 'a wrong checksum raises 28000');
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 'visitor'))$$,
                 '28000', 'invalid or expired credential', 'a visitor token is not an agent token (28000)');
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 'k1'))$$,
                 '28000', 'invalid or expired credential', 'an internal key is not an agent token (28000)');
SELECT throws_ok($$SELECT * FROM ama.verify_internal_key((SELECT raw FROM creds WHERE name = 't1'))$$,
                 '28000', 'invalid or expired credential', 'an agent token is not an internal key (28000)');
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token('ama_eat_' || repeat('g', 72))$$,
                 '28000', 'invalid or expired credential', 'bad hex raises 28000');
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token('')$$,
                 '28000', 'invalid or expired credential', 'an empty token raises 28000');
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token(NULL)$$,
                 '22004', 'raw_token must not be NULL', 'a NULL token raises 22004');
SELECT throws_ok($$SELECT * FROM ama.verify_internal_key(NULL)$$,
                 '22004', 'raw_key must not be NULL', 'a NULL key raises 22004');

-- A well-formed token that was never issued.
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw_token FROM ama._token_new('agent')))$$,
                 '28000', 'invalid or expired credential', 'an unknown well-formed token raises 28000');

-- last_used_at: written on use, then at most once a minute.
RESET ROLE;
SELECT isnt((SELECT last_used_at FROM ama.agent_tokens WHERE token_id = (SELECT id FROM creds WHERE name = 't1')), NULL,
            'verification recorded last_used_at');
UPDATE ama.agent_tokens SET last_used_at = now() - interval '30 seconds' WHERE token_id = (SELECT id FROM creds WHERE name = 't1');
SET LOCAL ROLE ama_service;
SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1')) \g /dev/null
RESET ROLE;
SELECT is((SELECT last_used_at FROM ama.agent_tokens WHERE token_id = (SELECT id FROM creds WHERE name = 't1')),
          now() - interval '30 seconds', 'a use within a minute of the last does not write last_used_at');
UPDATE ama.agent_tokens SET last_used_at = now() - interval '2 minutes' WHERE token_id = (SELECT id FROM creds WHERE name = 't1');
SET LOCAL ROLE ama_service;
SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1')) \g /dev/null
RESET ROLE;
SELECT is((SELECT last_used_at FROM ama.agent_tokens WHERE token_id = (SELECT id FROM creds WHERE name = 't1')),
          now(), 'a use more than a minute after the last writes last_used_at');
SELECT is((SELECT count(*)::int FROM ama.audit_log WHERE event = 'key_used' AND subject = (SELECT id FROM creds WHERE name = 'k1')::text),
          1, 'the key''s use is audited once');

-- Expiry and revocation hold for the very next call.
UPDATE ama.agent_tokens SET expires_at = now() - interval '1 second' WHERE token_id = (SELECT id FROM creds WHERE name = 't1');
SET LOCAL ROLE ama_service;
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1'))$$,
                 '28000', 'invalid or expired credential', 'an expired token raises 28000');
RESET ROLE;
UPDATE ama.agent_tokens SET expires_at = now() + interval '1 hour' WHERE token_id = (SELECT id FROM creds WHERE name = 't1');
SET LOCAL ROLE ama_service;
SELECT lives_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1'))$$,
                'a token expiring in the future verifies');
RESET ROLE;
SELECT ok(ama.admin_revoke_agent_token((SELECT id FROM creds WHERE name = 't1')), 'a DBA revokes the token');
SELECT is(ama.revoke_internal_key('verify-test'), true, 'a DBA revokes the key');
SET LOCAL ROLE ama_service;
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1'))$$,
                 '28000', 'invalid or expired credential', 'the revoked token raises 28000 on the next call');
SELECT throws_ok($$SELECT * FROM ama.verify_internal_key((SELECT raw FROM creds WHERE name = 'k1'))$$,
                 '28000', 'invalid or expired credential', 'the revoked key raises 28000 on the next call');

-- The request roles cannot call the verifiers.
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM ama.verify_agent_token((SELECT raw FROM creds WHERE name = 't1'))$$,
                 '42501', NULL, 'authenticated may not call verify_agent_token (42501)');
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM ama.verify_internal_key((SELECT raw FROM creds WHERE name = 'k1'))$$,
                 '42501', NULL, 'anon may not call verify_internal_key (42501)');
SELECT throws_ok($$SELECT ama._credential_used('agent', ama.token_hash((SELECT raw FROM creds WHERE name = 't1'), 'agent'))$$,
                 '42501', NULL, 'anon may not call ama._credential_used (42501)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
