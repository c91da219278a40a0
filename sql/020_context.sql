-- ============================================================================
-- ama_pg 020: request context helpers
-- The context is held in SUSET settings (ama.actor_id, ama.principal_kind,
-- ama.claims, ...) that only ama.request() and ama.impersonate() can set, for
-- the current transaction only. These helpers read them; policies call them
-- wrapped in (SELECT ...) so they run once per query, as an initPlan.
-- ============================================================================

-- The verified claims of the current request (empty object when there is none).
CREATE FUNCTION ama.claims() RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('ama.claims', true), ''), '{}')::jsonb $$;

-- The current actor: user:<uuid>, agent:<uuid>, visitor:<uuid>, service:<name>, or NULL.
CREATE FUNCTION ama.actor_id() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(pg_catalog.current_setting('ama.actor_id', true), '') $$;

-- The current user's UUID for user principals (NULL otherwise), like Supabase's auth.uid().
CREATE FUNCTION ama.uid() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.current_setting('ama.principal_kind', true) = 'user'
                THEN substr(pg_catalog.current_setting('ama.actor_id', true), 6)::uuid END
$$;

-- user, agent, visitor, service or anon. Without a context, a session is a service only when both its
-- login and its current role are in ama_service (so neither SECURITY DEFINER code nor SET ROLE makes one).
CREATE FUNCTION ama.principal_kind() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        nullif(pg_catalog.current_setting('ama.principal_kind', true), ''),
        CASE WHEN pg_catalog.pg_has_role(session_user, 'ama_service', 'USAGE')
                  AND pg_catalog.pg_has_role(current_user, 'ama_service', 'USAGE')
             THEN 'service' ELSE 'anon' END)
$$;

-- The plan of the current principal (an agent acts on its owner's plan).
CREATE FUNCTION ama.current_plan() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(pg_catalog.current_setting('ama.plan', true), '') $$;
