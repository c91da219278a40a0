-- Budget fixtures (docs/performance.md), loaded after bench/api/setup.sql in a throwaway cluster:
-- a route that does nothing (bench.noop), with no rate policy and with the poll's and the agent send's,
-- and wrappers with request_json's header and a growing part of its body. Not for a real database:
-- the routes table's rate_policy is made nullable so that one route can run without the ledger.
GRANT USAGE ON SCHEMA bench TO ama_authenticator, anon, authenticated, service_role;
CREATE FUNCTION bench.noop(args jsonb) RETURNS json LANGUAGE plpgsql AS $$ BEGIN RETURN '{}'::json; END $$;
REVOKE ALL ON FUNCTION bench.noop(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bench.noop(jsonb) TO anon, authenticated, service_role;
ALTER TABLE ama.routes ALTER COLUMN rate_policy DROP NOT NULL;
INSERT INTO ama.routes (route, handler, rate_policy, principals, success_status, description) VALUES
    ('bench.noop',      'bench.noop(jsonb)', NULL,           '{anon,user,agent}', 200, 'budget: does nothing, no rate policy'),
    ('bench.noop_poll', 'bench.noop(jsonb)', 'events_read',  '{anon,user,agent}', 200, 'budget: does nothing, the poll''s policy'),
    ('bench.noop_send', 'bench.noop(jsonb)', 'thread_write', '{anon,user,agent}', 200, 'budget: does nothing, the agent send''s policy');

-- w0: a PL/pgSQL function of the same six arguments that returns at once (the call floor).
CREATE FUNCTION bench.w0(route text, credential_kind text, credential text, claims jsonb, client_ip inet, args jsonb)
RETURNS json LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN NULL; END $$;
-- w1: + SECURITY DEFINER and SET search_path (what every SECURITY DEFINER function of ama carries).
CREATE FUNCTION bench.w1(route text, credential_kind text, credential text, claims jsonb, client_ip inet, args jsonb)
RETURNS json LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN NULL; END $$;
-- w8: request_json's header exactly (SECURITY DEFINER + 8 SET clauses), empty body.
CREATE FUNCTION bench.w8(route text, credential_kind text, credential text, claims jsonb, client_ip inet, args jsonb)
RETURNS json LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET ama.actor_id = '' SET ama.principal_kind = '' SET ama.claims = ''
SET ama.credential_id = '' SET ama.client_ip = '' SET ama.plan = '' SET request.jwt.claims = ''
AS $$ BEGIN RETURN NULL; END $$;
-- w8_begin: + ama._request_begin (route lookup, authentication, rate limit, context settings).
CREATE FUNCTION bench.w8_begin(route text, credential_kind text, credential text, claims jsonb, client_ip inet, args jsonb)
RETURNS json LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET ama.actor_id = '' SET ama.principal_kind = '' SET ama.claims = ''
SET ama.credential_id = '' SET ama.client_ip = '' SET ama.plan = '' SET request.jwt.claims = ''
AS $$
DECLARE
    pre pg_catalog.jsonb := ama._request_begin(route, credential_kind, credential, claims, client_ip);
BEGIN
    IF pre ? 'body' THEN
        RAISE EXCEPTION 'budget: % refused: %', route, pre;
    END IF;
    RETURN NULL;
END
$$;
-- request_nosub: ama.request_json without its EXCEPTION block (no subtransaction), same envelope.
CREATE FUNCTION bench.request_nosub(route text, credential_kind text, credential text, claims jsonb, client_ip inet, args jsonb)
RETURNS json LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET ama.actor_id = '' SET ama.principal_kind = '' SET ama.claims = ''
SET ama.credential_id = '' SET ama.client_ip = '' SET ama.plan = '' SET request.jwt.claims = ''
AS $$
DECLARE
    pre pg_catalog.jsonb := ama._request_begin(route, credential_kind, credential, claims, client_ip);
    result pg_catalog.json;
BEGIN
    IF pre ? 'body' THEN
        RETURN pre::pg_catalog.json;
    END IF;
    result := ama._call_route(pre ->> 'role', (pre ->> 'handler')::pg_catalog.oid, coalesce(args, '{}'::pg_catalog.jsonb));
    RETURN pg_catalog.json_build_object('status', pre -> 'status', 'body', result,
                                        'rate', pre -> 'rate', 'principal', pre -> 'principal');
END
$$;
REVOKE ALL ON FUNCTION bench.w0, bench.w1, bench.w8, bench.w8_begin, bench.request_nosub FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bench.w0, bench.w1, bench.w8, bench.w8_begin, bench.request_nosub TO ama_authenticator;
