\set t random(1, :nthreads)
\set a :t % :nusers
BEGIN;
SELECT ama.impersonate('agent:00000000-0000-4000-a000-' || lpad(to_hex(:a::int), 12, '0'));
SET LOCAL ROLE authenticated;
SELECT * FROM ama.messages WHERE thread_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:t::int), 12, '0'))::uuid ORDER BY thread_seq DESC LIMIT 50;
COMMIT;
