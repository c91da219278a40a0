-- The anchor: how PostgREST shapes the same rows (one json_agg over the row set), by the owner.
SELECT coalesce(json_agg(_postgrest_t), '[]')::text FROM (
  SELECT message_id AS event_id, message_id, 'message_committed' AS event_type, thread_id, thread_seq, sender_id, role,
         content, mentions, client_message_id, metadata, base_seq, latest_seen_seq, server_seq_at_submit, created_at
    FROM ama.messages WHERE thread_id = '00000000-0000-4000-8000-00000000f001' AND thread_seq > :after
   ORDER BY thread_seq LIMIT 50) _postgrest_t;
