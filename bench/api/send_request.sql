-- An agent message through ama.request_json('messages.agent_send', ...) as the shim's login.
\set r random(1, 1000000000)
SELECT ama.request_json('messages.agent_send', 'agent', :'token', NULL, '127.0.0.1', jsonb_build_object('path', jsonb_build_object('thread_id', '00000000-0000-4000-8000-00000000f003'), 'query', '{}'::jsonb, 'body', jsonb_build_object('content', 'agent ' || :client_id || ' ' || :r)))::text;
