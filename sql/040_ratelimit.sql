-- ============================================================================
-- ama_pg 040: rate-limit policies and routes, as data
-- The ledger itself (GCRA state) lives in shared memory (src/ratelimit.rs).
-- Policies, per-plan overrides and the route table are ordinary tables that
-- DBAs edit with SQL; a trigger tells every backend to reload them, so a change
-- applies to the next request without a restart.
-- ============================================================================

-- Rate policies: limit requests per period, plus burst, keyed by credential, user or client IP.
CREATE TABLE ama.rate_policies (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    policy_id  smallint NOT NULL UNIQUE CHECK (policy_id BETWEEN 1 AND 255),
    rate_limit integer NOT NULL CHECK (rate_limit > 0),
    period     interval NOT NULL DEFAULT '1 minute' CHECK (period > '0'::interval),
    burst      integer NOT NULL DEFAULT 0 CHECK (burst >= 0),
    key_kind   text NOT NULL CHECK (key_kind IN ('credential', 'user', 'ip', 'ip_kind')),
    description text NOT NULL DEFAULT ''
);
ALTER TABLE ama.rate_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.rate_policies FORCE ROW LEVEL SECURITY;
-- DBAs edit them directly (table grants in 090_grants.sql).
CREATE POLICY admins_manage_rate_policies ON ama.rate_policies FOR ALL TO ama_admin USING (true) WITH CHECK (true);

-- The contract's limits (section 3.3): every route has one. Failed authentication counts per (client IP, credential kind).
INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind, description) VALUES
    ('visitor_send',   1,   10, 'ip',         'public (visitor) message send'),
    ('thread_write',   2,   60, 'credential', 'create thread, agent message send, set mode, webhooks'),
    ('events_read',    3,  300, 'credential', 'poll events, event stream'),
    ('plan_change',    4,    5, 'user',       'subscription (plan) changes'),
    ('auth_failures',  5,   10, 'ip_kind',    'failed authentication attempts, per client IP and credential kind'),
    ('reads',          6,  600, 'credential', 'list threads, get a thread, list tokens, get the agent profile'),
    ('user_send',      7,  120, 'credential', 'user message send'),
    ('token_changes',  8,   10, 'user',       'issue or revoke an agent token'),
    ('profile_update', 9,   30, 'user',       'update the agent profile'),
    ('internal',      10, 6000, 'credential', 'internal endpoints, per internal key');

-- Per-plan overrides of a policy's limit and burst (for example starter gets more).
CREATE TABLE ama.rate_policy_overrides (
    policy     text NOT NULL REFERENCES ama.rate_policies (name) ON DELETE CASCADE ON UPDATE CASCADE,
    plan       text NOT NULL REFERENCES ama.plans (plan) ON DELETE CASCADE ON UPDATE CASCADE,
    rate_limit integer NOT NULL CHECK (rate_limit > 0),
    burst      integer CHECK (burst >= 0),
    PRIMARY KEY (policy, plan)
);
ALTER TABLE ama.rate_policy_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.rate_policy_overrides FORCE ROW LEVEL SECURITY;
-- DBAs edit them directly (table grants in 090_grants.sql).
CREATE POLICY admins_manage_rate_policy_overrides ON ama.rate_policy_overrides FOR ALL TO ama_admin USING (true) WITH CHECK (true);

-- HTTP routes: the SQL function that serves each, its rate policy and who may call it.
CREATE TABLE ama.routes (
    route          text PRIMARY KEY,
    handler        regprocedure NOT NULL,
    -- Every route is limited; a policy in use cannot be deleted.
    rate_policy    text NOT NULL REFERENCES ama.rate_policies (name) ON UPDATE CASCADE ON DELETE RESTRICT,
    principals     text[] NOT NULL CHECK (principals <@ ARRAY['user', 'agent', 'visitor', 'service', 'anon']),
    success_status integer NOT NULL DEFAULT 200 CHECK (success_status BETWEEN 200 AND 299),
    description    text NOT NULL DEFAULT ''
);
ALTER TABLE ama.routes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.routes FORCE ROW LEVEL SECURITY;
-- DBAs edit them directly (table grants in 090_grants.sql).
CREATE POLICY admins_manage_routes ON ama.routes FOR ALL TO ama_admin USING (true) WITH CHECK (true);

-- Every policy with its per-plan overrides, as the ledger caches them (read past RLS for any caller).
CREATE FUNCTION ama._rate_policy_rows()
RETURNS TABLE (policy_id integer, name text, key_kind text, rate_limit bigint, period_ns bigint, burst bigint,
               plan text, plan_limit bigint, plan_burst bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.policy_id::int, p.name, p.key_kind, p.rate_limit::bigint,
           (extract(epoch FROM p.period) * 1e9)::bigint, p.burst::bigint,
           o.plan, o.rate_limit::bigint, o.burst::bigint
      FROM ama.rate_policies p
      LEFT JOIN ama.rate_policy_overrides o ON o.policy = p.name
$$;

-- Policy changes reach every backend on its next request.
CREATE TRIGGER rate_policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ama.rate_policies
    FOR EACH STATEMENT EXECUTE FUNCTION ama._bump_cache_generation();

-- Override changes reach every backend on its next request.
CREATE TRIGGER rate_policy_overrides_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ama.rate_policy_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION ama._bump_cache_generation();

-- Route changes reach every backend on its next request.
CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ama.routes
    FOR EACH STATEMENT EXECUTE FUNCTION ama._bump_cache_generation();

-- Plan changes (ranks, token allowances) reach every backend on its next request.
CREATE TRIGGER plans_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ama.plans
    FOR EACH STATEMENT EXECUTE FUNCTION ama._bump_cache_generation();

-- Live buckets for DBAs: the key is a token id, user id or IP, never a secret.
CREATE VIEW ama.rate_limit_buckets AS
    SELECT policy, key, remaining, reset_seconds FROM ama._rate_buckets();

-- Allowed and denied decisions per policy since the server started.
CREATE VIEW ama.rate_limit_counters AS
    SELECT p.name AS policy, c.allowed, c.denied
      FROM ama._rate_counters() c JOIN ama.rate_policies p ON p.policy_id = c.policy_id;

-- One rate-limit decision with everything the HTTP headers need (a named type: the executor builds it from the type cache, not from pg_proc, on every call).
CREATE TYPE ama.rate_decision AS (
    allowed             boolean,
    "limit"             bigint,
    remaining           bigint,
    reset_seconds       bigint,
    retry_after_seconds bigint,
    window_seconds      bigint
);

-- Takes one decision for a key under a policy (for a plan when given); the hit counts even if the transaction rolls back.
-- Keys given over SQL live in their own namespace (stored as sql:<key>), so a service can never touch the buckets
-- ama.request uses for IPs, tokens and users, so no service can lock an IP out. Rust: ratelimit::ama_rate_limit.
CREATE FUNCTION ama.rate_limit(policy text, key text, plan text DEFAULT NULL, cost integer DEFAULT 1)
RETURNS ama.rate_decision
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'ama_rate_limit';

-- The same decision on the key exactly as given, for the extension's own SECURITY DEFINER code; executable by nobody else. Rust: ratelimit::ama_rate_limit_raw.
CREATE FUNCTION ama._rate_limit_raw(policy text, key text, plan text DEFAULT NULL, cost integer DEFAULT 1)
RETURNS ama.rate_decision
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'ama_rate_limit_raw';

-- Takes one decision and raises AM429 (with the retry time) when it is denied.
CREATE FUNCTION ama.rate_limit_enforce(policy text, key text, plan text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d pg_catalog.record;
BEGIN
    SELECT * INTO d FROM ama.rate_limit(policy, key, plan, 1);
    IF NOT d.allowed THEN
        RAISE EXCEPTION USING ERRCODE = 'AM429',
            MESSAGE = format('rate limit exceeded for %s', policy),
            DETAIL = format('retry after %s seconds', d.retry_after_seconds);
    END IF;
END
$$;

REVOKE ALL ON FUNCTION ama.rate_limit_enforce(text, text, text) FROM PUBLIC;
