-- ============================================================================
-- ama_pg 070: ama.request_json(), the one statement the shim sends per request
-- PL/pgSQL on purpose: the route function is called from here, not from Rust,
-- so its errors keep their exact SQLSTATE (AM403, AM404, ...). They are turned
-- into an error envelope through the shared SQLSTATE-to-HTTP table, so the
-- response still carries the rate-limit state and the audit rows written before
-- the route ran still commit; the route's own writes are rolled back.
-- ama._request_begin() (Rust) authenticates, rate limits and sets the context;
-- ama._call_route() (Rust) switches to the request role, which this function's
-- SECURITY DEFINER exit (or the block's or transaction's abort) switches back,
-- and calls the route function through the function manager.
-- ============================================================================

-- Switches to the request role and calls a route function it may EXECUTE (one jsonb argument; json or jsonb out,
-- checked before the call) through the function manager, answering json: no statement is parsed or planned per request.
-- Executable by nobody but the owner. Rust: route_call::ama_call_route.
CREATE FUNCTION ama._call_route(role text, handler oid, args jsonb) RETURNS json
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'ama_call_route';

-- Handles one HTTP request routed by the shim and answers the envelope as json text; executable by ama_authenticator
-- only. The body is passed through as the route made it (json_agg output is never re-parsed into jsonb). The SET clauses
-- restore every context setting when it returns, so a request's identity never outlives the call, even inside a
-- caller's open transaction.
CREATE FUNCTION ama.request_json(route text, credential_kind text, credential text, claims jsonb,
                                 client_ip inet, args jsonb)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET ama.actor_id = ''
SET ama.principal_kind = ''
SET ama.claims = ''
SET ama.credential_id = ''
SET ama.client_ip = ''
SET ama.plan = ''
SET request.jwt.claims = ''
AS $$
DECLARE
    pre pg_catalog.jsonb := ama._request_begin(route, credential_kind, credential, claims, client_ip);
    result pg_catalog.json;
    state pg_catalog.text;
    msg pg_catalog.text;
    http pg_catalog.record;
BEGIN
    IF pre ? 'body' THEN
        RETURN pre::pg_catalog.json;
    END IF;
    BEGIN
        -- Inside the block: an error's subtransaction abort also switches back from the request role.
        result := ama._call_route(pre ->> 'role', (pre ->> 'handler')::pg_catalog.oid, coalesce(args, '{}'::pg_catalog.jsonb));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        SELECT * INTO http FROM ama._http_error(state);
        IF http.public_message IS NOT NULL THEN
            -- Unexpected errors keep their detail in the server log, not in the response.
            IF http.http_status >= 500 THEN
                RAISE LOG 'ama.request % failed: % %', route, state, msg;
            END IF;
            msg := http.public_message;
        END IF;
        RETURN pg_catalog.json_build_object('status', http.http_status,
                                            'body', pg_catalog.json_build_object('code', http.error_code, 'message', msg),
                                            'sqlstate', state, 'rate', pre -> 'rate', 'principal', pre -> 'principal');
    END;
    RETURN pg_catalog.json_build_object('status', pre -> 'status', 'body', result,
                                        'rate', pre -> 'rate', 'principal', pre -> 'principal');
END
$$;

-- The same request, with the envelope as jsonb (for SQL callers and tests); executable by ama_authenticator only. It
-- carries the same SET clauses (so it is SECURITY DEFINER: only the owner may set them), so it too leaves no context
-- setting behind.
CREATE FUNCTION ama.request(route text, credential_kind text, credential text, claims jsonb,
                            client_ip inet, args jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET ama.actor_id = ''
SET ama.principal_kind = ''
SET ama.claims = ''
SET ama.credential_id = ''
SET ama.client_ip = ''
SET ama.plan = ''
SET request.jwt.claims = ''
AS $$ SELECT ama.request_json(route, credential_kind, credential, claims, client_ip, args)::pg_catalog.jsonb $$;
