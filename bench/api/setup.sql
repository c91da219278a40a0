-- API benchmark fixtures (issue 13): one user (starter plan) and one agent in one thread of
-- :nmsgs messages, plus the events poll's arguments. Limits are raised so no request is refused.
CREATE SCHEMA IF NOT EXISTS bench;
INSERT INTO ama.users (user_id, email, plan)
VALUES ('00000000-0000-4000-8000-0000000000a1', 'bench@example.com', 'starter');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:00000000-0000-4000-8000-0000000000a1', 'user', '00000000-0000-4000-8000-0000000000a1'),
    ('agent:00000000-0000-4000-a000-0000000000a1', 'agent', '00000000-0000-4000-8000-0000000000a1');
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by, last_seq, last_message_at)
VALUES ('00000000-0000-4000-8000-00000000f001', 'private', '00000000-0000-4000-8000-0000000000a1',
        'user:00000000-0000-4000-8000-0000000000a1', :nmsgs, now());
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('00000000-0000-4000-8000-00000000f001', 'user:00000000-0000-4000-8000-0000000000a1', 'user', '{read,send,run,manage}'),
    ('00000000-0000-4000-8000-00000000f001', 'agent:00000000-0000-4000-a000-0000000000a1', 'agent', '{read,send}');
ALTER TABLE ama.messages DISABLE TRIGGER messages_assign_thread_seq, DISABLE TRIGGER messages_notify;
INSERT INTO ama.messages (thread_id, thread_seq, sender_id, role, content, created_at)
SELECT '00000000-0000-4000-8000-00000000f001', g,
       CASE WHEN g % 2 = 0 THEN 'agent:00000000-0000-4000-a000-0000000000a1' ELSE 'user:00000000-0000-4000-8000-0000000000a1' END,
       CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END,
       'message ' || g || ' of the benchmark thread: the quick brown fox jumps over the lazy dog',
       now() - make_interval(secs => :nmsgs - g)
  FROM generate_series(1, :nmsgs) g;
ALTER TABLE ama.messages ENABLE TRIGGER messages_assign_thread_seq, ENABLE TRIGGER messages_notify;
UPDATE ama.rate_policies SET rate_limit = 100000000;
VACUUM ANALYZE ama.users, ama.actors, ama.threads, ama.participants, ama.messages;
