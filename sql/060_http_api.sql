-- ============================================================================
-- ama_pg 060: the HTTP API (contract section 5), one SQL function per route
-- Each api_* function takes the request's args {"path", "query", "body"} as
-- jsonb and returns the response body as jsonb. ama.request() calls it as the
-- request role, so it runs under RLS: a bug here still cannot reach a thread the
-- caller does not take part in. Bad input raises 22023 with the field's name
-- (400), an unknown thread AM404 (404), a missing capability 42501 (403).
-- Invoker functions carry no SET clause (it would cost a settings save and
-- restore per call and stop inlining): every name is schema-qualified and
-- ama.request() pins search_path. SECURITY DEFINER functions pin their own.
-- ============================================================================

-- One message_committed event as the API shows it: json_agg of rows of this type names every key as the contract does.
CREATE TYPE ama.message_event AS (
    event_id uuid, message_id uuid, event_type text, thread_id uuid, thread_seq bigint, sender_id text, role text,
    content text, mentions text[], client_message_id text, metadata jsonb, base_seq bigint, latest_seen_seq bigint,
    server_seq_at_submit bigint, created_at text);

-- A field as a UUID is ama._uuid(value jsonb, field text), as a bounded integer ama._int(value jsonb, field text, min
-- bigint, max bigint) (Rust: route_call, logic in ama_core::input; 22023 with the field's name on bad input).

-- A timestamp as the API shows it, RFC 3339 in UTC with microseconds, is ama._ts(timestamptz) (Rust:
-- route_call::ts, the same text to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') gave).

-- The request body as a JSON object; raises 22023 for any other JSON type.
CREATE FUNCTION ama._body(args jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF args IS NULL OR jsonb_typeof(args -> 'body') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'body: expected a JSON object';
    END IF;
    RETURN args -> 'body';
END
$$;

-- Rejects unknown fields and missing required ones, naming the field.
CREATE FUNCTION ama._check_fields(body jsonb, required text[], optional text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    k pg_catalog.text;
BEGIN
    FOR k IN SELECT jsonb_object_keys(body) LOOP
        IF NOT (k = ANY (required) OR k = ANY (optional)) THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: unknown field', left(k, 64));
        END IF;
    END LOOP;
    FOREACH k IN ARRAY required LOOP
        IF NOT body ? k OR jsonb_typeof(body -> k) = 'null' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: required field is missing', k);
        END IF;
    END LOOP;
END
$$;

-- A string field (NULL when absent), checked for type and length.
CREATE FUNCTION ama._text(body jsonb, field text, max_chars integer, min_chars integer DEFAULT 0) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v pg_catalog.text;
BEGIN
    IF body IS NULL OR NOT body ? field OR jsonb_typeof(body -> field) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(body -> field) <> 'string' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: expected a string', field);
    END IF;
    v := body ->> field;
    IF char_length(v) > max_chars THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: at most %s characters', field, max_chars);
    END IF;
    IF char_length(v) < min_chars THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: at least %s characters', field, min_chars);
    END IF;
    RETURN v;
END
$$;



-- A body field that must be a JSON number when present (query strings go through ama._int directly).
CREATE FUNCTION ama._number(body jsonb, field text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF body ? field AND jsonb_typeof(body -> field) NOT IN ('number', 'null') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s: expected an integer', field);
    END IF;
    RETURN body -> field;
END
$$;

-- The path's thread id, visible to the caller (AM404 otherwise), with the caller's capabilities. A visitor token
-- reaches only the one thread it was issued for, whatever the participants table says.
CREATE FUNCTION ama._thread_for(args jsonb, needed text) RETURNS uuid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    id pg_catalog.uuid := ama._uuid(args -> 'path' -> 'thread_id', 'thread_id');
    caps pg_catalog.text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ama.threads t WHERE t.thread_id = id)
       OR (ama.principal_kind() = 'visitor' AND id IS DISTINCT FROM (ama.claims() ->> 'thread_id')::uuid) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    caps := ama._my_caps(id);
    IF needed IS NOT NULL AND ama.principal_kind() <> 'service' AND NOT needed = ANY (coalesce(caps, '{}')) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('this needs the %s capability in the thread', needed);
    END IF;
    RETURN id;
END
$$;

-- Fills a participant's kind and display name from its actor row, whatever the insert said, so no manager can show
-- another participant under a name of its choosing.
CREATE FUNCTION ama._fill_participant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT a.kind, a.display_name
      INTO NEW.participant_kind, NEW.display_name
      FROM ama.actors a WHERE a.actor_id = NEW.actor_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('participant %s not found', left(NEW.actor_id, 80));
    END IF;
    RETURN NEW;
END
$$;

-- New participant rows take their kind and name from the actor.
CREATE TRIGGER participants_fill BEFORE INSERT ON ama.participants
    FOR EACH ROW EXECUTE FUNCTION ama._fill_participant();

-- Makes sure the named users exist (a user not seen yet is provisioned on the basic plan, as at first sign-in), so creating
-- a thread answers the same whether a user id existed or not, and ids cannot be probed. Users and agents only.
CREATE FUNCTION ama._ensure_users(ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ama.principal_kind() NOT IN ('user', 'agent') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only users and agents create threads';
    END IF;
    IF pg_catalog.cardinality(ids) > 50 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'target_user_ids: at most 50 users';
    END IF;
    PERFORM ama._provision_user(i) FROM (SELECT DISTINCT i FROM pg_catalog.unnest(ids) i) AS u;
END
$$;

-- Sets a new private thread's dedupe key from its real participants; only its creator, once, when it takes part; callers never choose the key.
CREATE FUNCTION ama._seal_private_thread(thread uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key pg_catalog.text;
BEGIN
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
               pg_catalog.array_to_string(ARRAY(SELECT p.actor_id FROM ama.participants p
                                                 WHERE p.thread_id = thread ORDER BY p.actor_id), ','), 'UTF8')), 'hex')
      INTO key;
    -- Only the creator, once, and only when the creator takes part: the key then always names the creator's own set.
    UPDATE ama.threads t SET participant_key = key
     WHERE t.thread_id = thread AND t.thread_type = 'private' AND t.participant_key IS NULL
       AND t.created_by = ama.actor_id()
       AND EXISTS (SELECT 1 FROM ama.participants p WHERE p.thread_id = t.thread_id AND p.actor_id = t.created_by);
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    RETURN key;
END
$$;

-- One thread as the API shows it, with participants and the caller's unread count. Without read, the caller sees that it
-- takes part, never what was said: no preview, time or count of messages.
CREATE FUNCTION ama._thread_json(id uuid) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'thread_id', t.thread_id,
        'thread_type', t.thread_type,
        'participation_mode', t.participation_mode,
        'is_archived', t.is_archived,
        'owner_user_id', t.owner_user_id,
        'created_at', ama._ts(t.created_at),
        'last_seq', CASE WHEN r.can_read THEN t.last_seq ELSE 0 END,
        'last_message_at', CASE WHEN r.can_read THEN ama._ts(t.last_message_at) END,
        'last_message_preview', CASE WHEN r.can_read THEN t.last_message_preview END,
        'unread_count', CASE WHEN r.can_read THEN greatest(t.last_seq - coalesce(me.last_read_seq, 0), 0) ELSE 0 END,
        'participants', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'sender_id', p.actor_id,
                       'participant_kind', p.participant_kind,
                       'display_name', p.display_name,
                       'capabilities', to_jsonb(p.capabilities)) ORDER BY p.joined_at, p.actor_id)
              FROM ama.participants p WHERE p.thread_id = t.thread_id), '[]'))
      FROM ama.threads t
      LEFT JOIN ama.participants me ON me.thread_id = t.thread_id AND me.actor_id = ama.actor_id()
      CROSS JOIN LATERAL (SELECT coalesce('read' = ANY (me.capabilities), false) AS can_read) r
     WHERE t.thread_id = id
$$;

-- One message as the API shows it (also the shape of a message_committed event).
CREATE FUNCTION ama._message_json(m ama.messages) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'event_id', m.message_id,
        'message_id', m.message_id,
        'event_type', 'message_committed',
        'thread_id', m.thread_id,
        'thread_seq', m.thread_seq,
        'sender_id', m.sender_id,
        'role', m.role,
        'content', m.content,
        'mentions', to_jsonb(m.mentions),
        'client_message_id', m.client_message_id,
        'metadata', m.metadata,
        'base_seq', m.base_seq,
        'latest_seen_seq', m.latest_seen_seq,
        'server_seq_at_submit', m.server_seq_at_submit,
        'created_at', ama._ts(m.created_at))
$$;

-- One of the current actor's own messages, by id or by idempotency key (NULL when there is none).
CREATE FUNCTION ama._own_message(thread uuid, mid uuid, cmid text) RETURNS ama.messages
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT x FROM ama.messages x
         WHERE x.thread_id = thread AND x.sender_id = ama.actor_id()
           AND (x.message_id = mid OR (mid IS NULL AND x.client_message_id = cmid)));
END
$$;

-- Posts a message as the current actor with idempotency per (thread, sender); the core of every send route.
CREATE FUNCTION ama.post_message(thread_id uuid, content text, client_message_id text DEFAULT NULL,
                                 mentions text[] DEFAULT '{}', metadata jsonb DEFAULT '{}',
                                 base_seq bigint DEFAULT NULL, latest_seen_seq bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    me pg_catalog.text := ama.actor_id();
    kind pg_catalog.text := ama.principal_kind();
    m ama.messages;
    mid pg_catalog.uuid;
    replay pg_catalog.bool := false;
BEGIN
    IF content IS NULL OR char_length(content) < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'content: must be 1 to 5000 characters';
    END IF;
    IF char_length(content) > 5000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'content: at most 5000 characters';
    END IF;
    IF me IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'sending needs an identity';
    END IF;
    -- A thread the caller does not take part in is not found, as one that does not exist, so ids cannot be probed.
    IF kind <> 'service' AND NOT EXISTS (SELECT 1 FROM ama.threads t WHERE t.thread_id = post_message.thread_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(coalesce(mentions, '{}')) x
                WHERE NOT EXISTS (SELECT 1 FROM ama.participants p
                                   WHERE p.thread_id = post_message.thread_id AND p.actor_id = x)) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'mentions: every mention must name a participant of the thread';
    END IF;
    -- The sender's own messages are read through ama._own_message(): the messages policy shows
    -- rows to readers only, and a sender may hold send without read.
    IF client_message_id IS NOT NULL THEN
        m := ama._own_message(thread_id, NULL, client_message_id);
        replay := m.message_id IS NOT NULL;
    END IF;
    IF NOT replay THEN
        BEGIN
            mid := gen_random_uuid();
            INSERT INTO ama.messages (message_id, thread_id, sender_id, role, content, mentions, client_message_id,
                                      metadata, base_seq, latest_seen_seq)
            VALUES (mid, thread_id, me,
                    CASE kind WHEN 'agent' THEN 'assistant' WHEN 'service' THEN 'system' ELSE 'user' END,
                    content, coalesce(mentions, '{}'), client_message_id, coalesce(metadata, '{}'),
                    base_seq, latest_seen_seq);
            m := ama._own_message(thread_id, mid, NULL);
        EXCEPTION WHEN unique_violation THEN
            -- A concurrent replay won the race: return its message.
            m := ama._own_message(thread_id, NULL, client_message_id);
            replay := true;
        END;
    END IF;
    IF replay AND m.content IS DISTINCT FROM content THEN
        RAISE EXCEPTION USING ERRCODE = 'AM409',
            MESSAGE = 'client_message_id: already used for a message with different content';
    END IF;
    RETURN jsonb_build_object(
        'accepted', true,
        'message_id', m.message_id,
        'thread_id', m.thread_id,
        'thread_seq', m.thread_seq,
        'server_seq_at_submit', m.server_seq_at_submit,
        'stale', m.base_seq IS NOT NULL AND m.server_seq_at_submit > m.base_seq,
        'replayed', replay,
        'created_at', ama._ts(m.created_at));
END
$$;

-- Parses the optional mentions array (actor ids as strings).
CREATE FUNCTION ama._mentions(body jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF NOT body ? 'mentions' OR jsonb_typeof(body -> 'mentions') = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(body -> 'mentions') <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(body -> 'mentions') e WHERE jsonb_typeof(e) <> 'string')
       OR jsonb_array_length(body -> 'mentions') > 100 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'mentions: expected an array of at most 100 actor ids';
    END IF;
    RETURN ARRAY(SELECT jsonb_array_elements_text(body -> 'mentions'));
END
$$;

-- The optional metadata object.
CREATE FUNCTION ama._metadata(body jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF NOT body ? 'metadata' OR jsonb_typeof(body -> 'metadata') = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(body -> 'metadata') <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'metadata: expected a JSON object';
    END IF;
    IF length((body -> 'metadata')::text) > 16384 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'metadata: at most 16384 bytes';
    END IF;
    RETURN body -> 'metadata';
END
$$;

-- The optional participation_mode, checked against the two modes.
CREATE FUNCTION ama._mode(body jsonb, required boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v pg_catalog.text := ama._text(body, 'participation_mode', 32);
BEGIN
    IF v IS NULL AND required THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'participation_mode: required field is missing';
    END IF;
    IF v IS NOT NULL AND v NOT IN ('open', 'invocation_only') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'participation_mode: must be open or invocation_only';
    END IF;
    RETURN v;
END
$$;

-- POST /api/v1/chat/threads: creates a private thread, or returns the one with the same participant set.
CREATE FUNCTION ama.api_threads_create(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    me pg_catalog.text := ama.actor_id();
    targets pg_catalog.uuid[];
    members pg_catalog.text[];
    key pg_catalog.text;
    id pg_catalog.uuid;
    created pg_catalog.bool := false;
    mode pg_catalog.text;
    initial pg_catalog.text;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['target_user_ids'], ARRAY['participation_mode', 'initial_message']);
    IF jsonb_typeof(body -> 'target_user_ids') <> 'array' OR jsonb_array_length(body -> 'target_user_ids') NOT BETWEEN 1 AND 50 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'target_user_ids: expected an array of 1 to 50 user UUIDs';
    END IF;
    SELECT array_agg(DISTINCT ama._uuid(e, 'target_user_ids')) INTO targets FROM jsonb_array_elements(body -> 'target_user_ids') e;
    mode := coalesce(ama._mode(body, false), 'open');
    initial := ama._text(body, 'initial_message', 5000, 1);
    PERFORM ama._ensure_users(targets);
    members := ARRAY(SELECT DISTINCT x FROM unnest(ARRAY[me] || ARRAY(SELECT 'user:' || t::text FROM unnest(targets) t)) x ORDER BY x);
    IF cardinality(members) < 2 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'target_user_ids: name at least one user other than yourself';
    END IF;
    key := encode(sha256(convert_to(array_to_string(members, ','), 'UTF8')), 'hex');
    SELECT t.thread_id INTO id FROM ama.threads t WHERE t.thread_type = 'private' AND t.participant_key = key;
    IF id IS NULL THEN
        -- The id is chosen here and the INSERT is plain: RETURNING and ON CONFLICT would make INSERT check the
        -- SELECT policies, which cannot see a row not stored yet, so the creation would fail under RLS.
        id := gen_random_uuid();
        BEGIN
            INSERT INTO ama.threads (thread_id, thread_type, participation_mode, owner_user_id, created_by)
            VALUES (id, 'private', mode, ama._my_owner(), me);
            INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities)
            SELECT id, x, split_part(x, ':', 1),
                   CASE WHEN x = me THEN ARRAY['read', 'send', 'manage'] ELSE ARRAY['read', 'send'] END
              FROM unnest(members) x;
            PERFORM ama._seal_private_thread(id);
        EXCEPTION WHEN unique_violation THEN
            id := NULL;
        END;
        IF id IS NULL THEN
            -- A concurrent request created the same thread first.
            SELECT t.thread_id INTO id FROM ama.threads t WHERE t.thread_type = 'private' AND t.participant_key = key;
        ELSE
            created := true;
            IF initial IS NOT NULL THEN
                PERFORM ama.post_message(id, initial);
            END IF;
        END IF;
    END IF;
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    RETURN ama._thread_json(id) || jsonb_build_object('created', created);
END
$$;

-- GET /api/v1/chat/threads: the caller's threads, newest activity first, with cursor pagination.
CREATE FUNCTION ama.api_threads_list(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    q pg_catalog.jsonb := coalesce(args -> 'query', '{}');
    lim pg_catalog.int4 := coalesce(ama._int(q -> 'limit', 'limit', 1, 200), 50);
    cur pg_catalog.text := q ->> 'cursor';
    cur_at pg_catalog.timestamptz;
    cur_id pg_catalog.uuid;
    rows pg_catalog.jsonb;
    last pg_catalog.record;
    n pg_catalog.int4;
BEGIN
    IF cur IS NOT NULL THEN
        BEGIN
            cur_at := to_timestamp(split_part(cur, '_', 1)::bigint / 1e6);
            cur_id := split_part(cur, '_', 2)::uuid;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'cursor: malformed';
        END;
    END IF;
    WITH page AS (
        SELECT t.thread_id, coalesce(t.last_message_at, t.created_at) AS at
          FROM ama.threads t
         WHERE EXISTS (SELECT 1 FROM ama.participants p WHERE p.thread_id = t.thread_id AND p.actor_id = ama.actor_id())
           AND (cur IS NULL OR (coalesce(t.last_message_at, t.created_at), t.thread_id) < (cur_at, cur_id))
         ORDER BY 2 DESC, 1 DESC
         LIMIT lim + 1)
    SELECT coalesce(jsonb_agg(ama._thread_json(p.thread_id) ORDER BY p.at DESC, p.thread_id DESC)
                    FILTER (WHERE p.rn <= lim), '[]'),
           count(*)
      INTO rows, n
      FROM (SELECT page.*, row_number() OVER (ORDER BY at DESC, thread_id DESC) AS rn FROM page) p;
    IF n > lim THEN
        SELECT thread_id, at INTO last FROM (
            SELECT t.thread_id, coalesce(t.last_message_at, t.created_at) AS at
              FROM ama.threads t
             WHERE t.thread_id = ((rows -> (lim - 1)) ->> 'thread_id')::uuid) s;
        RETURN jsonb_build_object('threads', rows,
            'next_cursor', (extract(epoch FROM last.at) * 1e6)::bigint::text || '_' || last.thread_id::text);
    END IF;
    RETURN jsonb_build_object('threads', rows, 'next_cursor', NULL);
END
$$;

-- GET /api/v1/chat/threads/{thread_id}: one thread with its participants (needs read).
CREATE FUNCTION ama.api_threads_get(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN ama._thread_json(ama._thread_for(args, 'read'));
END
$$;

-- POST /api/v1/chat/threads/{thread_id}/mode: sets the participation mode (needs manage).
CREATE FUNCTION ama.api_threads_set_mode(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid := ama._thread_for(args, 'manage');
    mode pg_catalog.text;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['participation_mode'], '{}');
    mode := ama._mode(body, true);
    UPDATE ama.threads t SET participation_mode = mode WHERE t.thread_id = id;
    RETURN ama._thread_json(id);
END
$$;

-- POST /api/v1/chat/threads/{thread_id}/messages: a user's message (needs send).
CREATE FUNCTION ama.api_messages_send(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['content'], ARRAY['client_message_id', 'mentions', 'metadata']);
    id := ama._thread_for(args, 'send');
    RETURN ama.post_message(id, ama._text(body, 'content', 5000, 1), ama._text(body, 'client_message_id', 200, 1),
                            ama._mentions(body), ama._metadata(body));
END
$$;

-- POST /api/v1/chat/threads/{thread_id}/agent-messages: a message with freshness fields (needs send).
CREATE FUNCTION ama.api_messages_agent_send(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['content'],
        ARRAY['client_message_id', 'mentions', 'metadata', 'base_seq', 'latest_seen_seq']);
    id := ama._thread_for(args, 'send');
    RETURN ama.post_message(id, ama._text(body, 'content', 5000, 1), ama._text(body, 'client_message_id', 200, 1),
                            ama._mentions(body), ama._metadata(body),
                            ama._int(ama._number(body, 'base_seq'), 'base_seq', 0, 9223372036854775806),
                            ama._int(ama._number(body, 'latest_seen_seq'), 'latest_seen_seq', 0, 9223372036854775806));
END
$$;

-- GET /api/v1/chat/threads/{thread_id}/events: messages after after_seq (alias last_thread_seq), at most limit (needs read).
CREATE FUNCTION ama.api_events_poll(args jsonb) RETURNS json
LANGUAGE plpgsql
AS $$
DECLARE
    q pg_catalog.jsonb := coalesce(args -> 'query', '{}');
    id pg_catalog.uuid := ama._thread_for(args, 'read');
    after pg_catalog.int8 := coalesce(ama._int(q -> 'after_seq', 'after_seq', 0, 9223372036854775806),
                             ama._int(q -> 'last_thread_seq', 'last_thread_seq', 0, 9223372036854775806), 0);
    lim pg_catalog.int4 := coalesce(ama._int(q -> 'limit', 'limit', 1, 200), 50);
    events pg_catalog.json;
    n pg_catalog.int8;
    top pg_catalog.int8;
BEGIN
    -- One json_agg over the page (the way PostgREST shapes a response; several times faster than a
    -- jsonb object per row). One row past the page tells whether there is more, in the same scan.
    SELECT coalesce(pg_catalog.json_agg(s.ev) FILTER (WHERE s.rn <= lim), '[]'), count(*),
           max(s.thread_seq) FILTER (WHERE s.rn <= lim)
      INTO events, n, top
      FROM (SELECT ROW(m.message_id, m.message_id, 'message_committed', m.thread_id, m.thread_seq, m.sender_id, m.role,
                       m.content, m.mentions, m.client_message_id, m.metadata, m.base_seq, m.latest_seen_seq,
                       m.server_seq_at_submit, ama._ts(m.created_at))::ama.message_event AS ev,
                   m.thread_seq, pg_catalog.row_number() OVER (ORDER BY m.thread_seq) AS rn
              FROM ama.messages m
             WHERE m.thread_id = id AND m.thread_seq > after
             ORDER BY m.thread_seq
             LIMIT lim + 1) s;
    IF top IS NOT NULL THEN
        UPDATE ama.participants p SET last_read_seq = top
         WHERE p.thread_id = id AND p.actor_id = ama.actor_id() AND p.last_read_seq < top;
    END IF;
    RETURN pg_catalog.json_build_object('events', events, 'has_more', n > lim, 'last_seq', coalesce(top, after));
END
$$;

-- POST /api/v1/owner/external-agents/tokens: issues a token (starter plan); the raw token is in this response only.
CREATE FUNCTION ama.api_tokens_create(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    t pg_catalog.record;
    expires pg_catalog.timestamptz;
BEGIN
    PERFORM ama._check_fields(body, ARRAY['agent_actor_id'], ARRAY['agent_display_name', 'expires_at']);
    BEGIN
        expires := ama._text(body, 'expires_at', 64);
        IF expires IS NOT NULL AND (body ->> 'expires_at' !~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$'
                                    OR NOT isfinite(expires)) THEN
            RAISE EXCEPTION USING ERRCODE = '22007';
        END IF;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'expires_at: expected an RFC 3339 timestamp';
    END;
    SELECT * INTO t FROM ama.issue_agent_token(ama._text(body, 'agent_actor_id', 100),
                                               ama._text(body, 'agent_display_name', 200), expires);
    RETURN jsonb_build_object(
        'token_id', t.token_id,
        'raw_token', t.raw_token,
        'token_prefix', t.token_prefix,
        'agent_actor_id', ama.parse_actor_id(body ->> 'agent_actor_id', 'agent'),
        'agent_display_name', t.agent_display_name,
        'created_at', ama._ts(t.created_at),
        'expires_at', ama._ts(t.expires_at));
END
$$;

-- GET /api/v1/owner/external-agents/tokens: the caller's tokens, metadata only.
CREATE FUNCTION ama.api_tokens_list(args jsonb) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('tokens', coalesce(jsonb_agg(jsonb_build_object(
        'token_id', t.token_id,
        'agent_actor_id', t.agent_actor_id,
        'token_prefix', t.token_prefix,
        'agent_display_name', t.agent_display_name,
        'created_at', ama._ts(t.created_at),
        'expires_at', ama._ts(t.expires_at),
        'last_used_at', ama._ts(t.last_used_at),
        'revoked_at', ama._ts(t.revoked_at),
        'is_active', t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()))), '[]'))
      FROM ama.list_agent_tokens() t
$$;

-- DELETE /api/v1/owner/external-agents/tokens/{token_id}: revokes at once, for good.
CREATE FUNCTION ama.api_tokens_revoke(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    id pg_catalog.uuid := ama._uuid(args -> 'path' -> 'token_id', 'token_id');
    at pg_catalog.timestamptz := ama.revoke_agent_token(id);
BEGIN
    RETURN jsonb_build_object('token_id', id, 'revoked', true,
        'revoked_at', ama._ts(at));
END
$$;

-- The caller's agent profile as the API shows it.
CREATE FUNCTION ama._agent_profile_json(p ama.agent_profiles) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'agent_actor_id', p.agent_actor_id,
        'custom_slug', p.custom_slug,
        'display_name', p.display_name,
        'agent_name', p.agent_name,
        'welcome_message', p.welcome_message,
        'is_active', p.is_active,
        'workspace_thread_id', (SELECT t.thread_id FROM ama.threads t
                                 WHERE t.thread_type = 'workspace' AND t.owner_user_id = p.user_id
                                 ORDER BY t.created_at LIMIT 1),
        'created_at', ama._ts(p.created_at),
        'updated_at', ama._ts(p.updated_at))
$$;

-- GET /api/v1/owner/agent: the user's agent profile (starter plan).
CREATE FUNCTION ama.api_agent_get(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    p ama.agent_profiles;
BEGIN
    PERFORM ama.require_plan('starter');
    SELECT * INTO p FROM ama.agent_profiles x WHERE x.user_id = ama.uid();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'agent profile not found';
    END IF;
    RETURN ama._agent_profile_json(p);
END
$$;

-- PUT /api/v1/owner/agent: creates or updates the profile, its agent actor and the owner's workspace thread (starter plan).
CREATE FUNCTION ama.api_agent_put(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    me pg_catalog.uuid := ama.uid();
    agent pg_catalog.text;
    p ama.agent_profiles;
    slug pg_catalog.text;
    ws pg_catalog.uuid;
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only a signed-in user has an agent profile';
    END IF;
    PERFORM ama._check_fields(body, '{}', ARRAY['custom_slug', 'display_name', 'agent_name', 'welcome_message', 'is_active']);
    -- Below starter (a downgraded owner), the page can still be switched off, and nothing else.
    IF body = '{"is_active": false}'::jsonb AND NOT ama.plan_at_least('starter') THEN
        UPDATE ama.agent_profiles x SET is_active = false, updated_at = now() WHERE x.user_id = me RETURNING x.* INTO p;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'agent profile not found';
        END IF;
        RETURN ama._agent_profile_json(p);
    END IF;
    PERFORM ama.require_plan('starter');
    slug := ama._text(body, 'custom_slug', 63);
    IF slug IS NOT NULL AND slug !~ '^[a-z0-9][a-z0-9-]{1,62}$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'custom_slug: 2 to 63 lower-case letters, digits or dashes';
    END IF;
    IF body ? 'is_active' AND jsonb_typeof(body -> 'is_active') NOT IN ('boolean', 'null') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'is_active: expected a boolean';
    END IF;
    SELECT x.agent_actor_id INTO agent FROM ama.agent_profiles x WHERE x.user_id = me;
    IF agent IS NULL THEN
        agent := 'agent:' || gen_random_uuid()::text;
        INSERT INTO ama.actors (actor_id, kind, owner_user_id, display_name)
        VALUES (agent, 'agent', me, coalesce(ama._text(body, 'display_name', 200), ama._text(body, 'agent_name', 200), ''));
    END IF;
    BEGIN
        INSERT INTO ama.agent_profiles AS x (user_id, agent_actor_id, custom_slug, display_name, agent_name, welcome_message, is_active)
        VALUES (me, agent, slug, coalesce(ama._text(body, 'display_name', 200), ''), coalesce(ama._text(body, 'agent_name', 200), ''),
                coalesce(ama._text(body, 'welcome_message', 5000), ''), coalesce((body ->> 'is_active')::boolean, true))
        ON CONFLICT (user_id) DO UPDATE SET
            custom_slug = CASE WHEN body ? 'custom_slug' THEN EXCLUDED.custom_slug ELSE x.custom_slug END,
            display_name = CASE WHEN body ? 'display_name' THEN EXCLUDED.display_name ELSE x.display_name END,
            agent_name = CASE WHEN body ? 'agent_name' THEN EXCLUDED.agent_name ELSE x.agent_name END,
            welcome_message = CASE WHEN body ? 'welcome_message' THEN EXCLUDED.welcome_message ELSE x.welcome_message END,
            is_active = CASE WHEN body ? 'is_active' THEN EXCLUDED.is_active ELSE x.is_active END,
            updated_at = now()
        RETURNING x.* INTO p;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING ERRCODE = 'AM409', MESSAGE = 'custom_slug: already taken';
    END;
    SELECT t.thread_id INTO ws FROM ama.threads t WHERE t.thread_type = 'workspace' AND t.owner_user_id = me;
    IF ws IS NULL THEN
        -- No RETURNING and no ON CONFLICT: their SELECT-policy check would reject the not-yet-stored row under RLS.
        ws := gen_random_uuid();
        BEGIN
            INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by, participant_key)
            VALUES (ws, 'workspace', me, 'user:' || me::text, 'workspace:' || me::text);
        EXCEPTION WHEN unique_violation THEN
            ws := NULL;
        END;
        IF ws IS NOT NULL THEN
            INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
                (ws, 'user:' || me::text, 'user', ARRAY['read', 'send', 'manage']),
                (ws, agent, 'agent', ARRAY['read', 'send', 'run']);
        END IF;
    END IF;
    RETURN ama._agent_profile_json(p);
END
$$;

-- Posts a visitor's message in the visitor's name. The SET clauses restore every context setting when it returns, so the
-- visitor's identity never outlives this call, even inside the caller's transaction.
-- Executable by nobody: only ama.api_public_send (SECURITY DEFINER) calls it.
CREATE FUNCTION ama._post_as_visitor(visitor text, thread uuid, content text, cmid text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET ama.actor_id = ''
SET ama.principal_kind = ''
SET ama.claims = ''
SET ama.credential_id = ''
SET ama.plan = ''
AS $$
BEGIN
    PERFORM pg_catalog.set_config('ama.actor_id', visitor, true);
    PERFORM pg_catalog.set_config('ama.principal_kind', 'visitor', true);
    RETURN ama.post_message(thread, content, cmid);
END
$$;

-- POST /api/v1/public/agents/{custom_slug}/messages: a visitor writes to a user's public agent (owner on starter or higher).
-- Only through ama.request (anon or a visitor token). First contact creates the visitor's public thread and returns a visitor
-- token, valid for that one thread; after that, an email is not a credential: posting again needs the token (409 without it).
CREATE FUNCTION ama.api_public_send(args jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    slug pg_catalog.text := args -> 'path' ->> 'custom_slug';
    kind pg_catalog.text := pg_catalog.current_setting('ama.principal_kind', true);
    prof ama.agent_profiles;
    email pg_catalog.text;
    ehash pg_catalog.bytea;
    v ama.visitors;
    visitor pg_catalog.text;
    tok pg_catalog.record;
    first_contact pg_catalog.bool := false;
    result pg_catalog.jsonb;
    cmid pg_catalog.text;
    content pg_catalog.text;
BEGIN
    -- The request context is set only by ama.request (or a DBA's ama.impersonate): a direct call would skip the per-IP limit.
    IF kind IS NULL OR kind NOT IN ('anon', 'visitor') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'public messages are sent through the HTTP API';
    END IF;
    IF kind = 'visitor' THEN
        PERFORM ama._check_fields(body, ARRAY['content'], ARRAY['email', 'client_message_id']);
    ELSE
        PERFORM ama._check_fields(body, ARRAY['email', 'content'], ARRAY['client_message_id']);
    END IF;
    email := pg_catalog.lower(ama._text(body, 'email', 320, 3));
    IF email IS NOT NULL AND email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'email: not a valid address';
    END IF;
    content := ama._text(body, 'content', 5000, 1);
    cmid := ama._text(body, 'client_message_id', 200, 1);
    -- A page is live while it is active and its owner's plan still has public agents: a downgrade closes it.
    SELECT p.* INTO prof FROM ama.agent_profiles p
      JOIN ama.users u ON u.user_id = p.user_id
      JOIN ama.plans have ON have.plan = u.plan
      JOIN ama.plans want ON want.plan = 'starter'
     WHERE p.custom_slug = slug AND p.is_active AND have.rank >= want.rank;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'agent not found';
    END IF;
    IF kind = 'visitor' THEN
        -- The token's own thread, and only if it is this agent's.
        SELECT x.* INTO v FROM ama.visitors x
         WHERE x.visitor_actor_id = ama.actor_id() AND x.agent_actor_id = prof.agent_actor_id
           AND x.thread_id = (ama.claims() ->> 'thread_id')::uuid;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'agent not found';
        END IF;
        RETURN ama._post_as_visitor(v.visitor_actor_id, v.thread_id, content, cmid);
    END IF;
    ehash := pg_catalog.sha256(pg_catalog.convert_to(email, 'UTF8'));
    IF EXISTS (SELECT 1 FROM ama.visitors x WHERE x.agent_actor_id = prof.agent_actor_id AND x.email_hash = ehash) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM409', MESSAGE = 'this conversation needs its visitor token';
    END IF;
    visitor := 'visitor:' || pg_catalog.gen_random_uuid()::text;
    INSERT INTO ama.actors (actor_id, kind, display_name) VALUES (visitor, 'visitor', 'Visitor');
    INSERT INTO ama.threads AS t (thread_type, owner_user_id, created_by)
    VALUES ('public', prof.user_id, visitor) RETURNING t.thread_id INTO v.thread_id;
    -- The contract's defaults for a public thread: its creator (the visitor) holds manage, the agent run; the owner manages too.
    INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
        (v.thread_id, 'user:' || prof.user_id::text, 'user', ARRAY['read', 'send', 'manage']),
        (v.thread_id, prof.agent_actor_id, 'agent', ARRAY['read', 'send', 'run']),
        (v.thread_id, visitor, 'visitor', ARRAY['read', 'send', 'manage']);
    INSERT INTO ama.visitors (agent_actor_id, email_hash, visitor_actor_id, thread_id)
    VALUES (prof.agent_actor_id, ehash, visitor, v.thread_id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent first contact with the same email won: this one needs its token too.
        RAISE EXCEPTION USING ERRCODE = 'AM409', MESSAGE = 'this conversation needs its visitor token';
    END IF;
    SELECT * INTO tok FROM ama._token_new('visitor');
    INSERT INTO ama.visitor_tokens (visitor_actor_id, thread_id, email_hash, token_hash, token_prefix)
    VALUES (visitor, v.thread_id, ehash, tok.token_hash, tok.token_prefix);
    result := ama._post_as_visitor(visitor, v.thread_id, content, cmid);
    RETURN result || pg_catalog.jsonb_build_object('visitor_token', tok.raw_token);
END
$$;

-- PUT /internal/v1/users/{user_id}: creates or updates a user and plan (trusted services; plan changes 5/min per user).
CREATE FUNCTION ama.api_internal_users_put(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid := ama._uuid(args -> 'path' -> 'user_id', 'user_id');
    u ama.users;
BEGIN
    PERFORM ama._check_fields(body, '{}', ARRAY['email', 'display_name', 'plan']);
    u := ama.upsert_user(id, ama._text(body, 'email', 320), ama._text(body, 'display_name', 200), ama._text(body, 'plan', 32));
    RETURN jsonb_build_object('user_id', u.user_id, 'email', u.email, 'display_name', u.display_name, 'plan', u.plan,
        'created_at', ama._ts(u.created_at),
        'updated_at', ama._ts(u.updated_at));
END
$$;

-- POST /internal/v1/threads/{thread_id}/system-messages: a system message into any thread (trusted services).
CREATE FUNCTION ama.api_internal_system_message(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid := ama._uuid(args -> 'path' -> 'thread_id', 'thread_id');
BEGIN
    PERFORM ama._check_fields(body, ARRAY['content'], ARRAY['client_message_id', 'metadata']);
    RETURN ama.post_message(id, ama._text(body, 'content', 5000, 1), ama._text(body, 'client_message_id', 200, 1),
                            '{}', ama._metadata(body));
END
$$;

-- The route table: route name, handler, rate policy, principals allowed, success status (webhooks: 065_webhooks.sql).
INSERT INTO ama.routes (route, handler, rate_policy, principals, success_status, description) VALUES
    ('threads.create',          'ama.api_threads_create(jsonb)',          'thread_write',   '{user,agent}',    200, 'POST /api/v1/chat/threads'),
    ('threads.list',            'ama.api_threads_list(jsonb)',            'reads',          '{user}',          200, 'GET /api/v1/chat/threads'),
    ('threads.get',             'ama.api_threads_get(jsonb)',             'reads',          '{user}',          200, 'GET /api/v1/chat/threads/{thread_id}'),
    ('threads.set_mode',        'ama.api_threads_set_mode(jsonb)',        'thread_write',   '{user,agent}',    200, 'POST /api/v1/chat/threads/{thread_id}/mode'),
    ('messages.send',           'ama.api_messages_send(jsonb)',           'user_send',      '{user}',          200, 'POST /api/v1/chat/threads/{thread_id}/messages'),
    ('messages.agent_send',     'ama.api_messages_agent_send(jsonb)',     'thread_write',   '{user,agent}',    200, 'POST /api/v1/chat/threads/{thread_id}/agent-messages'),
    ('events.poll',             'ama.api_events_poll(jsonb)',             'events_read',    '{user,agent}',    200, 'GET /api/v1/chat/threads/{thread_id}/events (and /events/stream)'),
    ('tokens.create',           'ama.api_tokens_create(jsonb)',           'token_changes',  '{user}',          201, 'POST /api/v1/owner/external-agents/tokens'),
    ('tokens.list',             'ama.api_tokens_list(jsonb)',             'reads',          '{user}',          200, 'GET /api/v1/owner/external-agents/tokens'),
    ('tokens.revoke',           'ama.api_tokens_revoke(jsonb)',           'token_changes',  '{user}',          200, 'DELETE /api/v1/owner/external-agents/tokens/{token_id}'),
    ('agent.get',               'ama.api_agent_get(jsonb)',               'reads',          '{user}',          200, 'GET /api/v1/owner/agent'),
    ('agent.put',               'ama.api_agent_put(jsonb)',               'profile_update', '{user}',          200, 'PUT /api/v1/owner/agent'),
    ('public.send',             'ama.api_public_send(jsonb)',             'visitor_send',   '{anon,visitor}',  200, 'POST /api/v1/public/agents/{custom_slug}/messages'),
    ('public.events',           'ama.api_events_poll(jsonb)',             'events_read',    '{visitor}',       200, 'GET /api/v1/public/threads/{thread_id}/events'),
    ('internal.users.put',      'ama.api_internal_users_put(jsonb)',      'internal',       '{service}',       200, 'PUT /internal/v1/users/{user_id}'),
    ('internal.system_message', 'ama.api_internal_system_message(jsonb)', 'internal',       '{service}',       200, 'POST /internal/v1/threads/{thread_id}/system-messages');
