-- RLS fixtures: :nusers users, each with one agent; :nthreads private threads, thread i belongs to
-- user (i % nusers) and its agent, both participants; :per_thread messages per thread
-- (1M messages over 10k threads by default). Ids are deterministic so pgbench can compute them:
--   user i   = user:00000000-0000-4000-8000-<12 hex of i>
--   agent i  = agent:00000000-0000-4000-a000-<12 hex of i>
--   thread t = 00000000-0000-4000-8000-<12 hex of t>
CREATE SCHEMA IF NOT EXISTS bench;
CREATE FUNCTION bench.id(prefix text, i bigint) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT prefix || lpad(to_hex(i), 12, '0') $$;

INSERT INTO ama.users (user_id, email, plan)
SELECT bench.id('00000000-0000-4000-8000-', i)::uuid, 'u' || i || '@example.com', 'starter'
  FROM generate_series(0, :nusers - 1) i;
INSERT INTO ama.actors (actor_id, kind, owner_user_id)
SELECT bench.id('user:00000000-0000-4000-8000-', i), 'user', bench.id('00000000-0000-4000-8000-', i)::uuid
  FROM generate_series(0, :nusers - 1) i
UNION ALL
SELECT bench.id('agent:00000000-0000-4000-a000-', i), 'agent', bench.id('00000000-0000-4000-8000-', i)::uuid
  FROM generate_series(0, :nusers - 1) i;

INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by, last_seq, last_message_at)
SELECT bench.id('00000000-0000-4000-8000-', t)::uuid, 'private', bench.id('00000000-0000-4000-8000-', t % :nusers)::uuid,
       bench.id('user:00000000-0000-4000-8000-', t % :nusers), :per_thread, now()
  FROM generate_series(1, :nthreads) t;
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
SELECT bench.id('00000000-0000-4000-8000-', t)::uuid, bench.id('user:00000000-0000-4000-8000-', t % :nusers), 'user',
       '{read,send,run,manage}'::text[]
  FROM generate_series(1, :nthreads) t
UNION ALL
SELECT bench.id('00000000-0000-4000-8000-', t)::uuid, bench.id('agent:00000000-0000-4000-a000-', t % :nusers), 'agent',
       '{read,send}'::text[]
  FROM generate_series(1, :nthreads) t;

-- Bulk load: the seq and notify triggers are off, thread_seq is set directly (threads.last_seq above).
ALTER TABLE ama.messages DISABLE TRIGGER messages_assign_thread_seq;
ALTER TABLE ama.messages DISABLE TRIGGER messages_notify;
INSERT INTO ama.messages (thread_id, thread_seq, sender_id, role, content, created_at)
SELECT bench.id('00000000-0000-4000-8000-', t)::uuid, s,
       CASE WHEN s % 2 = 0 THEN bench.id('agent:00000000-0000-4000-a000-', t % :nusers)
                           ELSE bench.id('user:00000000-0000-4000-8000-', t % :nusers) END,
       CASE WHEN s % 2 = 0 THEN 'assistant' ELSE 'user' END,
       'message ' || s || ' in thread ' || t || ': the quick brown fox jumps over the lazy dog',
       now() - (:per_thread - s) * interval '1 second'
  FROM generate_series(1, :nthreads) t, generate_series(1, :per_thread) s;
ALTER TABLE ama.messages ENABLE TRIGGER messages_assign_thread_seq;
ALTER TABLE ama.messages ENABLE TRIGGER messages_notify;
VACUUM ANALYZE ama.users, ama.actors, ama.threads, ama.participants, ama.messages;
