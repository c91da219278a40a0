-- Meta-tests on the catalog: forced RLS everywhere, nothing in public, nothing executable by PUBLIC,
-- and request roles that can neither bypass RLS nor own what the policies protect.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(37);

-- 1. Row-level security: enabled AND forced on every table of schema ama.
SELECT isnt_empty(
    $$SELECT 1 FROM pg_class WHERE relnamespace = 'ama'::regnamespace AND relkind IN ('r', 'p')$$,
    'schema ama has tables');
SELECT is_empty(
    $$SELECT relname FROM pg_class
       WHERE relnamespace = 'ama'::regnamespace AND relkind IN ('r', 'p') AND NOT relrowsecurity$$,
    'every table in ama has ROW LEVEL SECURITY enabled');
SELECT is_empty(
    $$SELECT relname FROM pg_class
       WHERE relnamespace = 'ama'::regnamespace AND relkind IN ('r', 'p') AND NOT relforcerowsecurity$$,
    'every table in ama has ROW LEVEL SECURITY forced');
-- Views bypass RLS (they run as their owner): none may be readable by a request role.
SELECT is_empty(
    $$SELECT c.relname, r.rolname FROM pg_class c
        CROSS JOIN (VALUES ('anon'), ('authenticated'), ('service_role'), ('ama_authenticator'), ('ama_service')) r(rolname)
       WHERE c.relnamespace = 'ama'::regnamespace AND c.relkind IN ('v', 'm')
         AND has_table_privilege(r.rolname, c.oid, 'SELECT')$$,
    'no view in ama is readable by a request role, the authenticator or ama_service');
-- A table owner bypasses RLS unless forced; the owner must be the (superuser) extension owner.
SELECT is_empty(
    $$SELECT c.relname, c.relowner::regrole FROM pg_class c
       WHERE c.relnamespace = 'ama'::regnamespace
         AND c.relowner IN (SELECT oid FROM pg_roles WHERE rolname IN
             ('anon', 'authenticated', 'service_role', 'ama_authenticator', 'ama_service', 'ama_admin'))$$,
    'no relation in ama is owned by anon, authenticated, service_role, ama_authenticator, ama_service or ama_admin');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_proc p
       WHERE p.pronamespace = 'ama'::regnamespace
         AND p.proowner IN (SELECT oid FROM pg_roles WHERE rolname IN
             ('anon', 'authenticated', 'service_role', 'ama_authenticator', 'ama_service', 'ama_admin'))$$,
    'no function in ama is owned by a request role');
SELECT is((SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'ama'),
          (SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'ama_pg'),
          'schema ama is owned by the extension owner');

-- 2. Nothing of the extension lives in public.
SELECT isnt_empty(
    $$SELECT 1 FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
        AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ama_pg')$$,
    'the extension has member objects');
SELECT is_empty(
    $$SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
       WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
         AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ama_pg')
         AND (pg_identify_object(classid, objid, objsubid)).schema = 'public'$$,
    'no member of extension ama_pg is in schema public');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'ama_pg'), 'ama',
          'the extension itself is installed in schema ama');
-- Anything in public must belong to some extension (pgtap, installed by this suite); ama_pg adds nothing loose.
SELECT is_empty(
    $$SELECT c.oid::regclass::text FROM pg_class c
       WHERE c.relnamespace = 'public'::regnamespace
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))$$,
    'no table, view, index or sequence in public outside an extension');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'public'::regnamespace
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')$$,
    'no function in public outside an extension');
SELECT is_empty(
    $$SELECT t.oid::regtype::text FROM pg_type t
       WHERE t.typnamespace = 'public'::regnamespace AND t.typtype <> 'c' AND t.typelem = 0
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')$$,
    'no type in public outside an extension');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
         AND (p.proname LIKE 'ama%' OR p.proname LIKE 'api\_%' OR p.proname IN ('request', 'impersonate', 'token_hash', 'rate_limit'))$$,
    'no ama function name appears in public');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
         AND c.relname IN ('users', 'actors', 'threads', 'participants', 'messages', 'agent_tokens', 'internal_keys', 'audit_log', 'plans')$$,
    'no ama table name appears in public');

-- 3. No function in ama is executable by PUBLIC (a NULL proacl means PUBLIC may execute).
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'ama'::regnamespace
         AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))$$,
    'no function in ama is executable by PUBLIC (aclexplode)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'ama'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no function in ama is executable by PUBLIC (has_function_privilege)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c
       WHERE c.relnamespace = 'ama'::regnamespace
         AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)$$,
    'no table, view or sequence in ama grants anything to PUBLIC');
SELECT ok(NOT has_schema_privilege('public', 'ama', 'CREATE'), 'PUBLIC cannot create objects in schema ama');
SELECT is_empty(
    $$SELECT r.rolname FROM pg_roles r
       WHERE r.rolname IN ('anon', 'authenticated', 'service_role', 'ama_authenticator', 'ama_service')
         AND has_schema_privilege(r.rolname, 'ama', 'CREATE')$$,
    'no request role can create objects in schema ama');
-- SECURITY DEFINER functions written in SQL pin their search_path.
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'ama'::regnamespace AND p.prosecdef AND l.lanname IN ('sql', 'plpgsql')
         AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')$$,
    'every SQL/PL/pgSQL SECURITY DEFINER function in ama sets search_path = pg_catalog, pg_temp (pg_temp last)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'ama'::regnamespace AND p.prosecdef
         AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')$$,
    'every SECURITY DEFINER function in ama (C ones included) sets search_path = pg_catalog, pg_temp');
-- PL/pgSQL resolves the types of declared variables once per backend, with the search_path of the
-- first call: an invoker function first called by an attacker with a planted pg_temp type keeps it,
-- even when a SECURITY DEFINER function calls it later. So every declared type is schema-qualified
-- (the SQL keywords integer, bigint, boolean, smallint always mean pg_catalog's types).
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'ama'::regnamespace AND l.lanname = 'plpgsql'
         AND substring(p.prosrc from '\mDECLARE\M(.*?)\mBEGIN\M')
             ~* '(?n)^\s*\w+\s+(constant\s+)?(text|uuid|jsonb|json|bytea|record|inet|timestamptz|timestamp|numeric|interval|regproc|regprocedure|oid|int4|int8|int2|bool|varchar)\M'$$,
    'every variable declared in an ama PL/pgSQL function has a schema-qualified type');

-- The same three rules for every member of the extension, whatever its schema: a table, a SECURITY DEFINER
-- function or a grant added to another schema (ama_private, say) does not slip past the checks above.
SELECT is_empty(
    $$SELECT c.oid::regclass::text FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
       WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
         AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ama_pg')
         AND c.relkind IN ('r', 'p') AND NOT (c.relrowsecurity AND c.relforcerowsecurity)$$,
    'every table of extension ama_pg, in any schema, has ROW LEVEL SECURITY enabled and forced');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
       WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
         AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ama_pg')
         AND p.prosecdef AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')$$,
    'every SECURITY DEFINER function of extension ama_pg, in any schema, sets search_path = pg_catalog, pg_temp');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
       WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
         AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ama_pg')
         AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no function of extension ama_pg, in any schema, is executable by PUBLIC');

-- 4. The authenticator: not superuser, not owner, no BYPASSRLS, NOINHERIT; request roles are plain.
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'ama_authenticator'), false, 'ama_authenticator is not superuser');
SELECT is((SELECT rolbypassrls FROM pg_roles WHERE rolname = 'ama_authenticator'), false, 'ama_authenticator has no BYPASSRLS');
SELECT is((SELECT rolinherit FROM pg_roles WHERE rolname = 'ama_authenticator'), false, 'ama_authenticator is NOINHERIT');
SELECT is((SELECT rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = 'ama_authenticator'), false,
          'ama_authenticator can create neither roles nor databases');
SELECT is_empty(
    $$SELECT rolname FROM pg_roles
       WHERE rolname IN ('anon', 'authenticated', 'service_role', 'ama_authenticator', 'ama_service', 'ama_admin')
         AND (rolsuper OR rolbypassrls OR rolcreaterole)$$,
    'no ama role is superuser, has BYPASSRLS or CREATEROLE');
SELECT is_empty(
    $$SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role') AND rolinherit$$,
    'anon, authenticated and service_role are NOINHERIT');
SELECT is(
    ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
           WHERE m.member = 'ama_authenticator'::regrole ORDER BY 1),
    ARRAY['anon', 'authenticated', 'service_role'],
    'ama_authenticator is a member of exactly anon, authenticated and service_role');
SELECT is_empty(
    $$SELECT 1 FROM pg_auth_members m
       WHERE m.member IN ('anon'::regrole, 'authenticated'::regrole, 'ama_authenticator'::regrole)
         AND m.roleid IN ('ama_admin'::regrole, 'ama_service'::regrole)$$,
    'neither anon, authenticated nor the authenticator is a member of ama_admin or ama_service');
SELECT ok(NOT pg_has_role('ama_authenticator', 'ama_admin', 'MEMBER'), 'ama_authenticator cannot become ama_admin');
SELECT is_empty(
    $$SELECT c.relname, r.rolname FROM pg_class c
        CROSS JOIN (VALUES ('anon'), ('authenticated'), ('service_role'), ('ama_authenticator')) r(rolname)
       WHERE c.relnamespace = 'ama'::regnamespace AND c.relname IN ('internal_keys', 'visitor_tokens', 'visitors', 'audit_log')
         AND (has_table_privilege(r.rolname, c.oid, 'SELECT') OR has_table_privilege(r.rolname, c.oid, 'INSERT')
              OR has_table_privilege(r.rolname, c.oid, 'UPDATE') OR has_table_privilege(r.rolname, c.oid, 'DELETE'))$$,
    'request roles and the authenticator have no privilege on internal_keys, visitor_tokens, visitors, audit_log');
SELECT ok(NOT has_column_privilege('authenticated', 'ama.agent_tokens', 'token_hash', 'SELECT'),
          'authenticated has no SELECT on agent_tokens.token_hash');

SELECT * FROM finish();
ROLLBACK;
