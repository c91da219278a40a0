-- A message insert, bare, by the owner: the row (its thread_seq from the trigger) and nothing else.
\set r random(1, 1000000000)
INSERT INTO ama.messages (thread_id, sender_id, role, content) VALUES ('00000000-0000-4000-8000-00000000f002', 'agent:00000000-0000-4000-a000-0000000000a1', 'assistant', 'bare ' || :client_id || ' ' || :r) RETURNING message_id, thread_seq, created_at;
