-- The 50 rows of the poll, bare, by the owner (no JSON, no security).
SELECT * FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-00000000f001' AND thread_seq > :after ORDER BY thread_seq LIMIT 50;
