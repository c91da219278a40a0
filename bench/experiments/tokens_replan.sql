-- EXPERIMENT (not part of run.sh's suites): is ama.verify_agent_token's cost the per-call
-- parse/plan of its SPI lookup? A third verifier runs the same lookup as the PL/pgSQL baseline
-- but through EXECUTE (parsed and planned on every call, like SPI_execute with a query string).
-- Run after tokens/setup.sql:  psql -v ntokens=N -f tokens/setup.sql; psql -f this file
CREATE FUNCTION bench.verify_agent_token_replan(raw_token text)
RETURNS TABLE (token_id text, agent_actor_id text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, bench
AS $$
DECLARE
    h bytea;
    r record;
BEGIN
    IF raw_token !~ '^ama_eat_[0-9a-f]{72}$' THEN
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'invalid credentials';
    END IF;
    h := bench.digest(raw_token, 'sha256');
    EXECUTE 'SELECT t.token_id::text AS id, t.agent_actor_id AS actor, t.token_hash,
           (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())) AS live,
           (t.last_used_at IS NULL OR t.last_used_at < now() - interval ''1 minute'') AS stale, u.plan
      FROM ama.agent_tokens t JOIN ama.users u ON u.user_id = t.owner_user_id
     WHERE t.token_hash = $1' INTO r USING h;
    IF r.id IS NULL OR NOT r.live THEN
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'invalid credentials';
    END IF;
    token_id := r.id;
    agent_actor_id := r.actor;
    RETURN NEXT;
END
$$;
UPDATE ama.agent_tokens SET last_used_at = now();
\pset tuples_only on
\pset format unaligned
SELECT 'round ' || r || ': µs/call  ama ' || round(bench.us_per_call('ama.verify_agent_token', 20000)::numeric, 1)
    || '  plpgsql(cached plan) ' || round(bench.us_per_call('bench.verify_agent_token_plpgsql', 20000)::numeric, 1)
    || '  plpgsql(EXECUTE, replanned) ' || round(bench.us_per_call('bench.verify_agent_token_replan', 20000)::numeric, 1)
  FROM generate_series(1, 3) r;
