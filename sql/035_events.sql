-- ============================================================================
-- ama_pg 035: live-event notifications
-- A committed message is announced on channel ama_events so the shims' streams
-- re-poll at once. Any database role may LISTEN to any channel, so the payload
-- is sealed (XChaCha20-Poly1305 under the key in ama.event_keys, a fresh nonce
-- each time): listeners without the key learn neither thread ids nor message
-- counts per thread.
-- ============================================================================

-- The sealing key, made once at install from the server's strong random source.
INSERT INTO ama.event_keys (key)
VALUES (pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'));

-- The sealing key, for the shim's listener (ama_authenticator only).
CREATE FUNCTION ama.events_key() RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT k.key FROM ama.event_keys k WHERE k.key_id = 1 $$;

-- Tells live streams that a message committed (NOTIFY is delivered at commit). The payload is sealed with ama.event_keys
-- (any role may LISTEN); only the shim holds the key.
CREATE FUNCTION ama._notify_message() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('ama_events', ama._event_payload(NEW.thread_id, NEW.thread_seq));
    RETURN NULL;
END
$$;

-- Every committed message is announced on channel ama_events.
CREATE TRIGGER messages_notify AFTER INSERT ON ama.messages
    FOR EACH ROW EXECUTE FUNCTION ama._notify_message();

