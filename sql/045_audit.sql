-- ============================================================================
-- ama_pg 045: the audit trail, written by triggers on the data itself
-- Security events are recorded by the change that makes them, whatever path
-- made it (an API route, the SQL API, a plain UPDATE by a service), so no path
-- skips its audit row and no caller can append a row of its own choosing:
-- trigger functions cannot be called directly, and ama._audit and
-- ama._audit_as are executable by nobody but the extension's own code.
-- ============================================================================

-- Who did it: the request's actor, else the service login or the DBA's login.
CREATE FUNCTION ama._audit_actor() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(ama.actor_id(),
                    CASE WHEN pg_catalog.pg_has_role(session_user, 'ama_service', 'USAGE')
                         THEN 'service:' ELSE 'dba:' END || session_user)
$$;

-- Appends a security event: the one writer of ama.audit_log (rows are never updated or deleted).
-- For the extension's own code only: ama._audit below, the DBA functions that name the DBA, and
-- ama.request's Rust half, which names the request's actor and client before any context is set.
CREATE FUNCTION ama._audit_as(actor_id text, client_ip inet, event text, subject text DEFAULT NULL,
                              detail jsonb DEFAULT '{}')
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO ama.audit_log (event, actor_id, subject, client_ip, detail)
    VALUES (event, actor_id, subject, client_ip, coalesce(detail, '{}'))
$$;

-- Appends a security event in the current actor's name, from the current client; for the extension's own code only.
CREATE FUNCTION ama._audit(event text, subject text DEFAULT NULL, detail jsonb DEFAULT '{}')
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ama._audit_as(ama._audit_actor(),
                         nullif(pg_catalog.current_setting('ama.client_ip', true), '')::pg_catalog.inet,
                         event, subject, detail)
$$;

-- Holds a user to their plan's max_agent_tokens active tokens, whichever path they insert one by (the API or a plain INSERT under RLS).
CREATE FUNCTION ama._agent_token_cap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    plan pg_catalog.text;
    cap pg_catalog.int4;
BEGIN
    -- Users issue tokens for themselves; DBAs and bulk loads without a user context are not capped.
    IF ama.principal_kind() IS DISTINCT FROM 'user' THEN
        RETURN NEW;
    END IF;
    -- One issuer at a time per user, so concurrent inserts cannot pass the cap together.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ama.agent_tokens:' || NEW.owner_user_id::text));
    SELECT u.plan, p.max_agent_tokens INTO plan, cap
      FROM ama.users u JOIN ama.plans p ON p.plan = u.plan WHERE u.user_id = NEW.owner_user_id;
    IF (SELECT pg_catalog.count(*) FROM ama.agent_tokens x
         WHERE x.owner_user_id = NEW.owner_user_id AND x.revoked_at IS NULL
           AND (x.expires_at IS NULL OR x.expires_at > pg_catalog.now())) >= coalesce(cap, 0) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM403',
            MESSAGE = pg_catalog.format('the %s plan allows at most %s active agent tokens', coalesce(plan, 'current'), coalesce(cap, 0)),
            HINT = 'revoke a token you no longer use, or upgrade the plan';
    END IF;
    RETURN NEW;
END
$$;

-- Every new agent token is counted against the owner's plan.
CREATE TRIGGER agent_tokens_cap BEFORE INSERT ON ama.agent_tokens
    FOR EACH ROW EXECUTE FUNCTION ama._agent_token_cap();

-- Records an issued agent token (never the hash).
CREATE FUNCTION ama._audit_token_issued() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('token_issued', NEW.token_id::text,
                       pg_catalog.jsonb_build_object('agent_actor_id', NEW.agent_actor_id, 'token_prefix', NEW.token_prefix));
    RETURN NULL;
END
$$;

-- Every new agent token is audited.
CREATE TRIGGER agent_tokens_audit_issue AFTER INSERT ON ama.agent_tokens
    FOR EACH ROW EXECUTE FUNCTION ama._audit_token_issued();

-- Records a revoked agent token.
CREATE FUNCTION ama._audit_token_revoked() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('token_revoked', NEW.token_id::text);
    RETURN NULL;
END
$$;

-- Every revocation is audited once (revoking again changes nothing).
CREATE TRIGGER agent_tokens_audit_revoke AFTER UPDATE OF revoked_at ON ama.agent_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION ama._audit_token_revoked();

-- Records a change of a participant's capabilities.
CREATE FUNCTION ama._audit_capabilities() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('capabilities_changed', NEW.thread_id::text,
                       pg_catalog.jsonb_build_object('participant', NEW.actor_id, 'from', OLD.capabilities,
                                                     'capabilities', NEW.capabilities));
    RETURN NULL;
END
$$;

-- Every capability change is audited.
CREATE TRIGGER participants_audit_capabilities AFTER UPDATE OF capabilities ON ama.participants
    FOR EACH ROW WHEN (OLD.capabilities IS DISTINCT FROM NEW.capabilities)
    EXECUTE FUNCTION ama._audit_capabilities();

-- Limits and records a plan change, whoever makes it: 5 a minute per user, then AM429 (a service's plain UPDATE included).
CREATE FUNCTION ama._plan_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d pg_catalog.record;
BEGIN
    -- The raw key (the one ama.request uses for the user): no service can exhaust it over SQL.
    SELECT * INTO d FROM ama._rate_limit_raw('plan_change', 'user:' || NEW.user_id::text, NULL, 1);
    IF NOT d.allowed THEN
        RAISE EXCEPTION USING ERRCODE = 'AM429', MESSAGE = 'rate limit exceeded for plan_change',
            DETAIL = pg_catalog.format('retry after %s seconds', d.retry_after_seconds);
    END IF;
    PERFORM ama._audit('plan_changed', 'user:' || NEW.user_id::text,
                       pg_catalog.jsonb_build_object('from', OLD.plan, 'to', NEW.plan));
    NEW.updated_at := pg_catalog.now();
    RETURN NEW;
END
$$;

-- Every plan change goes through the limit and the audit.
CREATE TRIGGER users_plan_change BEFORE UPDATE OF plan ON ama.users
    FOR EACH ROW WHEN (OLD.plan IS DISTINCT FROM NEW.plan)
    EXECUTE FUNCTION ama._plan_change();

-- Records an owner allowing their agent into a thread.
CREATE FUNCTION ama._audit_agent_allowed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('agent_allowed', NEW.thread_id::text, pg_catalog.jsonb_build_object('agent_actor_id', NEW.agent_actor_id));
    RETURN NULL;
END
$$;

-- Every allowance is audited.
CREATE TRIGGER agent_allowances_audit AFTER INSERT ON ama.agent_allowances
    FOR EACH ROW EXECUTE FUNCTION ama._audit_agent_allowed();
