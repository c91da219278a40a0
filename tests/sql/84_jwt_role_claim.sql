-- A user always acts as authenticated: a signed JWT's role claim (even service_role) never reaches
-- Supabase-style policies that read request.jwt.claims ->> 'role' (auth.role()).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(3);

-- A route whose handler reports the Supabase claims and the role it runs as (rolled back at the end).
CREATE FUNCTION public.tap_claims_echo(args jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_build_object('jwt', current_setting('request.jwt.claims', true)::jsonb, 'role', current_user) $$;
GRANT EXECUTE ON FUNCTION public.tap_claims_echo(jsonb) TO authenticated;
INSERT INTO ama.routes (route, handler, rate_policy, principals) VALUES
    ('tap.claims', 'public.tap_claims_echo(jsonb)', 'reads', '{user}');

SET LOCAL ROLE ama_authenticator;
SELECT ama.request('tap.claims', 'jwt', NULL,
                   '{"sub": "84000000-0000-4000-8000-00000000000a", "aud": "authenticated", "role": "service_role"}',
                   '203.0.113.84', '{}') AS r \gset
RESET ROLE;

SELECT is((:'r'::jsonb) ->> 'status', '200', 'the JWT request is served');
SELECT is((:'r'::jsonb) -> 'body' -> 'jwt' ->> 'role', 'authenticated',
          'request.jwt.claims carries role authenticated, whatever role the token claimed');
SELECT is((:'r'::jsonb) -> 'body' ->> 'role', 'authenticated', 'the route runs as authenticated');

SELECT * FROM finish();
ROLLBACK;
