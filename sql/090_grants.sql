-- ============================================================================
-- ama_pg 090: privileges
-- Runs last. Nothing is granted to PUBLIC: every function's EXECUTE is revoked
-- from PUBLIC first, then granted to the roles that need it. Table privileges
-- are the minimum the API functions need; RLS decides which rows.
-- ============================================================================

-- Nothing in ama is callable by PUBLIC unless granted below.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ama FROM PUBLIC;

-- The request roles, trusted services and DBAs may look up objects in ama.
GRANT USAGE ON SCHEMA ama TO anon, authenticated, service_role, ama_service, ama_admin, ama_authenticator;

-- Only the shim's login role may enter a request.
GRANT EXECUTE ON FUNCTION ama.request_json(text, text, text, jsonb, inet, jsonb),
    ama.request(text, text, text, jsonb, inet, jsonb) TO ama_authenticator;

-- Context helpers and the policy helpers the policies call, for every role that runs under RLS.
GRANT EXECUTE ON FUNCTION ama.claims(), ama.actor_id(), ama.uid(), ama.principal_kind(), ama.current_plan(),
    ama._my_caps(uuid), ama._is_participant(uuid), ama._can_read(uuid), ama._can_add_participant(uuid),
    ama._my_owner(), ama._may_run(uuid, text), ama._may_add_participant(uuid, text, text[]),
    ama.principal_plan(), ama.plan_at_least(text), ama.canonical_capabilities(text[]),
    ama.parse_actor_id(text, text), ama.require_plan(text)
    TO anon, authenticated, service_role, ama_service, ama_admin;

-- The HTTP API functions and their helpers, for the request roles and trusted services.
GRANT EXECUTE ON FUNCTION
    ama._ts(timestamptz), ama._body(jsonb), ama._check_fields(jsonb, text[], text[]), ama._text(jsonb, text, integer, integer),
    ama._uuid(jsonb, text), ama._int(jsonb, text, bigint, bigint), ama._number(jsonb, text), ama._thread_for(jsonb, text),
    ama._ensure_users(uuid[]), ama._seal_private_thread(uuid), ama._thread_json(uuid), ama._message_json(ama.messages),
    ama._mentions(jsonb), ama._metadata(jsonb), ama._mode(jsonb, boolean),
    ama._agent_profile_json(ama.agent_profiles), ama._token_new(text), ama.token_hash(text, text),
    ama.post_message(uuid, text, text, text[], jsonb, bigint, bigint), ama._own_message(uuid, uuid, text),
    ama.api_threads_create(jsonb), ama.api_threads_list(jsonb), ama.api_threads_get(jsonb),
    ama.api_threads_set_mode(jsonb), ama.api_messages_send(jsonb), ama.api_messages_agent_send(jsonb),
    ama.api_events_poll(jsonb),
    ama.api_tokens_create(jsonb), ama.api_tokens_list(jsonb), ama.api_tokens_revoke(jsonb),
    ama.api_agent_get(jsonb), ama.api_agent_put(jsonb), ama.api_public_send(jsonb),
    ama.api_internal_users_put(jsonb), ama.api_internal_system_message(jsonb),
    ama.issue_agent_token(text, text, timestamptz), ama.list_agent_tokens(), ama.revoke_agent_token(uuid),
    ama.set_capabilities(uuid, text, text[]), ama.grant_capabilities(uuid, text, text[]),
    ama.revoke_capabilities(uuid, text, text[]), ama.allow_agent(uuid, text)
    TO anon, authenticated, service_role, ama_service;

-- The WebSocket streams' route functions and helpers (067), for the request roles and trusted services.
GRANT EXECUTE ON FUNCTION ama.api_ws_threads(jsonb), ama.api_ws_public(jsonb), ama.api_ws_typing(jsonb),
    ama._thread_has_slug(uuid, text), ama._notify_typing(uuid, boolean)
    TO anon, authenticated, service_role, ama_service;

-- Webhooks: the route handlers and the registration helper, like the other API functions (065_webhooks.sql).
GRANT EXECUTE ON FUNCTION ama.api_webhooks_create(jsonb), ama.api_webhooks_list(jsonb), ama.api_webhooks_delete(jsonb),
    ama._webhook_subscribe(uuid, text), ama._webhook_json(ama.webhook_subscriptions)
    TO anon, authenticated, service_role, ama_service;

-- The shim's deliverer claims signed deliveries and reports their outcome; no other role may.
GRANT EXECUTE ON FUNCTION ama.webhook_claim(integer), ama.webhook_report(uuid, integer, boolean) TO ama_authenticator;

-- The shim reads the key that seals live-event notifications (its LISTEN connection opens them).
GRANT EXECUTE ON FUNCTION ama.events_key() TO ama_authenticator;

-- Trusted services create users, check tokens and keys, and take rate-limit decisions over SQL.
-- ama._provision_user runs as its caller: under RLS it creates only what a service could INSERT itself.
GRANT EXECUTE ON FUNCTION ama.upsert_user(uuid, text, text, text), ama._provision_user(uuid, text, text), ama.verify_agent_token(text),
    ama.verify_internal_key(text), ama._credential_used(text, bytea), ama.rate_limit(text, text, text, integer), ama._rate_policy_rows(),
    ama.rate_limit_enforce(text, text, text)
    TO service_role, ama_service, ama_admin;

-- DBAs manage plans, keys, tokens, limits, and read the audit log.
GRANT EXECUTE ON FUNCTION ama.set_plan(uuid, text), ama.admin_revoke_agent_token(uuid), ama.admin_list_agent_tokens(),
    ama.create_internal_key(text), ama.revoke_internal_key(text), ama.list_internal_keys(),
    ama.audit_events(timestamptz, integer), ama.impersonate(text),
    ama.rate_limit_reset(text, text), ama._rate_buckets(), ama._rate_counters(), ama.rate_limit_ledger(),
    ama.sqlstate_http_map()
    TO ama_admin;

-- DBAs may act as the request roles inside ama.impersonate() sessions.
GRANT anon, authenticated, service_role TO ama_admin;

-- DBAs edit plans, rate policies, overrides and routes directly.
GRANT SELECT, INSERT, UPDATE, DELETE ON ama.plans, ama.rate_policies, ama.rate_policy_overrides, ama.routes TO ama_admin;
GRANT SELECT ON ama.rate_limit_buckets, ama.rate_limit_counters TO ama_admin;

-- Table privileges for the roles that run under RLS.
GRANT SELECT ON ama.plans TO anon, authenticated, service_role, ama_service;
GRANT SELECT ON ama.users, ama.actors, ama.agent_profiles, ama.threads, ama.participants, ama.messages
    TO anon, authenticated, service_role, ama_service;
GRANT INSERT, UPDATE ON ama.users TO service_role, ama_service;
GRANT INSERT ON ama.actors TO authenticated, service_role, ama_service;
GRANT UPDATE (display_name) ON ama.actors TO service_role, ama_service;
GRANT INSERT, UPDATE, DELETE ON ama.agent_profiles TO authenticated;
GRANT INSERT ON ama.threads TO authenticated;
GRANT UPDATE (participation_mode, is_archived) ON ama.threads TO authenticated;
GRANT UPDATE (participation_mode) ON ama.threads TO anon;
GRANT INSERT, DELETE ON ama.participants TO authenticated;
GRANT UPDATE (capabilities, last_read_seq) ON ama.participants TO anon, authenticated, service_role, ama_service;
GRANT INSERT ON ama.messages TO anon, authenticated, service_role, ama_service;
GRANT SELECT (token_id, agent_actor_id, owner_user_id, token_prefix, agent_display_name,
              created_at, expires_at, last_used_at, revoked_at) ON ama.agent_tokens TO authenticated;
GRANT INSERT (agent_actor_id, owner_user_id, token_hash, token_prefix, agent_display_name, expires_at)
    ON ama.agent_tokens TO authenticated;
GRANT UPDATE (revoked_at) ON ama.agent_tokens TO authenticated;
GRANT SELECT, INSERT, DELETE ON ama.agent_allowances TO authenticated;
-- Managers (users and agents run as authenticated) list and remove subscriptions under RLS; secrets and the
-- outbox have no grant at all.
GRANT SELECT, DELETE ON ama.webhook_subscriptions TO authenticated;
