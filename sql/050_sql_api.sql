-- ============================================================================
-- ama_pg 050: the SQL API: users and plans, agent tokens, internal keys,
-- capabilities, the audit log and impersonation, for users, trusted services
-- and DBAs. Functions that act for the current principal run as the caller under RLS
-- (SECURITY INVOKER). DBA functions are SECURITY DEFINER and executable by
-- ama_admin only (grants in 090_grants.sql). Raw tokens and keys are returned
-- once and never stored or logged; only SHA-256 hashes are kept.
-- ============================================================================

-- Raises AM403 naming the plan needed unless the current principal's plan ranks high enough.
CREATE FUNCTION ama.require_plan(needed text) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ama.plans WHERE plan = needed) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('unknown plan "%s"', left(needed, 64));
    END IF;
    IF NOT ama.plan_at_least(needed) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM403',
            MESSAGE = format('this needs the %s plan or higher', needed),
            HINT = 'upgrade the plan of the owning user';
    END IF;
END
$$;

-- Parses 'agent:<uuid>' or a bare UUID into a canonical actor id of the given kind; raises 22023 otherwise.
CREATE FUNCTION ama.parse_actor_id(value text, kind text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    id pg_catalog.uuid;
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = format('%s actor id must not be NULL', kind);
    END IF;
    BEGIN
        id := CASE WHEN value LIKE kind || ':%' THEN substr(value, length(kind) + 2) ELSE value END::uuid;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('invalid %s actor id: expected %s:<uuid>', kind, kind);
    END;
    RETURN kind || ':' || id::text;
END
$$;

-- Creates a user and its actor unless they exist, on the given plan or the users.plan column's default, and returns
-- the user's plan; changes nothing that exists. Runs as the caller: the request path and ama._ensure_users (as the
-- owner) provision users at first sight, and ama.upsert_user (as a service, under RLS) creates them.
CREATE FUNCTION ama._provision_user(user_id uuid, email text DEFAULT NULL, plan text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF plan IS NULL THEN
        INSERT INTO ama.users (user_id, email) VALUES (user_id, email) ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING;
    ELSE
        INSERT INTO ama.users (user_id, email, plan) VALUES (user_id, email, plan) ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING;
    END IF;
    INSERT INTO ama.actors (actor_id, kind, owner_user_id)
    VALUES ('user:' || user_id::pg_catalog.text, 'user', user_id) ON CONFLICT ON CONSTRAINT actors_pkey DO NOTHING;
    RETURN (SELECT u.plan FROM ama.users u WHERE u.user_id = _provision_user.user_id);
END
$$;

-- Creates or updates a user (trusted services); a plan change is rate limited (5/min per user) and audited by the users_plan_change trigger. The display name never defaults to the email.
CREATE FUNCTION ama.upsert_user(user_id uuid, email text DEFAULT NULL, display_name text DEFAULT NULL, plan text DEFAULT NULL)
RETURNS ama.users LANGUAGE plpgsql
AS $$
DECLARE
    result ama.users;
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'user_id must not be NULL';
    END IF;
    IF ama.principal_kind() <> 'service' THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only trusted services may create or update users';
    END IF;
    IF plan IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ama.plans p WHERE p.plan = upsert_user.plan) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('unknown plan "%s"', left(plan, 64));
    END IF;
    -- A new user starts on the given plan, so creating one is not a plan change.
    PERFORM ama._provision_user(user_id, email, plan);
    UPDATE ama.users u
       SET email = coalesce(upsert_user.email, u.email),
           display_name = coalesce(upsert_user.display_name, u.display_name),
           plan = coalesce(upsert_user.plan, u.plan),
           updated_at = now()
     WHERE u.user_id = upsert_user.user_id
    RETURNING u.* INTO result;
    IF display_name IS NOT NULL THEN
        UPDATE ama.actors a SET display_name = upsert_user.display_name
         WHERE a.actor_id = 'user:' || upsert_user.user_id::text;
    END IF;
    RETURN result;
END
$$;

-- Sets a user's plan (DBAs); limited and audited by the users_plan_change trigger like every other path.
CREATE FUNCTION ama.set_plan(user_id uuid, plan text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ama.plans p WHERE p.plan = set_plan.plan) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('unknown plan "%s"', left(coalesce(plan, 'NULL'), 64));
    END IF;
    UPDATE ama.users u SET plan = set_plan.plan WHERE u.user_id = set_plan.user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'user not found';
    END IF;
END
$$;

-- A verified agent token: its id and agent (a named type, so callers' plans read it from the type cache).
CREATE TYPE ama.verified_agent_token AS (token_id text, agent_actor_id text);

-- Verifies an external agent token for trusted services: its token id and agent, or 28000 without saying which check failed. Rust: credentials::ama_verify_agent_token.
CREATE FUNCTION ama.verify_agent_token(raw_token text)
RETURNS ama.verified_agent_token
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'ama_verify_agent_token';

-- A verified internal API key: its id and service actor.
CREATE TYPE ama.verified_internal_key AS (key_id text, actor_id text);

-- Verifies an internal API key for trusted services: its key id and service actor, or 28000. Rust: credentials::ama_verify_internal_key.
CREATE FUNCTION ama.verify_internal_key(raw_key text)
RETURNS ama.verified_internal_key
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'ama_verify_internal_key';

-- Records a verified credential's use for the Rust verifier: last_used_at at most once a minute, and each internal key use in the audit log.
-- Keyed by the credential's SHA-256, which only a holder of the raw credential can compute, so no service can touch or audit a key by its id.
CREATE FUNCTION ama._credential_used(kind text, credential_hash bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    used_key pg_catalog.uuid;
    used_name pg_catalog.text;
BEGIN
    CASE kind
    WHEN 'agent' THEN
        UPDATE ama.agent_tokens t SET last_used_at = now()
         WHERE t.token_hash = credential_hash AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute');
    WHEN 'visitor' THEN
        UPDATE ama.visitor_tokens t SET last_used_at = now()
         WHERE t.token_hash = credential_hash AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute');
    WHEN 'internal' THEN
        UPDATE ama.internal_keys k SET last_used_at = now()
         WHERE k.key_hash = credential_hash AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
        RETURNING k.key_id, k.name INTO used_key, used_name;
        IF used_key IS NOT NULL THEN
            PERFORM ama._audit_as('service:' || used_name, NULL, 'key_used', used_key::text);
        END IF;
    END CASE;
END
$$;

-- Issues an external agent token for an agent the current user owns (starter plan or higher), up to the plan's max_agent_tokens active tokens (trigger agent_tokens_cap); the raw token is returned once.
CREATE FUNCTION ama.issue_agent_token(agent_actor_id text, display_name text DEFAULT NULL, valid_until timestamptz DEFAULT NULL)
RETURNS TABLE (token_id uuid, raw_token text, token_prefix text, agent_display_name text, created_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql
AS $$
DECLARE
    me pg_catalog.uuid := ama.uid();
    agent pg_catalog.text := ama.parse_actor_id(issue_agent_token.agent_actor_id, 'agent');
    t pg_catalog.record;
    row ama.agent_tokens;
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only a signed-in user may issue agent tokens';
    END IF;
    PERFORM ama.require_plan('starter');
    IF length(display_name) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22001', MESSAGE = 'agent_display_name is longer than 200 characters';
    END IF;
    IF valid_until IS NOT NULL AND valid_until <= now() THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'expires_at must be in the future';
    END IF;
    INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name)
    VALUES (agent, 'agent', me, coalesce(display_name, ''))
    ON CONFLICT (actor_id) DO NOTHING;
    IF NOT EXISTS (SELECT 1 FROM ama.actors a WHERE a.actor_id = agent AND a.owner_user_id = me) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'the agent actor belongs to another user';
    END IF;
    SELECT * INTO t FROM ama._token_new('agent');
    INSERT INTO ama.agent_tokens AS a (agent_actor_id, owner_user_id, token_hash, token_prefix, agent_display_name, expires_at)
    VALUES (agent, me, t.token_hash, t.token_prefix, coalesce(display_name, ''), valid_until)
    RETURNING a.token_id, a.token_prefix, a.agent_display_name, a.created_at, a.expires_at
         INTO row.token_id, row.token_prefix, row.agent_display_name, row.created_at, row.expires_at;
    RETURN QUERY SELECT row.token_id, t.raw_token, row.token_prefix, row.agent_display_name, row.created_at, row.expires_at;
END
$$;

-- Lists the current user's agent tokens: metadata only, never the token or its hash.
CREATE FUNCTION ama.list_agent_tokens()
RETURNS TABLE (token_id uuid, agent_actor_id text, token_prefix text, agent_display_name text,
               created_at timestamptz, expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT t.token_id, t.agent_actor_id, t.token_prefix, t.agent_display_name,
           t.created_at, t.expires_at, t.last_used_at, t.revoked_at
      FROM ama.agent_tokens t
     WHERE t.owner_user_id = ama.uid()
     ORDER BY t.created_at DESC, t.token_id
$$;

-- Revokes one of the current user's agent tokens, for good; raises AM404 when it is not theirs or unknown.
CREATE FUNCTION ama.revoke_agent_token(token_id uuid) RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    at pg_catalog.timestamptz;
BEGIN
    IF token_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'token_id must not be NULL';
    END IF;
    UPDATE ama.agent_tokens t SET revoked_at = coalesce(t.revoked_at, now())
     WHERE t.token_id = revoke_agent_token.token_id AND t.owner_user_id = ama.uid()
    RETURNING t.revoked_at INTO at;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'token not found';
    END IF;
    RETURN at;
END
$$;

-- Revokes any agent token (DBAs).
CREATE FUNCTION ama.admin_revoke_agent_token(token_id uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE ama.agent_tokens t SET revoked_at = now() WHERE t.token_id = admin_revoke_agent_token.token_id AND t.revoked_at IS NULL;
    RETURN FOUND;
END
$$;

-- Lists every agent token's metadata (DBAs); never a hash or raw token.
CREATE FUNCTION ama.admin_list_agent_tokens()
RETURNS TABLE (token_id uuid, owner_user_id uuid, agent_actor_id text, token_prefix text,
               created_at timestamptz, expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT token_id, owner_user_id, agent_actor_id, token_prefix, created_at, expires_at, last_used_at, revoked_at
      FROM ama.agent_tokens ORDER BY created_at DESC
$$;

-- Creates an internal API key (DBAs); the raw key is returned once. Several may be active at once.
CREATE FUNCTION ama.create_internal_key(name text)
RETURNS TABLE (key_id uuid, raw_key text, key_prefix text, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t pg_catalog.record;
    k ama.internal_keys;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'name must not be NULL';
    END IF;
    IF name !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'name must be 1 to 64 letters, digits, dots, dashes or underscores';
    END IF;
    IF EXISTS (SELECT 1 FROM ama.internal_keys i WHERE i.name = create_internal_key.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM409', MESSAGE = format('an internal key named "%s" already exists', name);
    END IF;
    SELECT * INTO t FROM ama._token_new('internal');
    INSERT INTO ama.internal_keys AS i (name, key_hash, key_prefix)
    VALUES (name, t.token_hash, t.token_prefix) RETURNING i.* INTO k;
    PERFORM ama._audit_as('dba:' || session_user, NULL, 'key_created', k.key_id::text,
                          jsonb_build_object('name', name, 'key_prefix', k.key_prefix));
    RETURN QUERY SELECT k.key_id, t.raw_token, k.key_prefix, k.created_at;
END
$$;

-- Revokes an internal API key by name (DBAs); other keys stay valid.
CREATE FUNCTION ama.revoke_internal_key(name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id pg_catalog.uuid;
BEGIN
    UPDATE ama.internal_keys i SET revoked_at = now()
     WHERE i.name = revoke_internal_key.name AND i.revoked_at IS NULL RETURNING i.key_id INTO id;
    IF id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM ama._audit_as('dba:' || session_user, NULL, 'key_revoked', id::text, jsonb_build_object('name', name));
    RETURN true;
END
$$;

-- Lists internal API keys (DBAs): metadata only.
CREATE FUNCTION ama.list_internal_keys()
RETURNS TABLE (key_id uuid, name text, key_prefix text, created_at timestamptz, last_used_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT key_id, name, key_prefix, created_at, last_used_at, revoked_at FROM ama.internal_keys ORDER BY created_at
$$;

-- Replaces a participant's capabilities (needs manage in the thread; runs under RLS).
CREATE FUNCTION ama.set_capabilities(thread_id uuid, actor_id text, capabilities text[]) RETURNS text[]
LANGUAGE plpgsql
AS $$
DECLARE
    caps pg_catalog.text[] := ama.canonical_capabilities(capabilities);
    mine pg_catalog.text[];
BEGIN
    IF thread_id IS NULL OR actor_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'thread_id and actor_id must not be NULL';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ama.threads t WHERE t.thread_id = set_capabilities.thread_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    mine := ama._my_caps(thread_id);
    IF NOT 'manage' = ANY (coalesce(mine, '{}')) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'changing capabilities needs the manage capability';
    END IF;
    UPDATE ama.participants p SET capabilities = caps
     WHERE p.thread_id = set_capabilities.thread_id AND p.actor_id = set_capabilities.actor_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'participant not found';
    END IF;
    RETURN caps;
END
$$;

-- Adds capabilities to a participant (needs manage).
CREATE FUNCTION ama.grant_capabilities(thread_id uuid, actor_id text, capabilities text[]) RETURNS text[]
LANGUAGE sql
AS $$
    SELECT ama.set_capabilities(thread_id, actor_id,
        coalesce((SELECT p.capabilities FROM ama.participants p
                   WHERE p.thread_id = grant_capabilities.thread_id AND p.actor_id = grant_capabilities.actor_id), '{}')
        || ama.canonical_capabilities(capabilities))
$$;

-- Removes capabilities from a participant (needs manage).
CREATE FUNCTION ama.revoke_capabilities(thread_id uuid, actor_id text, capabilities text[]) RETURNS text[]
LANGUAGE sql
AS $$
    SELECT ama.set_capabilities(thread_id, actor_id,
        ARRAY(SELECT c FROM unnest(coalesce((SELECT p.capabilities FROM ama.participants p
                                              WHERE p.thread_id = revoke_capabilities.thread_id
                                                AND p.actor_id = revoke_capabilities.actor_id), '{}')) c
               WHERE NOT c = ANY (ama.canonical_capabilities(capabilities))))
$$;

-- Allows one of the current user's agents into a thread they take part in, so its managers may add it (with run); idempotent.
CREATE FUNCTION ama.allow_agent(thread_id uuid, agent_actor_id text) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    agent pg_catalog.text := ama.parse_actor_id(allow_agent.agent_actor_id, 'agent');
BEGIN
    IF thread_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'thread_id must not be NULL';
    END IF;
    IF ama.uid() IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only a signed-in user may allow their agents into a thread';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ama.threads t WHERE t.thread_id = allow_agent.thread_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ama.actors a WHERE a.actor_id = agent AND a.kind = 'agent' AND a.owner_user_id = ama.uid()) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only the owner of an agent may allow it into a thread';
    END IF;
    INSERT INTO ama.agent_allowances (thread_id, agent_actor_id, allowed_by)
    VALUES (allow_agent.thread_id, agent, ama.uid())
    ON CONFLICT ON CONSTRAINT agent_allowances_pkey DO NOTHING;
    RETURN true;
END
$$;

-- Reads the audit log (DBAs), newest first.
CREATE FUNCTION ama.audit_events(since timestamptz DEFAULT now() - interval '1 day', max_rows integer DEFAULT 1000)
RETURNS SETOF ama.audit_log
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM ama.audit_log WHERE at >= since ORDER BY audit_id DESC LIMIT greatest(least(max_rows, 100000), 0)
$$;

-- Acts as an actor until the end of the transaction, for testing policies (DBAs); search_path pinned, so a DBA's path cannot hijack its operators. Follow with SET LOCAL ROLE authenticated (or anon, service_role).
CREATE FUNCTION ama.impersonate(actor_id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind pg_catalog.text;
BEGIN
    IF actor_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'actor_id must not be NULL';
    END IF;
    IF actor_id ~ '^service:[A-Za-z0-9_.-]{1,64}$' THEN
        kind := 'service';
    ELSE
        SELECT a.kind INTO kind FROM ama.actors a WHERE a.actor_id = impersonate.actor_id;
        IF kind IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'actor not found';
        END IF;
    END IF;
    PERFORM pg_catalog.set_config('ama.actor_id', actor_id, true);
    PERFORM pg_catalog.set_config('ama.principal_kind', kind, true);
    PERFORM pg_catalog.set_config('ama.credential_id', '', true);
    PERFORM pg_catalog.set_config('ama.plan', coalesce((SELECT u.plan FROM ama.actors a JOIN ama.users u ON u.user_id = a.owner_user_id
                                                          WHERE a.actor_id = impersonate.actor_id), ''), true);
    -- A visitor's claims name its one thread, as its token's do (ama._thread_for checks it).
    PERFORM pg_catalog.set_config('ama.claims', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'principal_kind', kind, 'actor_id', actor_id, 'impersonated_by', session_user,
        'thread_id', (SELECT v.thread_id FROM ama.visitors v WHERE v.visitor_actor_id = impersonate.actor_id)))::text, true);
    PERFORM ama._audit_as('dba:' || session_user, NULL, 'impersonation', actor_id);
    RETURN kind;
END
$$;
