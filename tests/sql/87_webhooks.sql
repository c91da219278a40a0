-- Webhooks (issue 14), as the real roles: who may register, list and remove a subscription; the callback URL
-- rules; the limit of 10 active subscriptions; the secret and the sealing key unreadable by every role; the outbox
-- written in the message's own transaction; claim and report for the shim's login only, signed bodies (checked with
-- pgcrypto's HMAC, an implementation independent of the extension's), one delivery in flight per subscription,
-- expired leases claimable again, backoff, and deactivation after 10 consecutive failures (audited).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(121);

CREATE SCHEMA sp87;
CREATE EXTENSION pgcrypto SCHEMA sp87;
CREATE ROLE sp87_svc LOGIN NOSUPERUSER IN ROLE ama_service;

-- Owner O (manages T), reader R, downgraded D (manager, then manage revoked), outsider N (manages T2), O's agent A
-- (manage granted in T), visitor V (manages public thread P).
INSERT INTO ama.users (user_id, plan) VALUES
    ('e7000000-0000-4000-8000-00000000000a', 'starter'), ('e7000000-0000-4000-8000-00000000000b', 'basic'),
    ('e7000000-0000-4000-8000-00000000000c', 'basic'), ('e7000000-0000-4000-8000-00000000000d', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:e7000000-0000-4000-8000-00000000000a', 'user', 'e7000000-0000-4000-8000-00000000000a'),
    ('user:e7000000-0000-4000-8000-00000000000b', 'user', 'e7000000-0000-4000-8000-00000000000b'),
    ('user:e7000000-0000-4000-8000-00000000000c', 'user', 'e7000000-0000-4000-8000-00000000000c'),
    ('user:e7000000-0000-4000-8000-00000000000d', 'user', 'e7000000-0000-4000-8000-00000000000d'),
    ('agent:e7000000-0000-4000-8000-0000000000a1', 'agent', 'e7000000-0000-4000-8000-00000000000a'),
    ('visitor:e7000000-0000-4000-8000-0000000000f1', 'visitor', NULL);
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('e7100000-0000-4000-8000-000000000001', 'private', 'e7000000-0000-4000-8000-00000000000a', 'user:e7000000-0000-4000-8000-00000000000a'),
    ('e7100000-0000-4000-8000-000000000002', 'private', 'e7000000-0000-4000-8000-00000000000c', 'user:e7000000-0000-4000-8000-00000000000c'),
    ('e7100000-0000-4000-8000-000000000003', 'public', 'e7000000-0000-4000-8000-00000000000a', 'visitor:e7000000-0000-4000-8000-0000000000f1');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('e7100000-0000-4000-8000-000000000001', 'user:e7000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('e7100000-0000-4000-8000-000000000001', 'user:e7000000-0000-4000-8000-00000000000b', 'user', '{read,send}'),
    ('e7100000-0000-4000-8000-000000000001', 'user:e7000000-0000-4000-8000-00000000000d', 'user', '{read,send,manage}'),
    ('e7100000-0000-4000-8000-000000000001', 'agent:e7000000-0000-4000-8000-0000000000a1', 'agent', '{read,send,manage}'),
    ('e7100000-0000-4000-8000-000000000002', 'user:e7000000-0000-4000-8000-00000000000c', 'user', '{read,send,manage}'),
    ('e7100000-0000-4000-8000-000000000003', 'user:e7000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('e7100000-0000-4000-8000-000000000003', 'visitor:e7000000-0000-4000-8000-0000000000f1', 'visitor', '{read,send,manage}');
INSERT INTO ama.visitors (agent_actor_id, email_hash, visitor_actor_id, thread_id)
VALUES ('agent:e7000000-0000-4000-8000-0000000000a1', sha256('sp87'), 'visitor:e7000000-0000-4000-8000-0000000000f1',
        'e7100000-0000-4000-8000-000000000003');
-- D is downgraded: manage revoked.
UPDATE ama.participants SET capabilities = '{read,send}'
 WHERE thread_id = 'e7100000-0000-4000-8000-000000000001' AND actor_id = 'user:e7000000-0000-4000-8000-00000000000d';

CREATE TEMP TABLE got (k text PRIMARY KEY, v jsonb);
GRANT ALL ON got TO PUBLIC;
CREATE TEMP TABLE gottext (k text PRIMARY KEY, v text);
GRANT ALL ON gottext TO PUBLIC;
CREATE TEMP TABLE claimed (n int, delivery_id uuid, subscription_id uuid, callback_url text, body text, webhook_id text,
                           webhook_timestamp bigint, webhook_signature text, attempt int);
GRANT ALL ON claimed TO PUBLIC;

-- Runs q as actor (NULL: no context) under role r; answers 'ok' or the SQLSTATE. Leaves role and context as found.
CREATE FUNCTION pg_temp.try_as(r text, actor text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text := 'ok';
BEGIN
    BEGIN
        IF actor IS NOT NULL THEN
            PERFORM ama.impersonate(actor);
        ELSE
            -- no request context, as in a fresh session of that role
            PERFORM set_config(s, '', true) FROM unnest(ARRAY['ama.actor_id', 'ama.principal_kind', 'ama.claims', 'ama.credential_id', 'ama.plan']) s;
        END IF;
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE q;
        RAISE EXCEPTION USING ERRCODE = 'SP870', MESSAGE = 'undo';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE <> 'SP870' THEN
            state := SQLSTATE;
        END IF;
    END;
    RETURN state;
END $$;
-- The args of a webhook route for thread t with body b (and subscription s).
CREATE FUNCTION pg_temp.wargs(t text, b jsonb DEFAULT '{}', s text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('path', jsonb_strip_nulls(jsonb_build_object('thread_id', t, 'subscription_id', s)), 'body', b)
$$;
CREATE FUNCTION pg_temp.create_q(t text, url text) RETURNS text LANGUAGE sql AS $$
    SELECT format('SELECT ama.api_webhooks_create(%L)', pg_temp.wargs(t, jsonb_build_object('callback_url', url)))
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;
\set T '''e7100000-0000-4000-8000-000000000001'''
\set T2 '''e7100000-0000-4000-8000-000000000002'''
\set P '''e7100000-0000-4000-8000-000000000003'''
\set O '''user:e7000000-0000-4000-8000-00000000000a'''

-- 1. Registration: the manager gets the subscription and its secret, once.
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
INSERT INTO got SELECT 'first', ama.api_webhooks_create(pg_temp.wargs(:T, '{"callback_url": "https://hooks.example.com/a"}'));
RESET ROLE;
SELECT ok((SELECT v ->> 'secret' ~ '^whsec_[A-Za-z0-9+/]{43}=$' FROM got WHERE k = 'first'), 'the answer carries a whsec_ secret of 32 random bytes');
SELECT is((SELECT v - 'secret' - 'subscription_id' - 'created_at' FROM got WHERE k = 'first'),
    jsonb_build_object('thread_id', :T, 'callback_url', 'https://hooks.example.com/a', 'active', true, 'created_by', :O,
        'last_status', NULL, 'consecutive_failures', 0, 'last_attempt_at', NULL, 'last_success_at', NULL,
        'next_attempt_at', NULL, 'deactivated_at', NULL),
    'the answer names the thread, URL, state and creator');
SELECT ok((SELECT (v ->> 'subscription_id')::uuid IS NOT NULL AND v ? 'created_at' FROM got WHERE k = 'first'), 'with an id and created_at');
SELECT is((SELECT count(*) FROM ama.audit_log WHERE event = 'webhook_created' AND subject = (SELECT v ->> 'subscription_id' FROM got WHERE k = 'first')
            AND actor_id = :O AND NOT detail::text LIKE '%whsec_%'), 1::bigint, 'registration is audited, without the secret');
SELECT is(pg_temp.try_as('authenticated', 'agent:e7000000-0000-4000-8000-0000000000a1',
          pg_temp.create_q(:T, 'https://hooks.example.com/agent')), 'ok', 'an agent holding manage registers too');
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
INSERT INTO got SELECT 'second', ama.api_webhooks_create(pg_temp.wargs(:T, '{"callback_url": "https://hooks.example.com/b"}'));
RESET ROLE;

-- 2. Who may not register.
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b', pg_temp.create_q(:T, 'https://x.example.com/')),
          '42501', 'a participant without manage: 42501');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000d', pg_temp.create_q(:T, 'https://x.example.com/')),
          '42501', 'a downgraded manager: 42501');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000c', pg_temp.create_q(:T, 'https://x.example.com/')),
          'AM404', 'a non-participant: AM404, the thread does not exist for it');
SELECT is(pg_temp.try_as('anon', 'visitor:e7000000-0000-4000-8000-0000000000f1', pg_temp.create_q(:P, 'https://x.example.com/')),
          '42501', 'a visitor, even holding manage in its thread: 42501');
SELECT is(pg_temp.try_as('service_role', 'service:sp87', pg_temp.create_q(:T, 'https://x.example.com/')),
          'AM404', 'a trusted service through the API function: AM404');
SELECT is(pg_temp.try_as('sp87_svc', NULL, format('SELECT ama._webhook_subscribe(%L, %L)', :T, 'https://x.example.com/')),
          '42501', 'a trusted-service login calling the helper directly: 42501');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000c',
          format('SELECT ama._webhook_subscribe(%L, %L)', :T, 'https://x.example.com/')),
          'AM404', 'a non-participant calling the helper directly: AM404');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b',
          format('SELECT ama._webhook_subscribe(%L, %L)', :T, 'https://x.example.com/')),
          '42501', 'a reader calling the helper directly: 42501');

-- 3. The callback URL.
SELECT is(pg_temp.try_as('authenticated', :O, pg_temp.create_q(:T, u)), '22023', 'refused: ' || left(u, 60))
  FROM unnest(ARRAY['http://hooks.example.com/', 'https://user:pw@hooks.example.com/', 'https://127.0.0.1/',
                    'https://169.254.169.254/latest', 'https://[::ffff:169.254.169.254]/', 'https://10.1.2.3/',
                    'https://[fd00::1]/', 'https://[::1]:8443/', 'https://0x7f000001/', 'not a url',
                    'https://hooks.example.com/' || repeat('a', 2030)]) u;
SELECT is(pg_temp.try_as('authenticated', :O, format('SELECT ama.api_webhooks_create(%L)', pg_temp.wargs(:T, b))), '22023', 'refused body ' || b::text)
  FROM unnest(ARRAY['{}'::jsonb, '{"callback_url": 1}', '{"callback_url": "https://a.example.com/", "secret": "x"}']) b;

-- 4. Listing: managers only, never a secret.
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
INSERT INTO got SELECT 'list', ama.api_webhooks_list(pg_temp.wargs(:T));
RESET ROLE;
SELECT is((SELECT jsonb_array_length(v -> 'webhooks') FROM got WHERE k = 'list'), 2, 'the manager lists both subscriptions');
SELECT ok((SELECT NOT v::text LIKE '%whsec_%' AND NOT v::text LIKE '%sealed%' FROM got WHERE k = 'list'), 'the list never shows a secret');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b', format('SELECT ama.api_webhooks_list(%L)', pg_temp.wargs(:T))),
          '42501', 'a reader may not list them');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b',
          'DO $$ BEGIN IF (SELECT count(*) FROM ama.webhook_subscriptions) > 0 THEN RAISE EXCEPTION USING ERRCODE = ''P0001''; END IF; END $$'),
          'ok', 'RLS: a reader sees no subscription row');

-- 5. The secret, the outbox and the key: unreadable by every role.
SELECT is(pg_temp.try_as(r, NULL, q), '42501', r || ': ' || q)
  FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp87_svc', 'ama_authenticator', 'ama_admin']) r
 CROSS JOIN unnest(ARRAY['SELECT * FROM ama.webhook_secrets', 'SELECT * FROM ama.webhook_deliveries',
                         'SELECT current_setting(''ama.webhook_secret_key'')', 'SELECT current_setting(''ama.webhook_secret_key'', true)',
                         'SHOW ama.webhook_secret_key', 'SELECT * FROM pg_file_settings']) q;
SELECT is(pg_temp.try_as(r, NULL, 'DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_settings WHERE name = ''ama.webhook_secret_key'') THEN RAISE EXCEPTION USING ERRCODE = ''P0001''; END IF; END $$'),
          'ok', r || ': pg_settings does not list the key')
  FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp87_svc', 'ama_authenticator', 'ama_admin']) r;
SELECT isnt(pg_temp.try_as('authenticated', NULL, 'SELECT set_config(''ama.webhook_secret_key'', repeat(''0'', 64), true)'), 'ok',
            'no session sets the key');
SELECT is(length(current_setting('ama.webhook_secret_key')), 64, 'the harness configured a 64-hex-character key');
SELECT is((SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ama' AND table_name = 'webhook_subscriptions'
            AND column_name ~ 'secret|sealed'), 0::bigint, 'the subscriptions table has no secret column');
SELECT is((SELECT position(decode(substr(g.v ->> 'secret', 7), 'base64') IN s.sealed) FROM got g, ama.webhook_secrets s
            WHERE g.k = 'first' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid), 0, 'the stored secret is sealed, not the secret');

-- 6. The outbox is written in the message's transaction, one row per active subscription.
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
SAVEPOINT rolled;
SELECT ama.post_message(:T, 'rolled back');
RESET ROLE;
SELECT is((SELECT count(*) FROM ama.webhook_deliveries d JOIN ama.messages m USING (thread_id, thread_seq) WHERE m.content = 'rolled back'),
          2::bigint, 'inside the send''s transaction: one delivery per active subscription');
ROLLBACK TO SAVEPOINT rolled;
RESET ROLE;
SELECT is((SELECT count(*) FROM ama.webhook_deliveries), 0::bigint, 'the send rolled back: no delivery');
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
SELECT ama.post_message(:T, 'm1');
SELECT ama.post_message(:T, 'm2');
SELECT ama.post_message('e7100000-0000-4000-8000-000000000003', 'no hooks here');
RESET ROLE;
SELECT is((SELECT count(*) FROM ama.webhook_deliveries), 4::bigint, 'two messages, two subscriptions: four deliveries; none for a thread without subscriptions');

-- 7. Claiming: the shim's login only.
SELECT is(pg_temp.try_as(r, NULL, q), '42501', r || ' may not: ' || q)
  FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp87_svc', 'ama_admin']) r
 CROSS JOIN unnest(ARRAY['SELECT * FROM ama.webhook_claim(10)',
                         'SELECT ama.webhook_report(gen_random_uuid(), 200, true)']) q;
SET LOCAL ROLE ama_authenticator;
INSERT INTO claimed SELECT 1, * FROM ama.webhook_claim(10);
RESET ROLE;
SELECT is((SELECT count(*) FROM claimed WHERE n = 1), 2::bigint, 'one delivery per subscription is claimed, not four');
SELECT is((SELECT count(DISTINCT subscription_id) FROM claimed WHERE n = 1), 2::bigint, 'one for each subscription');
SELECT ok((SELECT bool_and(c.body::jsonb ->> 'content' = 'm1') FROM claimed c WHERE n = 1), 'the oldest message first');
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
INSERT INTO gottext SELECT 'poll', (ama.api_events_poll(pg_temp.wargs(:T) || '{"query": {"limit": "1"}}') -> 'events' -> 0)::text;
RESET ROLE;
SELECT is((SELECT c.body FROM claimed c WHERE n = 1 LIMIT 1),
          (SELECT v FROM gottext WHERE k = 'poll'), 'the body is the event as polling shows it, byte for byte');
SELECT is((SELECT count(*) FROM claimed c, got g WHERE c.n = 1 AND g.k = 'first'
            AND c.subscription_id = (g.v ->> 'subscription_id')::uuid
            AND c.webhook_signature = 'v1,' || encode(sp87.hmac(convert_to(c.webhook_id || '.' || c.webhook_timestamp || '.' || c.body, 'UTF8'),
                                                          decode(substr(g.v ->> 'secret', 7), 'base64'), 'sha256'), 'base64')),
          1::bigint, 'the signature verifies with pgcrypto''s HMAC and the secret the manager got');
SELECT ok((SELECT bool_and(webhook_id = delivery_id::text AND attempt = 1 AND callback_url LIKE 'https://hooks.example.com/%') FROM claimed WHERE n = 1),
          'webhook-id is the delivery id; first attempt; the callback URL');
SET LOCAL ROLE ama_authenticator;
INSERT INTO claimed SELECT 2, * FROM ama.webhook_claim(10);
RESET ROLE;
SELECT is((SELECT count(*) FROM claimed WHERE n = 2), 0::bigint, 'a leased subscription has nothing more to claim: one in flight each');
-- A lease that ran out (the deliverer died) makes the same delivery claimable again.
UPDATE ama.webhook_subscriptions SET leased_until = now() - interval '1 second';
SET LOCAL ROLE ama_authenticator;
INSERT INTO claimed SELECT 3, * FROM ama.webhook_claim(10);
RESET ROLE;
SELECT is((SELECT array_agg(delivery_id ORDER BY delivery_id) FROM claimed WHERE n = 3),
          (SELECT array_agg(delivery_id ORDER BY delivery_id) FROM claimed WHERE n = 1), 'expired leases: the same deliveries again (at least once)');

-- 8. Reporting: success removes the delivery and makes the next one due.
SET LOCAL ROLE ama_authenticator;
SELECT is(ama.webhook_report(c.delivery_id, 204, true), true, 'a success is recorded') FROM claimed c, got g
 WHERE c.n = 3 AND g.k = 'first' AND c.subscription_id = (g.v ->> 'subscription_id')::uuid;
SELECT is(ama.webhook_report(c.delivery_id, 204, true), false, 'reporting it again changes nothing') FROM claimed c, got g
 WHERE c.n = 3 AND g.k = 'first' AND c.subscription_id = (g.v ->> 'subscription_id')::uuid;
RESET ROLE;
SELECT is(pg_temp.try_as('ama_authenticator', NULL, 'SELECT ama.webhook_report(gen_random_uuid(), 1000, true)'), '22023', 'a status out of range: 22023');
SELECT is((SELECT row(s.last_status, s.consecutive_failures, s.leased_until IS NULL, s.next_attempt_at = now())::text
             FROM ama.webhook_subscriptions s, got g WHERE g.k = 'first' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          '(204,0,t,t)', 'after a success: status, no failures, no lease, the next message due now');

-- 9. Failures back off, growing; the 10th consecutive one deactivates the subscription, audited.
SET LOCAL ama.webhook_backoff_base_ms = 1000;
SET LOCAL ama.webhook_backoff_cap_ms = 86400000;
CREATE TEMP TABLE waits (n int, ms float8);
DO $$
DECLARE
    sub uuid := (SELECT (v ->> 'subscription_id')::uuid FROM pg_temp.got WHERE k = 'first');
    d record;
BEGIN
    FOR i IN 1..10 LOOP
        UPDATE ama.webhook_subscriptions s SET next_attempt_at = now() - interval '1 second' WHERE s.subscription_id = sub;
        SET LOCAL ROLE ama_authenticator;
        SELECT * INTO d FROM ama.webhook_claim(10) c WHERE c.subscription_id = sub;
        PERFORM ama.webhook_report(d.delivery_id, 500, false);
        RESET ROLE;
        INSERT INTO pg_temp.waits SELECT i, 1000 * extract(epoch FROM s.next_attempt_at - now())
          FROM ama.webhook_subscriptions s WHERE s.subscription_id = sub;
    END LOOP;
END $$;
SELECT ok((SELECT bool_and(w2.ms >= w1.ms) FROM waits w1 JOIN waits w2 ON w2.n = w1.n + 1 WHERE w1.n < 9), 'each wait is at least the one before');
SELECT ok((SELECT ms BETWEEN 500 AND 1000 FROM waits WHERE n = 1) AND (SELECT ms BETWEEN 128000 AND 256000 FROM waits WHERE n = 9),
          'waits double from the base (1 s) with jitter: [0.5, 1] s, then [128, 256] s at the 9th failure');
SELECT is((SELECT row(s.active, s.consecutive_failures, s.last_status, s.next_attempt_at IS NULL, s.deactivated_at IS NOT NULL)::text
             FROM ama.webhook_subscriptions s, got g WHERE g.k = 'first' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          '(f,10,500,t,t)', 'the 10th consecutive failure deactivates the subscription');
SELECT is((SELECT count(*) FROM ama.audit_log a, got g WHERE g.k = 'first' AND a.event = 'webhook_deactivated'
            AND a.subject = g.v ->> 'subscription_id' AND (a.detail ->> 'consecutive_failures')::int = 10), 1::bigint, 'the deactivation is audited');
SELECT is((SELECT count(*) FROM ama.webhook_deliveries d, got g WHERE g.k = 'first' AND d.state = 'pending'
            AND d.subscription_id = (g.v ->> 'subscription_id')::uuid), 0::bigint, 'its pending deliveries are dropped');
SET LOCAL ROLE ama_authenticator;
SELECT is((SELECT count(*) FROM ama.webhook_claim(10) c, got g WHERE g.k = 'first' AND c.subscription_id = (g.v ->> 'subscription_id')::uuid),
          0::bigint, 'an inactive subscription is never claimed');
RESET ROLE;
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
SELECT ama.post_message(:T, 'm3');
RESET ROLE;
SELECT is((SELECT count(*) FROM ama.webhook_deliveries d JOIN ama.messages m USING (thread_id, thread_seq) WHERE m.content = 'm3'), 1::bigint,
          'a new message reaches the active subscription only');

-- 10. At most 10 active subscriptions per thread (the deactivated one does not count).
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
SELECT ama.api_webhooks_create(pg_temp.wargs(:T, jsonb_build_object('callback_url', 'https://hooks.example.com/' || i))) FROM generate_series(1, 9) i;
RESET ROLE;
SELECT is(pg_temp.try_as('authenticated', :O, pg_temp.create_q(:T, 'https://hooks.example.com/eleventh')), '54000', 'an 11th active subscription: 54000');
SELECT is((SELECT count(*) FROM ama.webhook_subscriptions WHERE thread_id = :T), 11::bigint, 'ten active and one inactive');

-- 11. Removal: managers only, this thread's subscriptions only, no existence leak.
SELECT ama.impersonate('user:e7000000-0000-4000-8000-00000000000c');
SET LOCAL ROLE authenticated;
INSERT INTO got SELECT 'other', ama.api_webhooks_create(pg_temp.wargs(:T2, '{"callback_url": "https://other.example.com/"}'));
RESET ROLE;
SELECT is(pg_temp.try_as('authenticated', :O, format('SELECT ama.api_webhooks_delete(%L)', pg_temp.wargs(:T, '{}', (SELECT v ->> 'subscription_id' FROM got WHERE k = 'other')))),
          'AM404', 'another thread''s subscription through this thread: AM404');
SELECT is(pg_temp.try_as('authenticated', :O, format('SELECT ama.api_webhooks_delete(%L)', pg_temp.wargs(:T, '{}', gen_random_uuid()::text))),
          'AM404', 'an unknown subscription: AM404');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b', format('SELECT ama.api_webhooks_delete(%L)', pg_temp.wargs(:T, '{}', (SELECT v ->> 'subscription_id' FROM got WHERE k = 'first')))),
          '42501', 'a reader may not remove one');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000c', format('SELECT ama.api_webhooks_delete(%L)', pg_temp.wargs(:T, '{}', (SELECT v ->> 'subscription_id' FROM got WHERE k = 'first')))),
          'AM404', 'a non-participant: AM404');
SELECT is(pg_temp.try_as('authenticated', 'user:e7000000-0000-4000-8000-00000000000b', 'DELETE FROM ama.webhook_subscriptions'), 'ok', 'a reader''s plain DELETE runs...');
SELECT is((SELECT count(*) FROM ama.webhook_subscriptions WHERE thread_id = :T), 11::bigint, '...and removes nothing (RLS)');
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
INSERT INTO got SELECT 'deleted', ama.api_webhooks_delete(pg_temp.wargs(:T, '{}', (SELECT v ->> 'subscription_id' FROM got WHERE k = 'first')));
RESET ROLE;
SELECT is((SELECT v - 'thread_id' - 'subscription_id' FROM got WHERE k = 'deleted'), '{"deleted": true}', 'the manager removes it');
SELECT is((SELECT count(*) FROM ama.webhook_secrets s, got g WHERE g.k = 'first' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid)
          + (SELECT count(*) FROM ama.webhook_deliveries d, got g WHERE g.k = 'first' AND d.subscription_id = (g.v ->> 'subscription_id')::uuid),
          0::bigint, 'its secret and deliveries go with it');
SELECT is((SELECT count(*) FROM ama.audit_log a, got g WHERE g.k = 'first' AND a.event = 'webhook_deleted' AND a.subject = g.v ->> 'subscription_id'),
          1::bigint, 'the removal is audited');
SELECT is((SELECT count(*) FROM ama.audit_log WHERE detail::text ~ 'whsec_'), 0::bigint, 'no audit row holds a secret');

SELECT * FROM finish();
ROLLBACK;
