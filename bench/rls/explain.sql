-- Plan shape of the benchmark query, under RLS as a participant agent and as the owner.
\pset pager off
\echo === as agent:...-a000-000000000007 under RLS (SET LOCAL ROLE authenticated), thread 7 ===
BEGIN;
SELECT ama.impersonate('agent:00000000-0000-4000-a000-000000000007') \g /dev/null
SET LOCAL ROLE authenticated;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000007'::uuid ORDER BY thread_seq DESC LIMIT 50;
SELECT count(*) AS rows_visible_to_agent FROM (SELECT * FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000007'::uuid ORDER BY thread_seq DESC LIMIT 50) s;
SELECT count(*) AS rows_visible_in_someone_elses_thread FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000008'::uuid;
COMMIT;
\echo === as the owner (superuser, RLS bypassed) ===
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000007'::uuid ORDER BY thread_seq DESC LIMIT 50;
