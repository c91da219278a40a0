-- The events.poll route's own SQL, same JSON, run bare by the owner: the context set directly,
-- no ama.request (no authentication, rate limit, role switch or subtransaction).
BEGIN;
SELECT set_config('ama.principal_kind', 'user', true), set_config('ama.actor_id', 'user:00000000-0000-4000-8000-0000000000a1', true), set_config('ama.plan', 'starter', true);
SELECT ama.api_events_poll(jsonb_build_object('path', jsonb_build_object('thread_id', '00000000-0000-4000-8000-00000000f001'), 'query', jsonb_build_object('after_seq', :after::text, 'limit', '50'), 'body', null))::text;
COMMIT;
