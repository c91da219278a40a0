-- Attack: search_path / pg_temp escalation, as a class.
--
-- A function whose search_path does not name pg_temp searches pg_temp FIRST for tables and types
-- (PostgreSQL only skips pg_temp for functions and operators). Any role that may create temporary
-- objects can then plant, in its own pg_temp, a domain named like a built-in type (jsonb, text,
-- inet, uuid, ...) whose CHECK runs the attacker's function, or a table named like an ama table:
-- a SECURITY DEFINER function that names that type or table runs the attacker's code as its owner
-- (the superuser that installed the extension). The defence: every SECURITY DEFINER function (and
-- every function that pins its search_path) sets exactly `search_path = pg_catalog, pg_temp`.
--
-- Part 1 checks the catalog. Part 2 plants, as every attacker (the request roles with and without a
-- request context, a trusted-service login, the shim's login role), a pg_temp.pwn() that records
-- when and as whom it runs, 30 domains over built-in types and 15 tables named after the ama tables,
-- then calls every ama function the attacker may EXECUTE (the shim's role: as each request role it may
-- switch to, every function that role may EXECUTE, then every route of ama.request with every kind of
-- credential). A deliberately weak SECURITY DEFINER function is
-- called first in every session: it must be caught (the positive control proves the detector).
--
-- PL/pgSQL compiles a function once per backend, so each attacker runs in a fresh session (\c),
-- in a transaction that is rolled back; results come back through psql variables and are asserted
-- in the last session, which is this file's one pgTAP transaction.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

-- ---------------------------------------------------------------------------
-- Part 2 first (it prints nothing): one fresh session per attacker.
-- ---------------------------------------------------------------------------
\set label anon
\set attacker anon
\set mode role
\set ctx none
\ir include/80_plant_and_call.psql

\set label visitor
\set attacker anon
\set mode role
\set ctx visitor
\ir include/80_plant_and_call.psql

\set label authenticated
\set attacker authenticated
\set mode role
\set ctx none
\ir include/80_plant_and_call.psql

\set label owner
\set attacker authenticated
\set mode role
\set ctx owner
\ir include/80_plant_and_call.psql

\set label downgraded
\set attacker authenticated
\set mode role
\set ctx downgraded
\ir include/80_plant_and_call.psql

\set label agent
\set attacker authenticated
\set mode role
\set ctx agent
\ir include/80_plant_and_call.psql

\set label service_role
\set attacker service_role
\set mode role
\set ctx none
\ir include/80_plant_and_call.psql

\set label service_ctx
\set attacker service_role
\set mode role
\set ctx service
\ir include/80_plant_and_call.psql

\set label svc_login
\set attacker sp80_svc
\set mode session
\set ctx none
\ir include/80_plant_and_call.psql

\set label shim
\set attacker ama_authenticator
\set mode shim
\set ctx none
\ir include/80_plant_and_call.psql

-- ---------------------------------------------------------------------------
-- The assertions: this file's one pgTAP transaction.
-- ---------------------------------------------------------------------------
\c
SET client_min_messages = warning;
BEGIN;
SELECT plan(4 + 10 * 6);

-- Part 1: the catalog.
SELECT isnt_empty(
    $$SELECT 1 FROM pg_proc WHERE pronamespace = 'ama'::regnamespace AND prosecdef$$,
    'schema ama has SECURITY DEFINER functions');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text, l.lanname, coalesce(p.proconfig::text, '<none>')
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'ama'::regnamespace AND p.prosecdef
         AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SECURITY DEFINER function in ama (SQL, PL/pgSQL, C) has search_path=pg_catalog, pg_temp exactly');
-- A function that pins its search_path without pg_temp (even SECURITY INVOKER) runs with pg_temp searched
-- first for types and tables; called from a SECURITY DEFINER function or a trigger it runs as the owner.
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text, c
        FROM pg_proc p, unnest(p.proconfig) c
       WHERE p.pronamespace = 'ama'::regnamespace AND c LIKE 'search\_path=%'
         AND c <> 'search_path=pg_catalog, pg_temp'$$,
    'every function in ama that pins search_path pins exactly pg_catalog, pg_temp');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'ama'::regnamespace AND p.prosecdef
         AND (p.proacl IS NULL OR has_function_privilege('public', p.oid, 'EXECUTE')
              OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))$$,
    'no SECURITY DEFINER function in ama is executable by PUBLIC');

-- Part 2: per attacker.
CREATE TEMP TABLE outcome (ord int, label text, who text, planted text, plant_errors text, calls int, control int,
                           super text, foreign_runs text, secdef text);
INSERT INTO outcome VALUES
    (1, 'anon',          'anon (no context)',                                 :'anon_planted', :'anon_plant_errors', :'anon_calls', :'anon_control', :'anon_super', :'anon_foreign', :'anon_secdef'),
    (2, 'visitor',       'anon as a visitor (impersonated)',                  :'visitor_planted', :'visitor_plant_errors', :'visitor_calls', :'visitor_control', :'visitor_super', :'visitor_foreign', :'visitor_secdef'),
    (3, 'authenticated', 'authenticated (no context)',                        :'authenticated_planted', :'authenticated_plant_errors', :'authenticated_calls', :'authenticated_control', :'authenticated_super', :'authenticated_foreign', :'authenticated_secdef'),
    (4, 'owner',         'authenticated as a starter user',                   :'owner_planted', :'owner_plant_errors', :'owner_calls', :'owner_control', :'owner_super', :'owner_foreign', :'owner_secdef'),
    (5, 'downgraded',    'authenticated as a downgraded (starter to basic) user', :'downgraded_planted', :'downgraded_plant_errors', :'downgraded_calls', :'downgraded_control', :'downgraded_super', :'downgraded_foreign', :'downgraded_secdef'),
    (6, 'agent',         'authenticated as an agent',                         :'agent_planted', :'agent_plant_errors', :'agent_calls', :'agent_control', :'agent_super', :'agent_foreign', :'agent_secdef'),
    (7, 'service_role',  'service_role (no context)',                         :'service_role_planted', :'service_role_plant_errors', :'service_role_calls', :'service_role_control', :'service_role_super', :'service_role_foreign', :'service_role_secdef'),
    (8, 'service_ctx',   'service_role as a service (impersonated)',          :'service_ctx_planted', :'service_ctx_plant_errors', :'service_ctx_calls', :'service_ctx_control', :'service_ctx_super', :'service_ctx_foreign', :'service_ctx_secdef'),
    (9, 'svc_login',     'a trusted-service login (SET SESSION AUTHORIZATION)', :'svc_login_planted', :'svc_login_plant_errors', :'svc_login_calls', :'svc_login_control', :'svc_login_super', :'svc_login_foreign', :'svc_login_secdef'),
    (10, 'shim',         'ama_authenticator (as the request roles, then through ama.request)', :'shim_planted', :'shim_plant_errors', :'shim_calls', :'shim_control', :'shim_super', :'shim_foreign', :'shim_secdef');

-- The attack was really set up: all 30 domains and 15 tables planted, and calls made.
SELECT is(planted, '30 domains, 15 tables, pwn ok',
          format('%s: planted every domain, table and pwn() in its own pg_temp%s', who,
                 CASE WHEN plant_errors <> '' THEN ' (' || left(plant_errors, 300) || ')' ELSE '' END))
  FROM outcome ORDER BY ord;
SELECT cmp_ok(calls, '>=', CASE WHEN label = 'shim' THEN 200 ELSE 40 END,
              format('%s: called every executable ama function (or ama.request route x credential)', who))
  FROM outcome ORDER BY ord;
-- Positive control: the weak SECURITY DEFINER function (search_path = pg_catalog) IS caught running pwn() as the superuser.
SELECT cmp_ok(control, '>', 0, format('%s: positive control: a weak SECURITY DEFINER function runs the planted code as superuser', who))
  FROM outcome ORDER BY ord;
-- The findings: each lists the ama function calls (and argument variant) in which the planted code ran.
SELECT is(super, '', format('%s: the planted code never ran as a superuser', who)) FROM outcome ORDER BY ord;
SELECT is(foreign_runs, '', format('%s: the planted code never ran as any role but the attacker''s own (or one it may SET ROLE to)', who)) FROM outcome ORDER BY ord;
SELECT is(secdef, '', format('%s: no SECURITY DEFINER function (ama.request included) ran the planted code at all', who))
  FROM outcome ORDER BY ord;

SELECT * FROM finish();
ROLLBACK;
