-- Attacks on webhooks (issue 14), as the real roles: a subscription must not outlive its registrant's manage
-- capability. A manager who registers a callback and is then removed from the thread, or loses manage, must not
-- keep receiving every message of the thread through it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(10);

-- Owner O manages T; M (a second manager, later removed), G (a manager later downgraded to read/send) and
-- O's agent A (manage, later removed) each register a callback.
INSERT INTO ama.users (user_id, plan) VALUES
    ('e8000000-0000-4000-8000-00000000000a', 'starter'), ('e8000000-0000-4000-8000-00000000000b', 'basic'),
    ('e8000000-0000-4000-8000-00000000000c', 'basic');
INSERT INTO ama.actors (actor_id, kind, owner_user_id) VALUES
    ('user:e8000000-0000-4000-8000-00000000000a', 'user', 'e8000000-0000-4000-8000-00000000000a'),
    ('user:e8000000-0000-4000-8000-00000000000b', 'user', 'e8000000-0000-4000-8000-00000000000b'),
    ('user:e8000000-0000-4000-8000-00000000000c', 'user', 'e8000000-0000-4000-8000-00000000000c'),
    ('agent:e8000000-0000-4000-8000-0000000000a1', 'agent', 'e8000000-0000-4000-8000-00000000000a');
INSERT INTO ama.threads (thread_id, thread_type, owner_user_id, created_by) VALUES
    ('e8100000-0000-4000-8000-000000000001', 'private', 'e8000000-0000-4000-8000-00000000000a', 'user:e8000000-0000-4000-8000-00000000000a');
INSERT INTO ama.participants (thread_id, actor_id, participant_kind, capabilities) VALUES
    ('e8100000-0000-4000-8000-000000000001', 'user:e8000000-0000-4000-8000-00000000000a', 'user', '{read,send,manage}'),
    ('e8100000-0000-4000-8000-000000000001', 'user:e8000000-0000-4000-8000-00000000000b', 'user', '{read,send,manage}'),
    ('e8100000-0000-4000-8000-000000000001', 'user:e8000000-0000-4000-8000-00000000000c', 'user', '{read,send,manage}'),
    ('e8100000-0000-4000-8000-000000000001', 'agent:e8000000-0000-4000-8000-0000000000a1', 'agent', '{read,send,manage}');

CREATE TEMP TABLE got (k text PRIMARY KEY, v jsonb);
GRANT ALL ON got TO PUBLIC;
CREATE TEMP TABLE claimed (delivery_id uuid, subscription_id uuid, callback_url text, body text, webhook_id text,
                           webhook_timestamp bigint, webhook_signature text, attempt int);
GRANT ALL ON claimed TO PUBLIC;
-- Registers url in T as actor (run as authenticated, like the shim) and keeps the answer under key k.
CREATE FUNCTION pg_temp.register(k text, actor text, url text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ama.impersonate(actor);
    SET LOCAL ROLE authenticated;
    INSERT INTO pg_temp.got SELECT k, ama.api_webhooks_create(jsonb_build_object(
        'path', jsonb_build_object('thread_id', 'e8100000-0000-4000-8000-000000000001'),
        'body', jsonb_build_object('callback_url', url)));
    RESET ROLE;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;
\set T '''e8100000-0000-4000-8000-000000000001'''
\set O '''user:e8000000-0000-4000-8000-00000000000a'''

SELECT pg_temp.register('owner', :O, 'https://owner.example.com/');
SELECT pg_temp.register('removed', 'user:e8000000-0000-4000-8000-00000000000b', 'https://removed.example.com/');
SELECT pg_temp.register('downgraded', 'user:e8000000-0000-4000-8000-00000000000c', 'https://downgraded.example.com/');
SELECT pg_temp.register('agent', 'agent:e8000000-0000-4000-8000-0000000000a1', 'https://agent.example.com/');

-- The owner removes M and the agent and takes manage from G, the way the API does it (as authenticated, under RLS).
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
DELETE FROM ama.participants WHERE thread_id = :T AND actor_id IN
    ('user:e8000000-0000-4000-8000-00000000000b', 'agent:e8000000-0000-4000-8000-0000000000a1');
UPDATE ama.participants SET capabilities = '{read,send}'
 WHERE thread_id = :T AND actor_id = 'user:e8000000-0000-4000-8000-00000000000c';
SELECT ama.post_message(:T, 'after the removal');
RESET ROLE;

SELECT is((SELECT count(*) FROM ama.participants WHERE thread_id = :T), 2::bigint, 'M and the agent are gone from the thread');
SELECT is((SELECT count(*) FROM ama.webhook_deliveries d JOIN ama.webhook_subscriptions s USING (thread_id, subscription_id), got g
            WHERE g.k = 'owner' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid), 1::bigint,
          'the owner''s subscription still gets the new message');
SELECT is((SELECT count(*) FROM ama.webhook_deliveries d, got g
            WHERE g.k IN ('removed', 'downgraded', 'agent') AND d.state = 'pending'
              AND d.subscription_id = (g.v ->> 'subscription_id')::uuid), 0::bigint,
          'no new message is queued for the callbacks of a removed manager, a downgraded one or a removed agent');
SELECT is((SELECT count(*) FROM ama.webhook_subscriptions s, got g
            WHERE g.k IN ('removed', 'downgraded', 'agent') AND s.active AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          0::bigint, 'their subscriptions are no longer active');
SELECT is((SELECT count(*) FROM ama.webhook_subscriptions s, got g
            WHERE g.k IN ('removed', 'downgraded', 'agent') AND s.deactivated_at IS NOT NULL
              AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          3::bigint, '...and the remaining managers see them deactivated');
SET LOCAL ROLE ama_authenticator;
INSERT INTO claimed SELECT * FROM ama.webhook_claim(100);
RESET ROLE;
SELECT is((SELECT array_agg(callback_url) FROM claimed), ARRAY['https://owner.example.com/'],
          'the deliverer is handed the owner''s delivery only');
SELECT is((SELECT count(*) FROM ama.audit_log a, got g WHERE g.k IN ('removed', 'downgraded', 'agent')
            AND a.event = 'webhook_deactivated' AND a.subject = g.v ->> 'subscription_id'), 3::bigint, 'each deactivation is audited');

-- A manager who keeps manage (another capability taken away) keeps the subscription.
SELECT ama.impersonate(:O);
SET LOCAL ROLE authenticated;
UPDATE ama.participants SET capabilities = '{read,manage}' WHERE thread_id = :T AND actor_id = :O;
RESET ROLE;
SELECT is((SELECT s.active FROM ama.webhook_subscriptions s, got g WHERE g.k = 'owner' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          true, 'losing send but keeping manage leaves the subscription active');
-- Giving manage back does not revive a deactivated subscription (the manager registers again).
UPDATE ama.participants SET capabilities = '{read,send,manage}' WHERE thread_id = :T AND actor_id = 'user:e8000000-0000-4000-8000-00000000000c';
SELECT is((SELECT s.active FROM ama.webhook_subscriptions s, got g WHERE g.k = 'downgraded' AND s.subscription_id = (g.v ->> 'subscription_id')::uuid),
          false, 'manage given back: the old subscription stays inactive');
-- Deleting the thread (cascades through participants) still works.
DELETE FROM ama.threads WHERE thread_id = :T;
SELECT is((SELECT count(*) FROM ama.webhook_subscriptions WHERE thread_id = :T), 0::bigint, 'a deleted thread takes its subscriptions along');

SELECT * FROM finish();
ROLLBACK;
