-- Attack: the request context outliving the call that set it, and event payloads that name threads.
--
-- The context settings (ama.actor_id, ama.principal_kind, ama.claims, ama.credential_id,
-- ama.client_ip, ama.plan) are SUSET: only ama.request and ama.impersonate may set them. But a
-- function that sets them with set_config(..., true) leaves them set for the rest of the CALLER's
-- transaction unless a SET clause restores them on exit: a role that calls it over SQL inside its
-- own transaction then acts as whoever the function made it (a visitor, a user, an agent).
-- Every function a role may EXECUTE is called here with the role's context in place, and the six
-- settings (and request.jwt.claims) must be exactly as before; ama.request by ama_authenticator,
-- with every kind of credential, must leave nothing behind that the authenticator's request roles
-- could use in the same transaction.
--
-- Live events: any role may LISTEN on ama_events, so the payload must not name the thread. pgTAP
-- cannot read notifications (they reach the client after commit), so the payload builder is tested
-- directly; the end-to-end tests LISTEN for real.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(59);

\ir include/8x_fixture.psql

-- The context as one string: the six settings and Supabase's request.jwt.claims.
CREATE FUNCTION pg_temp.snap() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' | ', 'actor_id=' || coalesce(current_setting('ama.actor_id', true), ''),
                     'principal_kind=' || coalesce(current_setting('ama.principal_kind', true), ''),
                     'claims=' || coalesce(current_setting('ama.claims', true), ''),
                     'credential_id=' || coalesce(current_setting('ama.credential_id', true), ''),
                     'client_ip=' || coalesce(current_setting('ama.client_ip', true), ''),
                     'plan=' || coalesce(current_setting('ama.plan', true), ''),
                     'request.jwt.claims=' || coalesce(current_setting('request.jwt.claims', true), ''))
$$;
SELECT pg_temp.snap() AS empty_snap \gset
SELECT set_config('sp8x.ws', :'fx_ws', true), set_config('sp8x.pub', :'fx_pub', true) \g /dev/null

-- ---------------------------------------------------------------------------
-- 1. Catalog: who can set the context, and whether it is restored.
-- ---------------------------------------------------------------------------
-- Every function whose source sets an ama.* setting (ama.request and ama.impersonate aside) restores
-- each one it sets with a SET clause, so the value ends with the call.
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text, m[1] AS setting
        FROM pg_proc p, regexp_matches(p.prosrc, 'set_config\s*\(\s*''(ama\.[a-z_]+)''', 'g') m
       WHERE p.pronamespace = 'ama'::regnamespace
         AND p.oid NOT IN ('ama.request(text, text, text, jsonb, inet, jsonb)'::regprocedure,
                           'ama.request_json(text, text, text, jsonb, inet, jsonb)'::regprocedure, 'ama.impersonate(text)'::regprocedure)
         AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE split_part(c, '=', 1) = m[1])$$,
    'every function that sets an ama.* context setting (but request and impersonate) restores it with a SET clause');
SELECT is(
    ARRAY(SELECT split_part(c, '=', 1) FROM pg_proc p, unnest(p.proconfig) c
           WHERE p.oid = 'ama.request(text, text, text, jsonb, inet, jsonb)'::regprocedure AND c NOT LIKE 'search\_path=%'
           ORDER BY 1),
    ARRAY['ama.actor_id', 'ama.claims', 'ama.client_ip', 'ama.credential_id', 'ama.plan', 'ama.principal_kind', 'request.jwt.claims'],
    'ama.request restores all six context settings and request.jwt.claims on exit (SET clauses)');
SELECT is(
    ARRAY(SELECT split_part(c, '=', 1) FROM pg_proc p, unnest(p.proconfig) c
           WHERE p.oid = 'ama.request_json(text, text, text, jsonb, inet, jsonb)'::regprocedure AND c NOT LIKE 'search\_path=%'
           ORDER BY 1),
    ARRAY['ama.actor_id', 'ama.claims', 'ama.client_ip', 'ama.credential_id', 'ama.plan', 'ama.principal_kind', 'request.jwt.claims'],
    'ama.request_json restores all six context settings and request.jwt.claims on exit (SET clauses)');
-- The Rust half that sets the context, and the role switch, are reachable only through ama.request.
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text, r FROM pg_proc p,
             unnest(ARRAY['anon', 'authenticated', 'service_role', 'ama_service', 'sp8x_svc', 'ama_authenticator']) r
       WHERE p.pronamespace = 'ama'::regnamespace AND p.proname IN ('_request_begin', '_call_route')
         AND has_function_privilege(r, p.oid, 'EXECUTE')$$,
    'ama._request_begin and ama._call_route are executable by no request role, service or the authenticator');

-- ---------------------------------------------------------------------------
-- 2. Every executable function, in every context, leaves the context as it found it.
--    Each call runs in a subtransaction that only catches its error, so a successful call's
--    set_config(..., true) stays visible to the comparison; the whole cell is then rolled back.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE contexts (ord int, ctx text, who text, mode text, actor text);
INSERT INTO contexts VALUES
    (1, 'anon (no context)', 'anon', 'role', NULL),
    (2, 'anon as visitor V', 'anon', 'role', 'visitor:' || :'fx_visitor'),
    (3, 'authenticated (no context)', 'authenticated', 'role', NULL),
    (4, 'authenticated as starter user O', 'authenticated', 'role', 'user:' || :'fx_owner'),
    (5, 'authenticated as agent A', 'authenticated', 'role', 'agent:' || :'fx_agent'),
    (6, 'service_role (no context)', 'service_role', 'role', NULL),
    (7, 'service_role as service:sp8x', 'service_role', 'role', 'service:sp8x'),
    (8, 'trusted-service login sp8x_svc', 'sp8x_svc', 'session', NULL),
    (9, 'ama_authenticator', 'ama_authenticator', 'role', NULL);
CREATE TEMP TABLE ctx_calls (n serial, ord int, label text, sql text);
INSERT INTO ctx_calls (ord, label, sql) SELECT c.ord, k.label, k.sql FROM contexts c, pg_temp.calls_for(c.who) k ORDER BY c.ord, k.label;
-- The authenticator's one function, with every kind of credential.
INSERT INTO ctx_calls (ord, label, sql)
SELECT 9, 'ama.request(' || x.route || ', ' || x.kind || ')',
       format('SELECT ama.request(%L, %L, %L, %L, %L, %L)', x.route, x.kind, x.cred, x.claims, '198.18.81.' || row_number() OVER (), x.args)
  FROM (VALUES
    ('threads.list', 'jwt', NULL, jsonb_build_object('sub', :'fx_owner', 'aud', 'authenticated', 'role', 'authenticated')::text, '{}'),
    ('events.poll', 'agent', :'fx_agent_raw', NULL, jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws'))::text),
    ('public.events', 'visitor', :'fx_visitor_raw', NULL, jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_pub'))::text),
    ('internal.system_message', 'internal', :'fx_key_raw', NULL,
     jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws'), 'body', jsonb_build_object('content', 'sys'))::text),
    ('public.send', NULL, NULL, NULL,
     jsonb_build_object('path', jsonb_build_object('custom_slug', :'fx_slug'), 'body', jsonb_build_object('email', 'sp81-new@example.com', 'content', 'hi'))::text),
    ('events.poll', 'agent', :'fx_unknown_agent_raw', NULL, jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws'))::text)
  ) x(route, kind, cred, claims, args);

CREATE TEMP TABLE ctx_results (ord int, label text, outcome text, before text, after text);
DO $run$
DECLARE
    c record;
    k record;
    outcome text;
    s0 text;
    s1 text;
BEGIN
    FOR c IN SELECT * FROM contexts ORDER BY ord LOOP
        FOR k IN SELECT * FROM ctx_calls WHERE ord = c.ord ORDER BY n LOOP
            BEGIN
                IF c.actor IS NOT NULL THEN
                    PERFORM ama.impersonate(c.actor);
                END IF;
                IF c.mode = 'session' THEN
                    EXECUTE format('SET SESSION AUTHORIZATION %I', c.who);
                ELSE
                    EXECUTE format('SET LOCAL ROLE %I', c.who);
                END IF;
                s0 := pg_temp.snap();
                BEGIN
                    EXECUTE k.sql;
                    outcome := 'ok';
                EXCEPTION WHEN OTHERS THEN
                    outcome := SQLSTATE;
                END;
                s1 := pg_temp.snap();
                RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = outcome, DETAIL = s0, HINT = s1;
            EXCEPTION
                WHEN SQLSTATE 'ZZ999' THEN
                    GET STACKED DIAGNOSTICS outcome = MESSAGE_TEXT, s0 = PG_EXCEPTION_DETAIL, s1 = PG_EXCEPTION_HINT;
                WHEN OTHERS THEN
                    outcome := 'harness: ' || SQLSTATE || ' ' || SQLERRM;
                    s0 := NULL;
                    s1 := NULL;
            END;
            INSERT INTO ctx_results VALUES (c.ord, k.label, outcome, s0, s1);
        END LOOP;
    END LOOP;
END
$run$;

SELECT cmp_ok((SELECT count(*)::int FROM ctx_results r WHERE r.ord = c.ord AND r.before IS NOT NULL), '>=',
              CASE WHEN c.who = 'ama_authenticator' THEN 6 ELSE 40 END,
              format('%s: every executable ama function was called (%s calls)', c.ctx,
                     (SELECT count(*) FROM ctx_results r WHERE r.ord = c.ord)))
  FROM contexts c ORDER BY c.ord;
SELECT is((SELECT coalesce(string_agg(format('%s (%s): %s  ->  %s', r.label, r.outcome, r.before, r.after), E'\n'), '')
             FROM ctx_results r WHERE r.ord = c.ord AND r.before IS DISTINCT FROM r.after),
          '', format('%s: no call changed the context settings it found', c.ctx))
  FROM contexts c ORDER BY c.ord;

-- ---------------------------------------------------------------------------
-- 3. ama.api_public_send called directly over SQL (as anon, authenticated, service_role and a
--    service login, without a context): afterwards the caller is not the new visitor and sees
--    nothing of the visitor's thread in the same transaction.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE direct (ord int, who text, mode text, outcome text, actor_after text, kind_after text,
                          messages_seen int, threads_seen int);
DO $direct$
DECLARE
    r record;
    outcome text;
    a text;
    k text;
    m int;
    t int;
    parts text[];
BEGIN
    FOR r IN SELECT * FROM (VALUES (1, 'anon', 'role'), (2, 'authenticated', 'role'), (3, 'service_role', 'role'),
                                   (4, 'sp8x_svc', 'session')) x(ord, who, mode) LOOP
        BEGIN
            IF r.mode = 'session' THEN
                EXECUTE format('SET SESSION AUTHORIZATION %I', r.who);
            ELSE
                EXECUTE format('SET LOCAL ROLE %I', r.who);
            END IF;
            BEGIN
                PERFORM ama.api_public_send(jsonb_build_object(
                    'path', jsonb_build_object('custom_slug', pg_temp.v('slug')),
                    'body', jsonb_build_object('email', 'sp81-direct-' || r.ord || '@example.com', 'content', 'direct call')));
                outcome := 'ok';
            EXCEPTION WHEN OTHERS THEN
                outcome := SQLSTATE;
            END;
            a := coalesce(current_setting('ama.actor_id', true), '');
            k := coalesce(current_setting('ama.principal_kind', true), '');
            -- What the caller can read now, in the same transaction, as itself.
            SELECT count(*) INTO m FROM ama.messages;
            SELECT count(*) INTO t FROM ama.threads;
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = concat_ws(E'\x1f', outcome, a, k, m, t);
        EXCEPTION WHEN SQLSTATE 'ZZ999' THEN
            parts := string_to_array(SQLERRM, E'\x1f');
            INSERT INTO direct VALUES (r.ord, r.who, r.mode, parts[1], parts[2], parts[3], parts[4]::int, parts[5]::int);
        END;
    END LOOP;
END
$direct$;
SELECT is(actor_after, '', format('%s: after calling ama.api_public_send directly (%s), ama.actor_id is not set to a visitor', who, outcome))
  FROM direct ORDER BY ord;
SELECT is(kind_after, '', format('%s: after calling ama.api_public_send directly, ama.principal_kind is not set', who))
  FROM direct ORDER BY ord;
SELECT is(messages_seen, 0, format('%s: after calling ama.api_public_send directly, it reads no message of the visitor''s thread', who))
  FROM direct ORDER BY ord;

-- ---------------------------------------------------------------------------
-- 4. ama.request by ama_authenticator leaves no identity behind in its transaction: right after a
--    valid request, the settings are empty and the request role the authenticator may switch to
--    reads nothing of the thread the request could read.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE shim (ord int, label text, route text, kind text, cred text, claims jsonb, args jsonb, as_role text,
                        expect_status text, status text, after text, rows_seen int);
INSERT INTO shim (ord, label, route, kind, cred, claims, args, as_role, expect_status) VALUES
    (1, 'visitor token', 'public.events', 'visitor', :'fx_visitor_raw', NULL,
        jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_pub')), 'anon', '200'),
    (2, 'agent token', 'events.poll', 'agent', :'fx_agent_raw', NULL,
        jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws')), 'authenticated', '200'),
    (3, 'user JWT', 'threads.get', 'jwt', NULL, jsonb_build_object('sub', :'fx_owner', 'aud', 'authenticated', 'role', 'authenticated'),
        jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws')), 'authenticated', '200'),
    (4, 'internal key', 'internal.system_message', 'internal', :'fx_key_raw', NULL,
        jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws'), 'body', jsonb_build_object('content', 'sys')), 'service_role', '200'),
    (5, 'no credential (public.send, first contact)', 'public.send', NULL, NULL, NULL,
        jsonb_build_object('path', jsonb_build_object('custom_slug', :'fx_slug'),
                           'body', jsonb_build_object('email', 'sp81-shim@example.com', 'content', 'hello')), 'anon', '200'),
    (6, 'unknown agent token', 'events.poll', 'agent', :'fx_unknown_agent_raw', NULL,
        jsonb_build_object('path', jsonb_build_object('thread_id', :'fx_ws')), 'authenticated', '401');
DO $shim$
DECLARE
    s record;
    st text;
    af text;
    n int;
    parts text[];
BEGIN
    FOR s IN SELECT * FROM shim ORDER BY ord LOOP
        BEGIN
            SET LOCAL ROLE ama_authenticator;
            st := ama.request(s.route, s.kind, s.cred, s.claims, ('198.18.81.' || (100 + s.ord))::inet, s.args) ->> 'status';
            af := pg_temp.snap();
            -- Use whatever identity was left behind: switch to the request role and read.
            EXECUTE format('SET LOCAL ROLE %I', s.as_role);
            SELECT count(*) INTO n FROM ama.messages;
            RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = concat_ws(E'\x1f', st, af, n);
        EXCEPTION WHEN SQLSTATE 'ZZ999' THEN
            parts := string_to_array(SQLERRM, E'\x1f');
            UPDATE shim SET status = parts[1], after = parts[2], rows_seen = parts[3]::int WHERE ord = s.ord;
        END;
    END LOOP;
END
$shim$;
SELECT is(status, expect_status, format('ama.request with a %s answers %s', label, expect_status)) FROM shim ORDER BY ord;
SELECT is(after, :'empty_snap', format('ama.request with a %s: no context setting survives the call', label)) FROM shim ORDER BY ord;
SELECT is(rows_seen, 0, format('ama.request with a %s: %s then reads no message in the same transaction', label, as_role))
  FROM shim ORDER BY ord;

-- ---------------------------------------------------------------------------
-- 5. Live events: the notification payload names no thread.
-- ---------------------------------------------------------------------------
SELECT has_function('ama', '_event_payload', ARRAY['uuid', 'bigint'], 'ama._event_payload(thread uuid, seq bigint) builds the ama_events payload');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text, r FROM pg_proc p,
             unnest(ARRAY['anon', 'authenticated', 'service_role', 'ama_service', 'sp8x_svc', 'ama_authenticator']) r
       WHERE p.oid = to_regprocedure('ama._event_payload(uuid, bigint)') AND has_function_privilege(r, p.oid, 'EXECUTE')$$,
    'ama._event_payload is executable by no request role, service or the authenticator');
CREATE TEMP TABLE payloads (n int, p text);
DO $$
BEGIN
    IF to_regprocedure('ama._event_payload(uuid, bigint)') IS NOT NULL THEN
        EXECUTE format('INSERT INTO payloads SELECT 1, ama._event_payload(%1$L, 1)::text
                        UNION ALL SELECT 2, ama._event_payload(%1$L, 1)::text
                        UNION ALL SELECT 3, ama._event_payload(%2$L, 1)::text',
                       current_setting('sp8x.ws'), current_setting('sp8x.pub'));
    END IF;
END
$$;
SELECT ok((SELECT count(*) FROM payloads) = 3 AND NOT EXISTS (SELECT 1 FROM payloads
                       WHERE strpos(lower(p), lower(:'fx_ws')) > 0 OR strpos(lower(p), replace(lower(:'fx_ws'), '-', '')) > 0
                          OR strpos(lower(p), lower(:'fx_pub')) > 0 OR strpos(lower(p), replace(lower(:'fx_pub'), '-', '')) > 0),
          'the payload contains the thread id neither with nor without dashes');
SELECT ok((SELECT count(*) FROM payloads) = 3 AND NOT EXISTS (SELECT 1 FROM payloads
                       WHERE strpos(p, encode(decode(replace(:'fx_ws', '-', ''), 'hex'), 'base64')) > 0
                          OR strpos(p, rtrim(encode(decode(replace(:'fx_ws', '-', ''), 'hex'), 'base64'), '=')) > 0),
          'the payload does not contain the thread id in base64 either');
SELECT isnt((SELECT p FROM payloads WHERE n = 1), (SELECT p FROM payloads WHERE n = 2),
            'two payloads for the same thread and seq differ (no stable tag to correlate)');
SELECT isnt((SELECT p FROM payloads WHERE n = 1), (SELECT p FROM payloads WHERE n = 3), 'payloads of two threads differ');
-- The key that opens payloads is the shim's only.
SELECT is_empty(
    $$SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'ama_service', 'sp8x_svc']) r
       WHERE coalesce(has_function_privilege(r, to_regprocedure('ama.events_key()'), 'EXECUTE'), false)
          OR coalesce(has_table_privilege(r, to_regclass('ama.event_keys'), 'SELECT'), false)$$,
    'no request role or service may read the events key (function or table)');

SELECT * FROM finish();
ROLLBACK;
