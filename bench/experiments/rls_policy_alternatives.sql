-- EXPERIMENT ONLY (applied to a throwaway benchmark cluster, never to the project's SQL):
-- a helper for a candidate rewrite of the messages read policy ("setof" in the experiment):
-- the caller's readable threads, fetched once per query through a SECURITY DEFINER set-returning
-- function, so the check is a hashed subplan with no recursive participants RLS and no per-row
-- function call.
CREATE FUNCTION ama._bench_readable_threads() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT p.thread_id FROM ama.participants p
     WHERE p.actor_id = ama.actor_id() AND 'read' = ANY (p.capabilities)
$$;
GRANT EXECUTE ON FUNCTION ama._bench_readable_threads() TO authenticated;

-- "array": the same set as one uuid[] computed once per query; the policy wraps it in (SELECT ...)
-- so it is an initPlan and each row costs one array probe.
CREATE FUNCTION ama._bench_readable_thread_array() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT coalesce(array_agg(p.thread_id), '{}') FROM ama.participants p
     WHERE p.actor_id = ama.actor_id() AND 'read' = ANY (p.capabilities)
$$;
GRANT EXECUTE ON FUNCTION ama._bench_readable_thread_array() TO authenticated;
