-- The request context never outlives ama.request (its SET clauses restore every setting when it
-- returns), and so never its transaction: consecutive transactions on one connection (a pooled
-- connection) never inherit the previous request's identity. pg_prove runs this file in one
-- psql session, so every top-level transaction below runs on the same connection. The only data
-- committed is the user that ama.request provisions for the JWT; it is deleted at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
\set uid '30000000-0000-4000-8000-00000000000a'

-- Transaction 1 (committed): a JWT request through the shim entry point.
BEGIN;
SET LOCAL ROLE ama_authenticator;
SELECT ama.request('threads.list', 'jwt', NULL, jsonb_build_object('sub', :'uid', 'aud', 'authenticated'),
                   '203.0.113.30', '{}') ->> 'status' AS t1_status \gset
SELECT current_setting('ama.actor_id', true) AS t1_actor, current_setting('ama.principal_kind', true) AS t1_kind,
       current_setting('request.jwt.claims', true) AS t1_jwt \gset
COMMIT;

-- Transaction 2 (committed): nothing set here; what does it see?
BEGIN;
SELECT coalesce(current_setting('ama.actor_id', true), '') AS t2_actor,
       coalesce(current_setting('ama.principal_kind', true), '') AS t2_kind,
       coalesce(current_setting('ama.claims', true), '') AS t2_claims,
       coalesce(current_setting('ama.credential_id', true), '') AS t2_cred,
       coalesce(current_setting('ama.plan', true), '') AS t2_plan,
       coalesce(current_setting('ama.client_ip', true), '') AS t2_ip,
       coalesce(current_setting('request.jwt.claims', true), '') AS t2_jwt \gset
SET LOCAL ROLE authenticated;
SELECT coalesce(ama.actor_id(), 'NULL') AS t2_fn_actor, ama.principal_kind() AS t2_fn_kind,
       (SELECT count(*) FROM ama.users) AS t2_users \gset
COMMIT;

-- Transaction 3 (rolled back): a request, then ROLLBACK.
BEGIN;
SET LOCAL ROLE ama_authenticator;
SELECT ama.request('threads.list', 'jwt', NULL, jsonb_build_object('sub', :'uid', 'aud', 'authenticated'),
                   '203.0.113.30', '{}') ->> 'status' AS t3_status \gset
ROLLBACK;

-- Transaction 4: after the rollback, still nothing.
BEGIN;
SELECT coalesce(current_setting('ama.actor_id', true), '') AS t4_actor,
       coalesce(current_setting('request.jwt.claims', true), '') AS t4_jwt \gset
COMMIT;

-- Transaction 5: the assertions, plus savepoint behaviour within one transaction.
BEGIN;
SELECT plan(22);
SELECT is(:'t1_status'::text, '200', 'transaction 1: the JWT request succeeded');
SELECT is(coalesce(:'t1_actor'::text, ''), '', 'transaction 1: ama.actor_id is restored when ama.request returns, in the same transaction');
SELECT is(coalesce(:'t1_kind'::text, ''), '', 'transaction 1: ama.principal_kind is restored when ama.request returns');
SELECT is(coalesce(:'t1_jwt'::text, ''), '', 'transaction 1: request.jwt.claims is restored when ama.request returns');
SELECT is(:'t2_actor'::text, '', 'transaction 2: ama.actor_id is empty');
SELECT is(:'t2_kind'::text, '', 'transaction 2: ama.principal_kind is empty');
SELECT is(:'t2_claims'::text, '', 'transaction 2: ama.claims is empty');
SELECT is(:'t2_cred'::text, '', 'transaction 2: ama.credential_id is empty');
SELECT is(:'t2_plan'::text, '', 'transaction 2: ama.plan is empty');
SELECT is(:'t2_ip'::text, '', 'transaction 2: ama.client_ip is empty');
SELECT is(:'t2_jwt'::text, '', 'transaction 2: request.jwt.claims is empty');
SELECT is(:'t2_fn_actor'::text, 'NULL', 'transaction 2: ama.actor_id() is NULL');
SELECT is(:'t2_fn_kind'::text, 'anon', 'transaction 2: ama.principal_kind() as authenticated without context is anon');
SELECT is(:'t2_users'::text, '0', 'transaction 2: the previous user''s row is invisible');
SELECT is(:'t3_status'::text, '200', 'transaction 3: the request succeeded before its rollback');
SELECT is(:'t4_actor'::text, '', 'transaction 4: ama.actor_id is empty after a rolled-back request');
SELECT is(:'t4_jwt'::text, '', 'transaction 4: request.jwt.claims is empty after a rolled-back request');
SELECT is(coalesce(current_setting('ama.actor_id', true), ''), '', 'transaction 5 starts without context');
-- Within a transaction, a savepoint rollback restores the context too.
SAVEPOINT before_impersonation;
SELECT ama.impersonate('user:' || :'uid') AS kind_in_savepoint \gset
ROLLBACK TO SAVEPOINT before_impersonation;
SELECT is(:'kind_in_savepoint'::text, 'user', 'impersonation inside a savepoint worked');
SELECT is(coalesce(current_setting('ama.actor_id', true), ''), '', 'ROLLBACK TO SAVEPOINT removed the impersonated identity');
-- A plain (non-LOCAL) SET by a superuser would survive; the context functions never do that.
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name LIKE 'ama.%' AND source = 'session' AND setting <> ''), 0,
          'no ama.* setting has a session-level value');
SELECT is((SELECT count(*)::int FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE c LIKE 'ama.actor_id=%' OR c LIKE 'ama.principal_kind=%'), 0,
          'no role or database default sets ama.actor_id or ama.principal_kind');
SELECT * FROM finish();
ROLLBACK;

-- Cleanup: the user provisioned by the JWT request.
DELETE FROM ama.users WHERE user_id = :'uid';
