-- Sanity (not timed): the agent sees 50 messages of its thread 7 and none of thread 8 (another agent's).
BEGIN;
SELECT ama.impersonate('agent:00000000-0000-4000-a000-000000000007') \g /dev/null
SET LOCAL ROLE authenticated;
SELECT (SELECT count(*) FROM (SELECT 1 FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000007'::uuid
                               ORDER BY thread_seq DESC LIMIT 50) s)
       || ' ' || (SELECT count(*) FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-000000000008'::uuid);
COMMIT;
