-- ============================================================================
-- ama_pg 070: ama.request(), the one statement the shim sends per request
-- PL/pgSQL on purpose: the route function is called from here, not from Rust,
-- so its errors keep their exact SQLSTATE (AM403, AM404, ...). They are turned
-- into an error envelope through the shared SQLSTATE-to-HTTP table, so the
-- response still carries the rate-limit state and the audit rows written before
-- the route ran still commit; the route's own writes are rolled back.
-- ama._request_begin() (Rust) authenticates, rate limits and sets the context;
-- ama._become() (Rust) switches to the request role, which this function's
-- SECURITY DEFINER exit (or the transaction's abort) switches back.
-- ============================================================================

-- Handles one HTTP request routed by the shim; executable by ama_authenticator only. The SET clauses restore every context
-- setting when it returns, so a request's identity never outlives the call, even inside a caller's open transaction.
CREATE FUNCTION ama.request(route text, credential_kind text, credential text, claims jsonb,
                            client_ip inet, args jsonb)
RETURNS jsonb
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
    result pg_catalog.jsonb;
    state pg_catalog.text;
    msg pg_catalog.text;
    http pg_catalog.record;
BEGIN
    IF pre ? 'body' THEN
        RETURN pre;
    END IF;
    BEGIN
        -- Inside the block: an error's subtransaction abort also switches back from the request role.
        PERFORM ama._become(pre ->> 'role');
        EXECUTE format('SELECT %s($1)', (pre ->> 'handler')::oid::regproc)
           INTO result USING coalesce(args, '{}'::jsonb);
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
        RETURN jsonb_build_object('status', http.http_status,
                                  'body', jsonb_build_object('code', http.error_code, 'message', msg),
                                  'sqlstate', state, 'rate', pre -> 'rate', 'principal', pre -> 'principal');
    END;
    RETURN jsonb_build_object('status', pre -> 'status', 'body', result,
                              'rate', pre -> 'rate', 'principal', pre -> 'principal');
END
$$;
