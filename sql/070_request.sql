-- ============================================================================
-- ama_pg 070: ama.request(), the one statement the shim sends per request
-- PL/pgSQL on purpose: the route function is called from here, not from Rust,
-- so its errors reach the client with their exact SQLSTATE (AM403, AM404, ...).
-- ama._request_begin() (Rust) authenticates, rate limits and sets the context;
-- ama._become() (Rust) switches to the request role, which this function's
-- SECURITY DEFINER exit (or the transaction's abort) switches back.
-- ============================================================================

-- Handles one HTTP request routed by the shim; executable by ama_authenticator only.
CREATE FUNCTION ama.request(route text, credential_kind text, credential text, claims jsonb,
                            client_ip inet, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    pre jsonb := ama._request_begin(route, credential_kind, credential, claims, client_ip);
    result jsonb;
BEGIN
    IF pre ? 'body' THEN
        RETURN pre;
    END IF;
    PERFORM ama._become(pre ->> 'role');
    EXECUTE format('SELECT %s($1)', (pre ->> 'handler')::oid::regproc)
       INTO result USING coalesce(args, '{}'::jsonb);
    RETURN jsonb_build_object('status', pre -> 'status', 'body', result,
                              'rate', pre -> 'rate', 'principal', pre -> 'principal');
END
$$;
