-- Rate limits at SQL level: decisions survive ROLLBACK (the ledger is shared memory, not a table),
-- bad input is rejected with its SQLSTATE, and failed authentication is counted per client IP.
-- A fresh policy (limit 3) is committed first and deleted at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
SELECT 'tap-' || gen_random_uuid() AS rlkey \gset
SET tap.key = :'rlkey';
INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind, description)
VALUES ('tap_rollback', 201, 3, 'credential', 'pgTAP: rollback-proof decisions');

-- Two decisions in two top-level transactions that roll back, as a trusted service.
BEGIN; DO $$ BEGIN SET LOCAL ROLE service_role; PERFORM ama.rate_limit('tap_rollback', current_setting('tap.key')); END $$; ROLLBACK;
BEGIN; DO $$ BEGIN SET LOCAL ROLE service_role; PERFORM ama.rate_limit('tap_rollback', current_setting('tap.key')); END $$; ROLLBACK;

BEGIN;
SELECT plan(33);

-- A third decision in a rolled-back subtransaction; then the fourth must be denied.
CREATE TEMP TABLE decisions (n int, allowed boolean);
GRANT INSERT ON decisions TO PUBLIC;
DO $$
DECLARE a boolean;
BEGIN
    BEGIN
        SET LOCAL ROLE service_role;
        SELECT allowed INTO a FROM ama.rate_limit('tap_rollback', current_setting('tap.key'));
        RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = a::text;
    EXCEPTION WHEN SQLSTATE 'ZZ999' THEN a := SQLERRM::boolean;
    END;
    INSERT INTO decisions VALUES (3, a);
END $$;
SELECT is((SELECT allowed FROM decisions WHERE n = 3), true, 'the third decision (in a rolled-back subtransaction) is allowed');
SET LOCAL ROLE service_role;
SELECT is((SELECT allowed FROM ama.rate_limit('tap_rollback', current_setting('tap.key'))), false,
          'after 3 rolled-back decisions the 4th is denied: ROLLBACK does not refund');
SELECT ok((SELECT retry_after_seconds FROM ama.rate_limit('tap_rollback', current_setting('tap.key'))) > 0,
          'a denial carries a retry time');
SELECT is((SELECT "limit" FROM ama.rate_limit('tap_rollback', 'other-' || current_setting('tap.key'))), 3::bigint,
          'another key has its own allowance (limit 3)');
SELECT is((SELECT allowed FROM ama.rate_limit('tap_rollback', 'other-' || current_setting('tap.key'))), true,
          'another key is still allowed');
SELECT throws_ok($$SELECT ama.rate_limit_enforce('tap_rollback', current_setting('tap.key'))$$, 'AM429', 'rate limit exceeded for tap_rollback',
                 'rate_limit_enforce raises AM429 when denied');

-- Bad input.
SELECT throws_ok($$SELECT * FROM ama.rate_limit('no_such_policy', 'k')$$, '42704', NULL, 'an unknown policy raises 42704');
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', NULL)$$, '22004', NULL, 'a NULL key raises 22004');
SELECT throws_ok($$SELECT * FROM ama.rate_limit(NULL, 'k')$$, '22004', NULL, 'a NULL policy raises 22004');
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', '')$$, '22023', NULL, 'an empty key raises 22023');
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', 'k', NULL, -1)$$, '22023', NULL, 'a negative cost raises 22023');
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', 'k', NULL, NULL)$$, '22004', 'cost must not be NULL', 'a NULL cost raises 22004');
RESET ROLE;

-- Policies are data for DBAs; the table CHECKs reject nonsense limits and periods.
SET LOCAL ROLE ama_admin;
SELECT throws_ok($$INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES ('tap_zero', 202, 0, 'ip')$$,
                 '23514', NULL, 'a zero limit violates the CHECK (23514)');
SELECT throws_ok($$INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES ('tap_neg', 202, -5, 'ip')$$,
                 '23514', NULL, 'a negative limit violates the CHECK (23514)');
SELECT throws_ok($$INSERT INTO ama.rate_policies (name, policy_id, rate_limit, period, key_kind) VALUES ('tap_p0', 202, 5, '0 seconds', 'ip')$$,
                 '23514', NULL, 'a zero period violates the CHECK (23514)');
SELECT throws_ok($$INSERT INTO ama.rate_policies (name, policy_id, rate_limit, period, key_kind) VALUES ('tap_pneg', 202, 5, '-1 minute', 'ip')$$,
                 '23514', NULL, 'a negative period violates the CHECK (23514)');
SELECT throws_ok($$INSERT INTO ama.rate_policies (name, policy_id, rate_limit, burst, key_kind) VALUES ('tap_bneg', 202, 5, -1, 'ip')$$,
                 '23514', NULL, 'a negative burst violates the CHECK (23514)');
SELECT throws_ok($$INSERT INTO ama.rate_policy_overrides (policy, plan, rate_limit) VALUES ('tap_rollback', 'starter', 0)$$,
                 '23514', NULL, 'a zero per-plan override violates the CHECK (23514)');
RESET ROLE;

-- Request roles can neither take decisions directly nor edit policies.
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', 'x')$$, '42501', NULL, 'authenticated cannot call ama.rate_limit');
SELECT throws_ok($$UPDATE ama.rate_policies SET rate_limit = 1000000$$, '42501', NULL, 'authenticated cannot edit rate policies');
SELECT throws_ok($$SELECT ama.rate_limit_reset('auth_failures', 'ip:203.0.113.60')$$, '42501', NULL, 'authenticated cannot reset a bucket');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT * FROM ama.rate_limit('tap_rollback', 'x')$$, '42501', NULL, 'anon cannot call ama.rate_limit');
RESET ROLE;

-- Failed authentication per (client IP, credential kind): 12 bad agent tokens from one IP through ama.request.
CREATE TEMP TABLE attempts (n int, status text);
GRANT INSERT ON attempts TO PUBLIC;
DO $$
DECLARE r text;
BEGIN
    SET LOCAL ROLE ama_authenticator;
    FOR i IN 1..12 LOOP
        r := ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, '203.0.113.60',
                         '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}') ->> 'status';
        INSERT INTO attempts VALUES (i, r);
    END LOOP;
    RESET ROLE;
END $$;
SELECT is((SELECT array_agg(status ORDER BY n) FROM attempts WHERE n <= 10), array_fill('401'::text, ARRAY[10]),
          'the first 10 bad tokens from one IP get 401');
SELECT is((SELECT array_agg(status ORDER BY n) FROM attempts WHERE n > 10), ARRAY['429', '429'],
          'the 11th and 12th get 429');
SET LOCAL ROLE ama_authenticator;
SELECT is(ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, '203.0.113.61',
                      '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}') ->> 'status', '401',
          'another IP still gets 401');
SELECT is(ama.request('threads.list', 'jwt', NULL, '{"sub": "60000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                      '203.0.113.60', '{}') ->> 'status', '200',
          'a credential that verifies is served from the blocked IP: others'' failures never lock a valid user out');
SELECT is(ama.request('threads.list', 'jwt', NULL, '{"sub": "60000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                      '203.0.113.61', '{}') ->> 'status', '200',
          'a valid credential from another IP is served (200)');
SELECT is(ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, '203.0.113.60',
                      '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}') -> 'rate' ->> 'policy', 'auth_failures',
          'a further failing agent token from the blocked IP: its 429 envelope names the auth_failures policy');
SELECT is(ama.request('threads.list', 'jwt', NULL, '{"sub": "not-a-uuid", "aud": "authenticated"}',
                      '203.0.113.60', '{}') ->> 'status', '401',
          'failures count per credential kind: a failing JWT from the same IP is still 401');
-- An IPv6 client can pick any address in its /64: failures count per /64.
DO $$
BEGIN
    FOR i IN 1..10 LOOP
        PERFORM ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, ('2001:db8:60:1::' || i)::inet,
                            '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}');
    END LOOP;
END $$;
SELECT is(ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, '2001:db8:60:1:ffff::1',
                      '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}') ->> 'status', '429',
          'ten failures from ten addresses of one IPv6 /64: the next address of that /64 gets 429');
SELECT is(ama.request('events.poll', 'agent', 'ama_eat_' || repeat('0', 40), NULL, '2001:db8:60:2::1',
                      '{"path": {"thread_id": "60000000-0000-4000-8000-000000000001"}}') ->> 'status', '401',
          'another /64 is another client (401)');
RESET ROLE;
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'auth_failed' AND client_ip = '2001:db8:60:1::1'),
          'the audit log keeps the exact IPv6 address');
SELECT ok(EXISTS (SELECT 1 FROM ama.audit_log WHERE event = 'auth_failed' AND client_ip = '203.0.113.60'),
          'failed attempts are audited with the client IP');

SELECT * FROM finish();
ROLLBACK;

-- Cleanup: the committed test policy and the IP bucket.
DELETE FROM ama.rate_policies WHERE name = 'tap_rollback';
SELECT ama.rate_limit_reset('auth_failures', 'ip:203.0.113.60|agent') AS reset \gset
SELECT ama.rate_limit_reset('auth_failures', 'ip:2001:db8:60:1::|agent') AS reset6 \gset
