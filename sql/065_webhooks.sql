-- ============================================================================
-- ama_pg 065: webhooks (issue 14)
-- A thread's managers register HTTPS callbacks. Every committed message of the
-- thread becomes one delivery per active subscription, written by a trigger in
-- the message's own transaction (an outbox). The shims' deliverers claim due
-- deliveries with FOR UPDATE SKIP LOCKED, at most one in flight per
-- subscription, and receive them signed (Standard Webhooks): the signing secret
-- is sealed under the server setting ama.webhook_secret_key and is opened only
-- inside ama.webhook_claim, in Rust. No role but the extension's owner can read
-- ama.webhook_secrets or ama.webhook_deliveries; managers read their
-- subscriptions (never a secret) under RLS.
-- SQLSTATEs: 22023 bad callback_url, 42501 no manage, AM404 unknown thread or
-- subscription, 54000 the thread's 10 active subscriptions are taken, 55000 no
-- webhook key configured on the server.
-- ============================================================================

-- A thread's webhook subscriptions with their delivery state; the signing secret lives in ama.webhook_secrets.
CREATE TABLE ama.webhook_subscriptions (
    thread_id            uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    subscription_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    callback_url         text NOT NULL CHECK (octet_length(callback_url) <= 2048 AND callback_url LIKE 'https://%'),
    active               boolean NOT NULL DEFAULT true,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- HTTP status of the last attempt (0: no answer: refused, timed out, blocked address)
    last_status          integer CHECK (last_status BETWEEN 0 AND 999),
    last_attempt_at      timestamptz,
    last_success_at      timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    -- when its oldest pending delivery is due; NULL when nothing is pending
    next_attempt_at      timestamptz,
    -- a deliverer holds the subscription's one in-flight delivery until then (lease; at least once)
    leased_until         timestamptz,
    deactivated_at       timestamptz,
    -- keyed by thread, like every table distributed by thread_id (docs/scale-out.md): the send path's probe
    PRIMARY KEY (thread_id, subscription_id)
);
-- The deliverers' claim: active subscriptions with something due, oldest first.
CREATE INDEX webhook_subscriptions_due_idx ON ama.webhook_subscriptions (next_attempt_at)
    WHERE active AND next_attempt_at IS NOT NULL;
ALTER TABLE ama.webhook_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.webhook_subscriptions FORCE ROW LEVEL SECURITY;

-- Signing secrets, sealed (XChaCha20-Poly1305 under ama.webhook_secret_key, bound to the subscription id).
CREATE TABLE ama.webhook_secrets (
    thread_id       uuid NOT NULL,
    subscription_id uuid NOT NULL,
    sealed          bytea NOT NULL CHECK (length(sealed) BETWEEN 41 AND 256),
    PRIMARY KEY (thread_id, subscription_id),
    FOREIGN KEY (thread_id, subscription_id) REFERENCES ama.webhook_subscriptions (thread_id, subscription_id) ON DELETE CASCADE
);
ALTER TABLE ama.webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.webhook_secrets FORCE ROW LEVEL SECURITY;

-- The outbox: one row per (message, active subscription) until it is delivered (deleted) or dropped.
CREATE TABLE ama.webhook_deliveries (
    -- the webhook-id header: the same on every retry, so receivers deduplicate on it
    delivery_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    thread_id       uuid NOT NULL,
    subscription_id uuid NOT NULL,
    -- the message, by the messages' own key
    thread_seq      bigint NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dropped')),
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer CHECK (last_status BETWEEN 0 AND 999),
    PRIMARY KEY (thread_id, delivery_id),
    UNIQUE (thread_id, subscription_id, thread_seq),
    FOREIGN KEY (thread_id, subscription_id) REFERENCES ama.webhook_subscriptions (thread_id, subscription_id) ON DELETE CASCADE,
    FOREIGN KEY (thread_id, thread_seq) REFERENCES ama.messages (thread_id, thread_seq) ON DELETE CASCADE
);
-- A subscription's pending deliveries in message order (the head is the next to send).
CREATE INDEX webhook_deliveries_pending_idx ON ama.webhook_deliveries (thread_id, subscription_id, thread_seq)
    WHERE state = 'pending';
-- A deliverer reports by webhook-id alone.
CREATE INDEX webhook_deliveries_id_idx ON ama.webhook_deliveries (delivery_id);
ALTER TABLE ama.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.webhook_deliveries FORCE ROW LEVEL SECURITY;

-- pg_dump keeps subscriptions, sealed secrets (useless without the server's key) and the outbox.
SELECT pg_catalog.pg_extension_config_dump('ama.webhook_subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('ama.webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('ama.webhook_deliveries', '');

-- Only a participant holding manage, signed in as a user or agent, sees a thread's subscriptions.
CREATE POLICY managers_read_webhooks ON ama.webhook_subscriptions FOR SELECT
    USING (ama.principal_kind() IN ('user', 'agent') AND 'manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')));

-- Only a participant holding manage, signed in as a user or agent, removes a thread's subscriptions.
CREATE POLICY managers_delete_webhooks ON ama.webhook_subscriptions FOR DELETE
    USING (ama.principal_kind() IN ('user', 'agent') AND 'manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')));

-- ama.webhook_secrets and ama.webhook_deliveries: no policy and no grant, so no request role, service or the
-- authenticator reads them; the SECURITY DEFINER functions below are their only users.

-- One subscription as the API shows it: never the secret.
CREATE FUNCTION ama._webhook_json(s ama.webhook_subscriptions) RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'subscription_id', s.subscription_id,
        'thread_id', s.thread_id,
        'callback_url', s.callback_url,
        'active', s.active,
        'created_by', s.created_by,
        'created_at', ama._ts(s.created_at),
        'last_status', s.last_status,
        'consecutive_failures', s.consecutive_failures,
        'last_attempt_at', ama._ts(s.last_attempt_at),
        'last_success_at', ama._ts(s.last_success_at),
        'next_attempt_at', ama._ts(s.next_attempt_at),
        'deactivated_at', ama._ts(s.deactivated_at))
$$;

-- Registers a subscription for a thread the current user or agent manages and returns it with its signing secret,
-- the only time the secret is shown. Checks everything itself (it is callable directly): principal, manage, the URL,
-- at most 10 active subscriptions per thread (54000), a configured key (55000; nothing is stored without one).
CREATE FUNCTION ama._webhook_subscribe(thread uuid, callback_url text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    url pg_catalog.text;
    s ama.webhook_subscriptions;
    sec pg_catalog.record;
BEGIN
    IF ama.principal_kind() IS NULL OR ama.principal_kind() NOT IN ('user', 'agent') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'only users and agents manage webhooks';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ama.participants p WHERE p.thread_id = thread AND p.actor_id = ama.actor_id()) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    IF NOT 'manage' = ANY (coalesce(ama._my_caps(thread), '{}')) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'this needs the manage capability in the thread';
    END IF;
    IF callback_url IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'callback_url: required field is missing';
    END IF;
    url := ama._webhook_check_url(callback_url);
    -- One registration per thread at a time, so concurrent ones cannot pass the limit together.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ama.webhook_subscriptions:' || thread::text));
    IF (SELECT pg_catalog.count(*) FROM ama.webhook_subscriptions x WHERE x.thread_id = thread AND x.active) >= 10 THEN
        RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = 'a thread has at most 10 active webhook subscriptions',
            HINT = 'delete a subscription you no longer use';
    END IF;
    s.subscription_id := pg_catalog.gen_random_uuid();
    -- The secret first: without a configured key this raises 55000 before anything is stored.
    SELECT * INTO sec FROM ama._webhook_secret_new(s.subscription_id);
    INSERT INTO ama.webhook_subscriptions AS x (subscription_id, thread_id, callback_url, created_by)
    VALUES (s.subscription_id, thread, url, ama.actor_id())
    RETURNING x.* INTO s;
    INSERT INTO ama.webhook_secrets (thread_id, subscription_id, sealed) VALUES (thread, s.subscription_id, sec.sealed);
    RETURN ama._webhook_json(s) || pg_catalog.jsonb_build_object('secret', sec.secret);
END
$$;

-- POST /api/v1/chat/threads/{thread_id}/webhooks: registers a callback (needs manage); the answer carries the secret once.
CREATE FUNCTION ama.api_webhooks_create(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    body pg_catalog.jsonb := ama._body(args);
    id pg_catalog.uuid := ama._thread_for(args, 'manage');
BEGIN
    PERFORM ama._check_fields(body, ARRAY['callback_url'], '{}');
    RETURN ama._webhook_subscribe(id, ama._text(body, 'callback_url', 2048, 1));
END
$$;

-- GET /api/v1/chat/threads/{thread_id}/webhooks: the thread's subscriptions with their delivery state (needs manage).
CREATE FUNCTION ama.api_webhooks_list(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    id pg_catalog.uuid := ama._thread_for(args, 'manage');
BEGIN
    RETURN jsonb_build_object('webhooks', coalesce((
        SELECT jsonb_agg(ama._webhook_json(s) ORDER BY s.created_at, s.subscription_id)
          FROM ama.webhook_subscriptions s WHERE s.thread_id = id), '[]'));
END
$$;

-- DELETE /api/v1/chat/threads/{thread_id}/webhooks/{subscription_id}: removes a subscription and its pending
-- deliveries (needs manage). Another thread's or an unknown subscription is not found.
CREATE FUNCTION ama.api_webhooks_delete(args jsonb) RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    id pg_catalog.uuid := ama._thread_for(args, 'manage');
    sid pg_catalog.uuid := ama._uuid(args -> 'path' -> 'subscription_id', 'subscription_id');
BEGIN
    DELETE FROM ama.webhook_subscriptions s WHERE s.subscription_id = sid AND s.thread_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'webhook subscription not found';
    END IF;
    RETURN jsonb_build_object('subscription_id', sid, 'thread_id', id, 'deleted', true);
END
$$;

-- Writes a committed message into the outbox, one delivery per active subscription of its thread, in the message's
-- own transaction. A thread without subscriptions costs one index probe.
CREATE FUNCTION ama._webhook_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO ama.webhook_deliveries (thread_id, subscription_id, thread_seq)
    SELECT NEW.thread_id, s.subscription_id, NEW.thread_seq
      FROM ama.webhook_subscriptions s
     WHERE s.thread_id = NEW.thread_id AND s.active;
    IF FOUND THEN
        -- Due now unless a retry is already scheduled. Always written (not only when NULL), so a claim that found
        -- nothing pending while this message was uncommitted cannot leave the new delivery unscheduled.
        UPDATE ama.webhook_subscriptions s SET next_attempt_at = coalesce(s.next_attempt_at, pg_catalog.now())
         WHERE s.thread_id = NEW.thread_id AND s.active;
        PERFORM pg_catalog.pg_notify('ama_webhooks', '');
    END IF;
    RETURN NULL;
END
$$;

-- Every committed message of a thread with subscriptions reaches the outbox.
CREATE TRIGGER messages_webhooks AFTER INSERT ON ama.messages
    FOR EACH ROW EXECUTE FUNCTION ama._webhook_enqueue();

-- Records a failed attempt of a delivery of a subscription (locked by the caller): backs off, or after 10
-- consecutive failures deactivates the subscription and drops its pending deliveries. Executable by nobody.
CREATE FUNCTION ama._webhook_failed(thread uuid, subscription uuid, delivery uuid, http_status integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    failures pg_catalog.int4;
BEGIN
    UPDATE ama.webhook_deliveries d SET last_status = http_status WHERE d.thread_id = thread AND d.delivery_id = delivery;
    UPDATE ama.webhook_subscriptions s
       SET consecutive_failures = s.consecutive_failures + 1, last_status = http_status, leased_until = NULL
     WHERE s.thread_id = thread AND s.subscription_id = subscription
    RETURNING s.consecutive_failures INTO failures;
    IF failures >= 10 THEN
        UPDATE ama.webhook_subscriptions s
           SET active = false, next_attempt_at = NULL, deactivated_at = pg_catalog.now()
         WHERE s.thread_id = thread AND s.subscription_id = subscription;
        UPDATE ama.webhook_deliveries d SET state = 'dropped'
         WHERE d.thread_id = thread AND d.subscription_id = subscription AND d.state = 'pending';
    ELSE
        UPDATE ama.webhook_subscriptions s
           SET next_attempt_at = pg_catalog.now() + ama._webhook_backoff_ms(failures) * interval '1 millisecond'
         WHERE s.thread_id = thread AND s.subscription_id = subscription;
    END IF;
END
$$;

-- Claims up to p_limit due deliveries for the calling deliverer (the shim's login only): at most one in flight per
-- subscription (its lease, 30 s), oldest message first, skipping rows another deliverer holds. Each comes signed
-- (Standard Webhooks) with its body, the message_committed event exactly as polling shows it; the secret itself
-- never leaves the database. A lease that runs out (the deliverer died) makes the delivery claimable again.
CREATE FUNCTION ama.webhook_claim(p_limit integer)
RETURNS TABLE (delivery_id uuid, subscription_id uuid, callback_url text, body text, webhook_id text,
               webhook_timestamp bigint, webhook_signature text, attempt integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s pg_catalog.record;
    d ama.webhook_deliveries;
    now_ts pg_catalog.timestamptz := pg_catalog.now();
    ts pg_catalog.int8 := pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.now()))::pg_catalog.int8;
    sealed pg_catalog.bytea;
    b pg_catalog.text;
    sig pg_catalog.text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RETURN;
    END IF;
    FOR s IN
        SELECT x.thread_id, x.subscription_id, x.callback_url FROM ama.webhook_subscriptions x
         WHERE x.active AND x.next_attempt_at <= now_ts AND (x.leased_until IS NULL OR x.leased_until <= now_ts)
         ORDER BY x.next_attempt_at
         LIMIT least(p_limit, 1000)
           FOR UPDATE SKIP LOCKED
    LOOP
        SELECT y.* INTO d FROM ama.webhook_deliveries y
         WHERE y.thread_id = s.thread_id AND y.subscription_id = s.subscription_id AND y.state = 'pending'
         ORDER BY y.thread_seq LIMIT 1
           FOR UPDATE;
        IF NOT FOUND THEN
            UPDATE ama.webhook_subscriptions x SET next_attempt_at = NULL
             WHERE x.thread_id = s.thread_id AND x.subscription_id = s.subscription_id;
            CONTINUE;
        END IF;
        SELECT pg_catalog.row_to_json(ROW(m.message_id, m.message_id, 'message_committed', m.thread_id, m.thread_seq,
                   m.sender_id, m.role, m.content, m.mentions, m.client_message_id, m.metadata, m.base_seq,
                   m.latest_seen_seq, m.server_seq_at_submit, ama._ts(m.created_at))::ama.message_event)::pg_catalog.text
          INTO b FROM ama.messages m WHERE m.thread_id = d.thread_id AND m.thread_seq = d.thread_seq;
        SELECT k.sealed INTO sealed FROM ama.webhook_secrets k
         WHERE k.thread_id = s.thread_id AND k.subscription_id = s.subscription_id;
        sig := ama._webhook_sign(s.subscription_id, sealed, d.delivery_id::pg_catalog.text, ts, b);
        UPDATE ama.webhook_deliveries y SET attempts = y.attempts + 1, last_attempt_at = now_ts
         WHERE y.thread_id = d.thread_id AND y.delivery_id = d.delivery_id;
        UPDATE ama.webhook_subscriptions x SET leased_until = now_ts + interval '30 seconds', last_attempt_at = now_ts
         WHERE x.thread_id = s.thread_id AND x.subscription_id = s.subscription_id;
        IF sig IS NULL OR b IS NULL THEN
            -- The secret does not open under the configured key (or the message is gone): a failed attempt.
            PERFORM ama._webhook_failed(s.thread_id, s.subscription_id, d.delivery_id, 0);
            CONTINUE;
        END IF;
        delivery_id := d.delivery_id;
        subscription_id := s.subscription_id;
        callback_url := s.callback_url;
        body := b;
        webhook_id := d.delivery_id::pg_catalog.text;
        webhook_timestamp := ts;
        webhook_signature := sig;
        attempt := d.attempts + 1;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Reports the outcome of a claimed delivery (the shim's login only): a success deletes it and resets the
-- subscription's failure count; a failure backs off (ama.webhook_backoff_base_ms / _cap_ms, with jitter) and the
-- 10th consecutive one deactivates the subscription (audited). False when the delivery is no longer pending.
CREATE FUNCTION ama.webhook_report(p_delivery_id uuid, p_http_status integer, p_ok boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    thread pg_catalog.uuid;
    sub pg_catalog.uuid;
BEGIN
    IF p_delivery_id IS NULL OR p_ok IS NULL OR p_http_status IS NULL OR p_http_status NOT BETWEEN 0 AND 999 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'webhook_report: delivery id, an HTTP status 0-999 and ok are required';
    END IF;
    SELECT d.thread_id, d.subscription_id INTO thread, sub FROM ama.webhook_deliveries d WHERE d.delivery_id = p_delivery_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- The subscription first, then the delivery: the order ama.webhook_claim locks them in.
    PERFORM 1 FROM ama.webhook_subscriptions s WHERE s.thread_id = thread AND s.subscription_id = sub FOR UPDATE;
    PERFORM 1 FROM ama.webhook_deliveries d
      WHERE d.thread_id = thread AND d.delivery_id = p_delivery_id AND d.state = 'pending' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_ok THEN
        DELETE FROM ama.webhook_deliveries d WHERE d.thread_id = thread AND d.delivery_id = p_delivery_id;
        UPDATE ama.webhook_subscriptions s
           SET consecutive_failures = 0, last_status = p_http_status, last_success_at = pg_catalog.now(),
               leased_until = NULL,
               next_attempt_at = CASE WHEN s.active AND EXISTS (
                                     SELECT 1 FROM ama.webhook_deliveries d
                                      WHERE d.thread_id = s.thread_id AND d.subscription_id = s.subscription_id
                                        AND d.state = 'pending')
                                 THEN pg_catalog.now() END
         WHERE s.thread_id = thread AND s.subscription_id = sub;
    ELSE
        PERFORM ama._webhook_failed(thread, sub, p_delivery_id, p_http_status);
    END IF;
    RETURN true;
END
$$;

-- Records a new subscription (never its secret).
CREATE FUNCTION ama._audit_webhook_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('webhook_created', NEW.subscription_id::text,
                       pg_catalog.jsonb_build_object('thread_id', NEW.thread_id, 'callback_url', NEW.callback_url));
    RETURN NULL;
END
$$;

-- Every new subscription is audited.
CREATE TRIGGER webhook_subscriptions_audit_create AFTER INSERT ON ama.webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION ama._audit_webhook_created();

-- Records a removed subscription.
CREATE FUNCTION ama._audit_webhook_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('webhook_deleted', OLD.subscription_id::text, pg_catalog.jsonb_build_object('thread_id', OLD.thread_id));
    RETURN NULL;
END
$$;

-- Every removal is audited.
CREATE TRIGGER webhook_subscriptions_audit_delete AFTER DELETE ON ama.webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION ama._audit_webhook_deleted();

-- Records a subscription deactivated after repeated delivery failures.
CREATE FUNCTION ama._audit_webhook_deactivated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ama._audit('webhook_deactivated', NEW.subscription_id::text,
                       pg_catalog.jsonb_build_object('thread_id', NEW.thread_id, 'consecutive_failures',
                                                     NEW.consecutive_failures, 'last_status', NEW.last_status));
    RETURN NULL;
END
$$;

-- Every deactivation is audited once.
CREATE TRIGGER webhook_subscriptions_audit_deactivate AFTER UPDATE OF active ON ama.webhook_subscriptions
    FOR EACH ROW WHEN (OLD.active AND NOT NEW.active)
    EXECUTE FUNCTION ama._audit_webhook_deactivated();

-- Deactivates the subscriptions an actor registered in a thread once it leaves the thread or loses manage there,
-- and drops their pending deliveries: a callback never outlives its registrant's right to manage the thread.
CREATE FUNCTION ama._webhook_registrant_lost_manage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- The subscriptions first, then their deliveries: the order ama.webhook_claim locks them in.
    PERFORM 1 FROM ama.webhook_subscriptions s
      WHERE s.thread_id = OLD.thread_id AND s.created_by = OLD.actor_id AND s.active
      ORDER BY s.subscription_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE ama.webhook_deliveries d SET state = 'dropped'
      FROM ama.webhook_subscriptions s
     WHERE s.thread_id = OLD.thread_id AND s.created_by = OLD.actor_id AND s.active
       AND d.thread_id = s.thread_id AND d.subscription_id = s.subscription_id AND d.state = 'pending';
    UPDATE ama.webhook_subscriptions s
       SET active = false, next_attempt_at = NULL, leased_until = NULL, deactivated_at = pg_catalog.now()
     WHERE s.thread_id = OLD.thread_id AND s.created_by = OLD.actor_id AND s.active;
    RETURN NULL;
END
$$;

-- A participant removed while holding manage: its subscriptions stop.
CREATE TRIGGER participants_webhooks_removed AFTER DELETE ON ama.participants
    FOR EACH ROW WHEN ('manage' = ANY (OLD.capabilities))
    EXECUTE FUNCTION ama._webhook_registrant_lost_manage();

-- A participant whose manage is taken away: its subscriptions stop.
CREATE TRIGGER participants_webhooks_downgraded AFTER UPDATE OF capabilities ON ama.participants
    FOR EACH ROW WHEN ('manage' = ANY (OLD.capabilities) AND NOT 'manage' = ANY (NEW.capabilities))
    EXECUTE FUNCTION ama._webhook_registrant_lost_manage();

-- The webhook routes (the handlers exist from here on).
INSERT INTO ama.routes (route, handler, rate_policy, principals, success_status, description) VALUES
    ('webhooks.create', 'ama.api_webhooks_create(jsonb)', 'thread_write', '{user,agent}', 201, 'POST /api/v1/chat/threads/{thread_id}/webhooks'),
    ('webhooks.list',   'ama.api_webhooks_list(jsonb)',   'reads',        '{user,agent}', 200, 'GET /api/v1/chat/threads/{thread_id}/webhooks'),
    ('webhooks.delete', 'ama.api_webhooks_delete(jsonb)', 'thread_write', '{user,agent}', 200, 'DELETE /api/v1/chat/threads/{thread_id}/webhooks/{subscription_id}');
