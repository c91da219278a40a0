-- Revocation holds on the very next call, on this connection and on another one (dblink).
-- Not timed. Prints one line per check.
\set ON_ERROR_STOP 1
SELECT raw AS tok FROM bench.tokens WHERE i = 1 \gset
SELECT 'before revoke, this connection: verified ' || token_id AS check FROM ama.verify_agent_token(:'tok');
\getenv superuser_password SUPERUSER_PASSWORD
SELECT 'second connection (dblink): ' || bench.dblink_connect('other', 'host=' || host(inet_server_addr()) || ' port=' || inet_server_port() || ' dbname=' || current_database() || ' user=' || current_user || ' password=' || :'superuser_password');
SELECT 'before revoke, other connection: verified ' || v.token_id AS check
  FROM bench.dblink('other', format('SELECT token_id FROM ama.verify_agent_token(%L)', :'tok')) AS v(token_id text);
-- revoke from the other connection (committed there)
SELECT 'revoked from the other connection: ' ||
       (SELECT r FROM bench.dblink('other', format(
           'SELECT ama.admin_revoke_agent_token(token_id::uuid) FROM ama.verify_agent_token(%L)', :'tok')) AS v(r boolean)) AS check;
DO $$
DECLARE
    tok text := (SELECT raw FROM bench.tokens WHERE i = 1);
BEGIN
    BEGIN
        PERFORM * FROM ama.verify_agent_token(tok);
        RAISE NOTICE 'FAIL: revoked token still verified on this connection';
    EXCEPTION WHEN SQLSTATE '28000' THEN
        RAISE NOTICE 'after revoke, this connection, very next call: rejected with SQLSTATE 28000 (OK)';
    END;
    BEGIN
        PERFORM * FROM bench.verify_agent_token_plpgsql(tok);
        RAISE NOTICE 'FAIL: revoked token still verified by the PL/pgSQL baseline';
    EXCEPTION WHEN SQLSTATE '28000' THEN
        RAISE NOTICE 'after revoke, PL/pgSQL baseline: rejected with SQLSTATE 28000 (OK)';
    END;
END
$$;
SELECT 'after revoke, other connection, very next call: ' || coalesce(
    (SELECT CASE status WHEN 'DO' THEN 'rejected with SQLSTATE 28000 (OK)' ELSE status END FROM bench.dblink('other', format(
        'DO $x$ BEGIN PERFORM * FROM ama.verify_agent_token(%L); RAISE EXCEPTION ''still valid''; EXCEPTION WHEN SQLSTATE ''28000'' THEN NULL; END $x$', :'tok')) AS v(status text)),
    'FAIL') AS check;
SELECT bench.dblink_disconnect('other') \g /dev/null
