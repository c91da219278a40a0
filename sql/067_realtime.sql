-- ============================================================================
-- ama_pg 067: the WebSocket streams' database side
-- The shim's WebSocket streams (GET /api/v1/chat/ws/...) are authorised here,
-- like every other route: the user stream's thread set (re-checked by each
-- socket at least every --sse-recheck-secs), the public stream's one thread,
-- and typing notices. A typing notice is ephemeral: it is never stored, only
-- announced (sealed, like message notices) on channel ama_events, so it crosses
-- shims through the database and reaches only sockets whose own re-checked
-- thread set holds that thread.
-- ============================================================================

-- The WebSocket streams' limits: thread-set re-checks and typing notices, per credential.
INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind, description) VALUES
    ('stream_check', 21, 300, 'credential', 'WebSocket stream opens and thread-set re-checks'),
    ('typing',       22, 300, 'credential', 'WebSocket typing notices');

-- Whether the public thread a visitor reads belongs to the public agent with this slug (the caller must take part in the
-- thread; visitors cannot read agent profiles themselves, and learn nothing of other threads).
CREATE FUNCTION ama._thread_has_slug(thread uuid, slug text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF thread IS NULL OR slug IS NULL OR NOT ama._is_participant(thread) THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT 1 FROM ama.visitors v JOIN ama.agent_profiles ap ON ap.agent_actor_id = v.agent_actor_id
                    WHERE v.thread_id = thread AND ap.custom_slug = slug);
END
$$;

-- Announces an ephemeral typing notice of the current actor in a thread (sealed, on ama_events). It checks the send
-- capability itself, whoever calls it: a user or agent with send only.
CREATE FUNCTION ama._notify_typing(thread uuid, started boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(ama.principal_kind(), '') NOT IN ('user', 'agent') OR thread IS NULL OR started IS NULL
       OR NOT 'send' = ANY (coalesce(ama._my_caps(thread), '{}')) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'this needs the send capability in the thread';
    END IF;
    PERFORM pg_catalog.pg_notify('ama_events', ama._typing_payload(thread, ama.actor_id(), started));
END
$$;

-- GET /api/v1/chat/ws/user/threads (open and re-check): the threads the caller may read (at most 1000, most recent
-- activity first), each with its last seq, so a socket starts live and knows what it may carry.
CREATE FUNCTION ama.api_ws_threads(args jsonb) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.jsonb_build_object('threads', coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'thread_id', s.thread_id, 'last_seq', s.last_seq, 'participation_mode', s.participation_mode,
               'is_archived', s.is_archived) ORDER BY s.at DESC, s.thread_id), '[]'))
      FROM (SELECT t.thread_id, t.last_seq, t.participation_mode, t.is_archived,
                   coalesce(t.last_message_at, t.created_at) AS at
              FROM ama.threads t
              JOIN ama.participants p ON p.thread_id = t.thread_id AND p.actor_id = ama.actor_id()
             WHERE 'read' = ANY (p.capabilities)
             ORDER BY 5 DESC, 1
             LIMIT 1000) s
$$;

-- GET /api/v1/chat/ws/public/{custom_slug}/threads/{thread_id} (open and re-check): the visitor's own thread, which
-- must belong to the public agent of that slug (AM404 otherwise), with its last seq.
CREATE FUNCTION ama.api_ws_public(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    id pg_catalog.uuid := ama._thread_for(args, 'read');
    t pg_catalog.record;
BEGIN
    IF NOT ama._thread_has_slug(id, args -> 'path' ->> 'custom_slug') THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    SELECT th.thread_id, th.last_seq, th.participation_mode, th.is_archived INTO t
      FROM ama.threads th WHERE th.thread_id = id;
    RETURN pg_catalog.jsonb_build_object('threads', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'thread_id', t.thread_id, 'last_seq', t.last_seq, 'participation_mode', t.participation_mode,
        'is_archived', t.is_archived)));
END
$$;

-- A WebSocket typing message: {"status": "started"|"stopped"} in thread {thread_id} (needs send); announced, not stored.
CREATE FUNCTION ama.api_ws_typing(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid;
    st pg_catalog.text;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['status'], '{}');
    st := ama._text(body, 'status', 16);
    IF st NOT IN ('started', 'stopped') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'status: expected started or stopped';
    END IF;
    id := ama._thread_for(args, 'send');
    PERFORM ama._notify_typing(id, st = 'started');
    RETURN pg_catalog.jsonb_build_object('thread_id', id, 'status', st);
END
$$;

-- The WebSocket streams' routes (no HTTP route of their own: the shim calls them for its sockets).
INSERT INTO ama.routes (route, handler, rate_policy, principals, success_status, description) VALUES
    ('ws.threads', 'ama.api_ws_threads(jsonb)', 'stream_check', '{user,agent}', 200, 'GET /api/v1/chat/ws/user/threads (thread set, re-checked)'),
    ('ws.typing',  'ama.api_ws_typing(jsonb)',  'typing',       '{user,agent}', 200, 'GET /api/v1/chat/ws/user/threads (typing message)'),
    ('ws.public',  'ama.api_ws_public(jsonb)',  'stream_check', '{visitor}',    200, 'GET /api/v1/chat/ws/public/{custom_slug}/threads/{thread_id} (re-checked)');
