-- The route call and the API's timestamps (issue 13): ama._call_route calls only a route function
-- (one jsonb argument, json or jsonb out) and only for the extension's owner; ama._ts renders every
-- timestamp exactly as to_char did; ama.request_json answers what ama.request answers.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(16);

-- 1. ama._ts is to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), for every kind of
--    timestamp: around now, far in the past and the future, BC, the epochs, leap days, infinity.
SELECT is_empty(
    $$SELECT t FROM (
          SELECT now() + (random() - 0.5) * interval '200 years' AS t FROM generate_series(1, 20000)
          UNION ALL SELECT timestamptz '2000-01-01 00:00:00+00' + g * interval '1 microsecond' FROM generate_series(-3, 3) g
          UNION ALL SELECT timestamptz '1970-01-01 00:00:00+00' + g * interval '59.999999 seconds' FROM generate_series(-3, 3) g
          UNION ALL SELECT unnest(ARRAY[timestamptz '2024-02-29 23:59:59.999999+00', '1900-02-28 12:00:00+00',
                                         '2000-02-29 00:00:00+00', '0001-01-01 00:00:00+00', '0044-03-15 12:00:00+00 BC',
                                         '4713-11-24 00:00:00+00 BC', '12345-06-07 08:09:10.111213+00',
                                         '294276-12-31 23:59:59.999999+00', 'infinity', '-infinity'])
      ) x
      WHERE ama._ts(t) IS DISTINCT FROM to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')$$,
    'ama._ts renders every timestamp exactly as to_char did');
SELECT is(ama._ts(NULL), NULL, 'ama._ts(NULL) is NULL');
SELECT is(ama._ts('2026-11-29 23:45:14.1+00'), '2026-11-29T23:45:14.100000Z', 'RFC 3339 UTC with microseconds');

-- 2. ama._call_route refuses anything that is not a route function, before calling it.
SELECT throws_ok($$SELECT ama._call_route('authenticated', 'pg_catalog.pg_terminate_backend(integer, bigint)'::regprocedure, '{}')$$,
                 '42883', 'a route handler must take one jsonb argument and return json or jsonb',
                 'a function of other arguments is never called with a jsonb datum');
SELECT throws_ok($$SELECT ama._call_route('authenticated', 'pg_catalog.jsonb_typeof(jsonb)'::regprocedure, '{}')$$,
                 '42883', NULL, 'a jsonb function that returns text is refused');
SELECT throws_ok($$SELECT ama._call_route('authenticated', 'pg_catalog.jsonb_array_elements(jsonb)'::regprocedure, '[1]')$$,
                 '42883', NULL, 'a set-returning function is refused');
SELECT throws_ok($$SELECT ama._call_route('authenticated', 4294967295::oid, '{}')$$, '42883', NULL, 'an unknown function is refused');
SELECT throws_ok($$SELECT ama._call_route('authenticated', NULL, '{}')$$, '22004', NULL, 'a NULL handler is refused');
SELECT throws_ok($$SELECT ama._call_route('authenticated', 'ama._body(jsonb)'::regprocedure, NULL)$$, '22004', NULL, 'NULL args are refused');
-- a role that may not EXECUTE the handler is refused (42501), as `SELECT handler(...)` would be; an
-- unknown role name is refused (22023)
CREATE FUNCTION pg_temp.owner_only(j jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT j';
REVOKE ALL ON FUNCTION pg_temp.owner_only(jsonb) FROM PUBLIC;
SELECT throws_ok($$SELECT ama._call_route('anon', 'pg_temp.owner_only(jsonb)'::regprocedure, '{}')$$, '42501', NULL,
                 'the request role must be allowed to execute the route function');
SELECT throws_ok($$SELECT ama._call_route('postgres', 'ama._body(jsonb)'::regprocedure, '{}')$$, '22023', NULL,
                 'only the three request roles can be switched to');
-- a jsonb route answers its json text (called from a SECURITY DEFINER function, as ama.request_json
-- does, whose exit switches back from the request role)
CREATE FUNCTION pg_temp.call_body(j jsonb) RETURNS text SECURITY DEFINER LANGUAGE sql
AS $$ SELECT ama._call_route('authenticated', 'ama._body(jsonb)'::regprocedure, j)::text $$;
SELECT is(pg_temp.call_body('{"body": {"b": [1, 2], "a": "x"}}'), '{"a": "x", "b": [1, 2]}',
          'a jsonb answer comes back as its json text');
SELECT is(current_user::text, 'postgres', 'the caller is itself again after the call');

-- 3. Only the extension's owner may call it: every request role, a service and the shim's login get 42501.
CREATE ROLE sp75_svc LOGIN NOSUPERUSER IN ROLE ama_service;
SELECT is_empty(
    $$SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'sp75_svc', 'ama_authenticator', 'ama_admin']) r
       WHERE has_function_privilege(r, 'ama._call_route(text, oid, jsonb)', 'EXECUTE')$$,
    'no role but the owner may execute ama._call_route');
SET LOCAL ROLE ama_authenticator;
SELECT throws_ok($$SELECT ama._call_route('authenticated', 'ama._body(jsonb)'::regprocedure, '{}')$$, '42501', NULL,
                 'the shim''s login cannot call a route without ama.request_json');
RESET ROLE;

-- 4. ama.request and ama.request_json answer the same envelope.
INSERT INTO ama.users (user_id, plan) VALUES ('75000000-0000-4000-8000-00000000000a', 'basic');
SET LOCAL ROLE ama_authenticator;
SELECT is(ama.request_json('threads.list', 'jwt', NULL, '{"sub": "75000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                           '203.0.113.75', '{}')::jsonb - 'rate',
          ama.request('threads.list', 'jwt', NULL, '{"sub": "75000000-0000-4000-8000-00000000000a", "aud": "authenticated"}',
                      '203.0.113.75', '{}') - 'rate',
          'ama.request is ama.request_json as jsonb');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
