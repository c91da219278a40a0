-- Token-verification fixtures: one starter user with one agent and :ntokens agent tokens.
-- Raw tokens are kept in bench.tokens(i, raw) so pgbench can pick one per transaction.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA bench;
CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA bench;

INSERT INTO ama.users (user_id, email, display_name, plan)
VALUES ('00000000-0000-4000-8000-00000000b0b0', 'bench@example.com', 'Bench', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name) VALUES
    ('user:00000000-0000-4000-8000-00000000b0b0', 'user', '00000000-0000-4000-8000-00000000b0b0', 'Bench'),
    ('agent:00000000-0000-4000-8000-00000000a9e7', 'agent', '00000000-0000-4000-8000-00000000b0b0', 'Bench agent');

CREATE TABLE bench.tokens (i integer PRIMARY KEY, raw text NOT NULL);

WITH g AS MATERIALIZED (
    SELECT i, ama._token_new('agent') AS t FROM generate_series(1, :ntokens) AS i
), ins AS (
    INSERT INTO ama.agent_tokens (agent_actor_id, owner_user_id, token_hash, token_prefix)
    SELECT 'agent:00000000-0000-4000-8000-00000000a9e7', '00000000-0000-4000-8000-00000000b0b0',
           (t).token_hash, (t).token_prefix
      FROM g
)
INSERT INTO bench.tokens (i, raw) SELECT i, (t).raw_token FROM g;

-- The equivalent PL/pgSQL verifier: format check, pgcrypto digest(), the same unique index on
-- token_hash, revoked/expiry check, last_used_at written at most once a minute, 28000 on failure.
-- (Like ama.verify_agent_token it does not read the owner's plan, which only the request path
-- needs.) (It skips the CRC32 check, which pgcrypto cannot do, and
-- compares with = instead of in constant time: both favour the baseline.)
CREATE FUNCTION bench.verify_agent_token_plpgsql(raw_token text)
RETURNS TABLE (token_id text, agent_actor_id text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, bench
AS $$
DECLARE
    h bytea;
    r record;
BEGIN
    IF raw_token IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'raw_token must not be NULL';
    END IF;
    IF raw_token !~ '^ama_eat_[0-9a-f]{72}$' THEN
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'invalid credentials';
    END IF;
    h := bench.digest(raw_token, 'sha256');
    SELECT t.token_id::text AS id, t.agent_actor_id AS actor, t.token_hash,
           (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())) AS live,
           (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute') AS stale
      INTO r
      FROM ama.agent_tokens t
     WHERE t.token_hash = h;
    IF NOT FOUND OR r.token_hash <> h OR NOT r.live THEN
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'invalid credentials';
    END IF;
    IF r.stale THEN
        UPDATE ama.agent_tokens SET last_used_at = now() WHERE agent_tokens.token_id = r.id::uuid;
    END IF;
    token_id := r.id;
    agent_actor_id := r.actor;
    RETURN NEXT;
END
$$;

-- Server-side cost per call: verifies the first n tokens in one statement and returns µs per call.
CREATE FUNCTION bench.us_per_call(fn text, n integer) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    c bigint;
BEGIN
    t0 := clock_timestamp();
    EXECUTE format('SELECT count(*) FROM bench.tokens t CROSS JOIN LATERAL %s(t.raw) v WHERE t.i <= $1', fn::regproc)
       INTO c USING n;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / c;
END
$$;

VACUUM ANALYZE ama.agent_tokens, ama.users, bench.tokens;
