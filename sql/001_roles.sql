-- ============================================================================
-- ama_pg 001: roles
-- Creates the cluster roles the extension grants to, when they do not exist
-- yet. Installing into a Supabase project (which already has anon,
-- authenticated and service_role) or reinstalling therefore never fails.
-- Passwords are never set here: the run command or the DBA sets them.
-- ============================================================================

-- Creates each role only when it is missing; attributes of existing roles are left alone.
DO $roles$
DECLARE
    r pg_catalog.record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('anon',              'NOLOGIN NOINHERIT'),
        ('authenticated',     'NOLOGIN NOINHERIT'),
        ('ama_service',       'NOLOGIN'),
        ('service_role',      'NOLOGIN NOINHERIT'),
        ('ama_admin',         'NOLOGIN'),
        ('ama_authenticator', 'LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS')
    ) AS t(name, attrs)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I %s', r.name, r.attrs);
        END IF;
    END LOOP;
END
$roles$;

-- The request roles must go through RLS: refuse to install when anon or authenticated can bypass it. Supabase's
-- service_role has BYPASSRLS: internal-key requests (and anyone who may SET ROLE service_role, the shim's login
-- included) then read every ama row; warn, so the DBA removes it or accepts it (SECURITY.md).
DO $bypass$
DECLARE
    r pg_catalog.record;
BEGIN
    FOR r IN SELECT rolname, rolsuper, rolbypassrls FROM pg_catalog.pg_roles
              WHERE rolname IN ('anon', 'authenticated', 'service_role') AND (rolsuper OR rolbypassrls)
    LOOP
        IF r.rolname = 'service_role' AND NOT r.rolsuper THEN
            RAISE WARNING 'role service_role has BYPASSRLS: internal-key requests and every role that may SET ROLE service_role (ama_authenticator included) bypass row-level security on ama'
                USING HINT = 'ALTER ROLE service_role NOBYPASSRLS, or accept it as documented in SECURITY.md';
        ELSE
            RAISE EXCEPTION 'role % can bypass row-level security (superuser or BYPASSRLS); ama_pg needs it to go through RLS', r.rolname
                USING ERRCODE = '42501', HINT = pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS', r.rolname);
        END IF;
    END LOOP;
END
$bypass$;

-- The shim's login role may switch to the three request roles, and to nothing else.
GRANT anon, authenticated, service_role TO ama_authenticator;

-- Bound parameters (which may carry a raw token) never reach the server log.
ALTER ROLE ama_authenticator SET log_parameter_max_length = 0;
