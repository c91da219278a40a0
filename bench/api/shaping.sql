-- Our per-row shaping of the same rows (ama._message_json), by the owner, no security.
SELECT coalesce(jsonb_agg(ama._message_json(m) ORDER BY m.thread_seq), '[]')::text FROM (
  SELECT * FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-00000000f001' AND thread_seq > :after
   ORDER BY thread_seq LIMIT 50) m;
