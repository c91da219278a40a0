-- The role surface, as a table SECURITY.md can quote: for anon, authenticated, service_role, a
-- trusted-service login (IN ROLE ama_service), ama_authenticator and ama_admin, exactly which ama
-- functions each may EXECUTE and which tables (and columns) it may touch. The catalog is compared
-- with the expected matrices below in both directions, so a new grant, a lost grant or a new
-- function fails this file until the matrix is updated (privileges inherited through role
-- membership count: ama_admin is a member of the three request roles; the service login inherits
-- ama_service; anon, authenticated, service_role and ama_authenticator are NOINHERIT).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(14);

CREATE ROLE sp85_svc LOGIN NOSUPERUSER IN ROLE ama_service;
CREATE TEMP TABLE roles (ord int, col text, rolname text);
INSERT INTO roles VALUES (1, 'anon', 'anon'), (2, 'auth', 'authenticated'), (3, 'srv', 'service_role'),
                         (4, 'svc', 'sp85_svc'), (5, 'shim', 'ama_authenticator'), (6, 'admin', 'ama_admin');

-- ---------------------------------------------------------------------------
-- Functions: x = may EXECUTE, . = may not.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE expected_functions (fn text, anon text, auth text, srv text, svc text, shim text, admin text);
INSERT INTO expected_functions VALUES
--   function                                                       anon auth srv  svc  shim admin
    -- request context and policy helpers (every role that runs under RLS)
    ('ama.claims()',                                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.actor_id()',                                               'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.uid()',                                                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.principal_kind()',                                         'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.current_plan()',                                           'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.principal_plan()',                                         'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.plan_at_least(text)',                                      'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.require_plan(text)',                                       'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.canonical_capabilities(text[])',                           'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.parse_actor_id(text,text)',                                'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._my_caps(uuid)',                                           'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._is_participant(uuid)',                                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._can_read(uuid)',                                          'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._can_add_participant(uuid)',                               'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._my_owner()',                                              'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._may_run(uuid,text)',                                      'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._may_add_participant(uuid,text,text[])',                   'x', 'x', 'x', 'x', '.', 'x'),
    -- the HTTP API (route handlers) and their helpers (request roles, trusted services)
    ('ama.api_threads_create(jsonb)',                                'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_threads_list(jsonb)',                                  'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_threads_get(jsonb)',                                   'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_threads_set_mode(jsonb)',                              'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_messages_send(jsonb)',                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_messages_agent_send(jsonb)',                           'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_events_poll(jsonb)',                                   'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_webhooks_create(jsonb)',                               'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_webhooks_list(jsonb)',                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_webhooks_delete(jsonb)',                               'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._webhook_subscribe(uuid,text)',                            'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._webhook_json(ama.webhook_subscriptions)',                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_tokens_create(jsonb)',                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_tokens_list(jsonb)',                                   'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_tokens_revoke(jsonb)',                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_agent_get(jsonb)',                                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_agent_put(jsonb)',                                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_public_send(jsonb)',                                   'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_internal_users_put(jsonb)',                            'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_internal_system_message(jsonb)',                       'x', 'x', 'x', 'x', '.', 'x'),
    -- the WebSocket streams' routes and helpers (067)
    ('ama.api_ws_threads(jsonb)',                                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_ws_public(jsonb)',                                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.api_ws_typing(jsonb)',                                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._thread_has_slug(uuid,text)',                              'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._notify_typing(uuid,boolean)',                             'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.post_message(uuid,text,text,text[],jsonb,bigint,bigint)',  'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.issue_agent_token(text,text,timestamp with time zone)',    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.list_agent_tokens()',                                      'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.revoke_agent_token(uuid)',                                 'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.set_capabilities(uuid,text,text[])',                       'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.grant_capabilities(uuid,text,text[])',                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.revoke_capabilities(uuid,text,text[])',                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.allow_agent(uuid,text)',                                   'x', 'x', 'x', 'x', '.', 'x'),
    ('ama.token_hash(text,text)',                                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._token_new(text)',                                         'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._ts(timestamp with time zone)',                            'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._body(jsonb)',                                             'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._check_fields(jsonb,text[],text[])',                       'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._text(jsonb,text,integer,integer)',                        'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._uuid(jsonb,text)',                                        'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._int(jsonb,text,bigint,bigint)',                           'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._number(jsonb,text)',                                      'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._mentions(jsonb)',                                         'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._metadata(jsonb)',                                         'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._mode(jsonb,boolean)',                                     'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._thread_for(jsonb,text)',                                  'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._thread_json(uuid)',                                       'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._message_json(ama.messages)',                              'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._agent_profile_json(ama.agent_profiles)',                  'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._own_message(uuid,uuid,text)',                             'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._ensure_users(uuid[])',                                    'x', 'x', 'x', 'x', '.', 'x'),
    ('ama._seal_private_thread(uuid)',                               'x', 'x', 'x', 'x', '.', 'x'),
    -- trusted services (service_role, ama_service members) and DBAs
    ('ama.upsert_user(uuid,text,text,text)',                         '.', '.', 'x', 'x', '.', 'x'),
    ('ama._provision_user(uuid,text,text)',                          '.', '.', 'x', 'x', '.', 'x'),
    ('ama.verify_agent_token(text)',                                 '.', '.', 'x', 'x', '.', 'x'),
    ('ama.verify_internal_key(text)',                                '.', '.', 'x', 'x', '.', 'x'),
    ('ama._credential_used(text,bytea)',                             '.', '.', 'x', 'x', '.', 'x'),
    ('ama.rate_limit(text,text,text,integer)',                       '.', '.', 'x', 'x', '.', 'x'),
    ('ama.rate_limit_enforce(text,text,text)',                       '.', '.', 'x', 'x', '.', 'x'),
    ('ama._rate_policy_rows()',                                      '.', '.', 'x', 'x', '.', 'x'),
    -- the shim's login role
    ('ama.request(text,text,text,jsonb,inet,jsonb)',                 '.', '.', '.', '.', 'x', '.'),
    ('ama.request_json(text,text,text,jsonb,inet,jsonb)',            '.', '.', '.', '.', 'x', '.'),
    ('ama.events_key()',                                             '.', '.', '.', '.', 'x', '.'),
    ('ama.webhook_claim(integer)',                                   '.', '.', '.', '.', 'x', '.'),
    ('ama.webhook_report(uuid,integer,boolean)',                     '.', '.', '.', '.', 'x', '.'),
    -- DBAs
    ('ama.set_plan(uuid,text)',                                      '.', '.', '.', '.', '.', 'x'),
    ('ama.impersonate(text)',                                        '.', '.', '.', '.', '.', 'x'),
    ('ama.audit_events(timestamp with time zone,integer)',           '.', '.', '.', '.', '.', 'x'),
    ('ama.admin_list_agent_tokens()',                                '.', '.', '.', '.', '.', 'x'),
    ('ama.admin_revoke_agent_token(uuid)',                           '.', '.', '.', '.', '.', 'x'),
    ('ama.create_internal_key(text)',                                '.', '.', '.', '.', '.', 'x'),
    ('ama.revoke_internal_key(text)',                                '.', '.', '.', '.', '.', 'x'),
    ('ama.list_internal_keys()',                                     '.', '.', '.', '.', '.', 'x'),
    ('ama.rate_limit_reset(text,text)',                              '.', '.', '.', '.', '.', 'x'),
    ('ama.rate_limit_ledger()',                                      '.', '.', '.', '.', '.', 'x'),
    ('ama._rate_buckets()',                                          '.', '.', '.', '.', '.', 'x'),
    ('ama._rate_counters()',                                         '.', '.', '.', '.', '.', 'x'),
    ('ama.sqlstate_http_map()',                                      '.', '.', '.', '.', '.', 'x'),
    -- nobody but the extension's own code (SECURITY DEFINER callers, triggers, the planner)
    ('ama._request_begin(text,text,text,jsonb,inet)',                '.', '.', '.', '.', '.', '.'),
    ('ama._call_route(text,oid,jsonb)',                              '.', '.', '.', '.', '.', '.'),
    ('ama._http_error(text)',                                        '.', '.', '.', '.', '.', '.'),
    ('ama._audit(text,text,jsonb)',                                  '.', '.', '.', '.', '.', '.'),
    ('ama._audit_as(text,inet,text,text,jsonb)',                     '.', '.', '.', '.', '.', '.'),
    ('ama._audit_actor()',                                           '.', '.', '.', '.', '.', '.'),
    ('ama._rate_limit_raw(text,text,text,integer)',                  '.', '.', '.', '.', '.', '.'),
    ('ama._post_as_visitor(text,uuid,text,text)',                    '.', '.', '.', '.', '.', '.'),
    ('ama._event_payload(uuid,bigint)',                              '.', '.', '.', '.', '.', '.'),
    ('ama._typing_payload(uuid,text,boolean)',                       '.', '.', '.', '.', '.', '.'),
    ('ama._membership_support(internal)',                            '.', '.', '.', '.', '.', '.'),
    ('ama._bump_cache_generation()',                                 '.', '.', '.', '.', '.', '.'),
    ('ama._assign_thread_seq()',                                     '.', '.', '.', '.', '.', '.'),
    ('ama._notify_message()',                                        '.', '.', '.', '.', '.', '.'),
    ('ama._fill_participant()',                                      '.', '.', '.', '.', '.', '.'),
    ('ama._audit_log_is_append_only()',                              '.', '.', '.', '.', '.', '.'),
    ('ama._agent_profile_plan_guard()',                              '.', '.', '.', '.', '.', '.'),
    ('ama._audit_token_issued()',                                    '.', '.', '.', '.', '.', '.'),
    ('ama._audit_token_revoked()',                                   '.', '.', '.', '.', '.', '.'),
    ('ama._audit_capabilities()',                                    '.', '.', '.', '.', '.', '.'),
    ('ama._plan_change()',                                           '.', '.', '.', '.', '.', '.'),
    ('ama._audit_agent_allowed()',                                   '.', '.', '.', '.', '.', '.'),
    ('ama._agent_token_cap()',                                       '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_check_url(text)',                                 '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_secret_new(uuid)',                                '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_sign(uuid,bytea,text,bigint,text)',               '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_backoff_ms(integer)',                             '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_failed(uuid,uuid,uuid,integer)',                  '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_enqueue()',                                       '.', '.', '.', '.', '.', '.'),
    ('ama._audit_webhook_created()',                                 '.', '.', '.', '.', '.', '.'),
    ('ama._audit_webhook_deleted()',                                 '.', '.', '.', '.', '.', '.'),
    ('ama._audit_webhook_deactivated()',                             '.', '.', '.', '.', '.', '.'),
    ('ama._webhook_registrant_lost_manage()',                        '.', '.', '.', '.', '.', '.');

-- The same matrix read from the catalog (argument types as regprocedure spells them, without spaces after commas).
CREATE TEMP TABLE actual_functions AS
SELECT replace(p.oid::regprocedure::text, ', ', ',') AS fn,
       max(CASE r.col WHEN 'anon' THEN x END) AS anon, max(CASE r.col WHEN 'auth' THEN x END) AS auth,
       max(CASE r.col WHEN 'srv' THEN x END) AS srv, max(CASE r.col WHEN 'svc' THEN x END) AS svc,
       max(CASE r.col WHEN 'shim' THEN x END) AS shim, max(CASE r.col WHEN 'admin' THEN x END) AS admin
  FROM pg_proc p CROSS JOIN roles r,
       LATERAL (SELECT CASE WHEN has_function_privilege(r.rolname, p.oid, 'EXECUTE') THEN 'x' ELSE '.' END AS x) v
 WHERE p.pronamespace = 'ama'::regnamespace
 GROUP BY p.oid;

SELECT is_empty($$SELECT fn FROM actual_functions EXCEPT SELECT fn FROM expected_functions$$,
                'every function in ama is in the expected matrix (a new function must be added to it)');
SELECT is_empty($$SELECT fn FROM expected_functions EXCEPT SELECT fn FROM actual_functions$$,
                'every function in the expected matrix exists');
SELECT is_empty(format($$SELECT a.fn, e.%1$I AS expected, a.%1$I AS actual FROM actual_functions a JOIN expected_functions e USING (fn)
                          WHERE a.%1$I <> e.%1$I ORDER BY 1$$, r.col),
                format('%s (%s): EXECUTE on exactly the expected ama functions', r.rolname, r.col))
  FROM roles r ORDER BY r.ord;

-- ---------------------------------------------------------------------------
-- Tables, views and sequences: * = the whole relation, a column list = those columns only, . = nothing.
-- Privileges not listed (TRUNCATE, REFERENCES, TRIGGER, and anything on internal_keys, visitor_tokens,
-- visitors, event_keys, audit_log and the audit_log sequence, webhook_secrets, webhook_deliveries) are held by none
-- of these roles.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE expected_tables (rel text, priv text, anon text, auth text, srv text, svc text, shim text, admin text);
INSERT INTO expected_tables VALUES
--   relation                  privilege   anon                  auth                                  srv              svc              shim  admin
    ('plans',                  'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('plans',                  'INSERT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('plans',                  'UPDATE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('plans',                  'DELETE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policies',          'SELECT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policies',          'INSERT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policies',          'UPDATE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policies',          'DELETE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policy_overrides',  'SELECT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policy_overrides',  'INSERT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policy_overrides',  'UPDATE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_policy_overrides',  'DELETE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('routes',                 'SELECT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('routes',                 'INSERT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('routes',                 'UPDATE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('routes',                 'DELETE',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_limit_buckets',     'SELECT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('rate_limit_counters',    'SELECT',   '.',                  '.',                                  '.',             '.',             '.',  '*'),
    ('users',                  'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('users',                  'INSERT',   '.',                  '.',                                  '*',             '*',             '.',  '*'),
    ('users',                  'UPDATE',   '.',                  '.',                                  '*',             '*',             '.',  '*'),
    ('actors',                 'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('actors',                 'INSERT',   '.',                  '*',                                  '*',             '*',             '.',  '*'),
    ('actors',                 'UPDATE',   '.',                  '.',                                  'display_name',  'display_name',  '.',  'display_name'),
    ('agent_profiles',         'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('agent_profiles',         'INSERT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('agent_profiles',         'UPDATE',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('agent_profiles',         'DELETE',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('threads',                'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('threads',                'INSERT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('threads',                'UPDATE',   'participation_mode', 'participation_mode,is_archived',     '.',             '.',             '.',  'participation_mode,is_archived'),
    ('participants',           'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('participants',           'INSERT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('participants',           'UPDATE',   'capabilities,last_read_seq', 'capabilities,last_read_seq', 'capabilities,last_read_seq', 'capabilities,last_read_seq', '.', 'capabilities,last_read_seq'),
    ('participants',           'DELETE',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('messages',               'SELECT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('messages',               'INSERT',   '*',                  '*',                                  '*',             '*',             '.',  '*'),
    ('agent_tokens',           'SELECT',   '.',  'token_id,agent_actor_id,owner_user_id,token_prefix,agent_display_name,created_at,expires_at,last_used_at,revoked_at',
                                                                                                       '.',             '.',             '.',
                                                 'token_id,agent_actor_id,owner_user_id,token_prefix,agent_display_name,created_at,expires_at,last_used_at,revoked_at'),
    ('agent_tokens',           'INSERT',   '.',  'agent_actor_id,owner_user_id,token_hash,token_prefix,agent_display_name,expires_at',
                                                                                                       '.',             '.',             '.',
                                                 'agent_actor_id,owner_user_id,token_hash,token_prefix,agent_display_name,expires_at'),
    ('agent_tokens',           'UPDATE',   '.',                  'revoked_at',                         '.',             '.',             '.',  'revoked_at'),
    ('agent_allowances',       'SELECT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('agent_allowances',       'INSERT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('agent_allowances',       'DELETE',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    -- webhook subscriptions: managers (users and agents) under RLS; webhook_secrets and webhook_deliveries: nobody
    ('webhook_subscriptions',  'SELECT',   '.',                  '*',                                  '.',             '.',             '.',  '*'),
    ('webhook_subscriptions',  'DELETE',   '.',                  '*',                                  '.',             '.',             '.',  '*');

-- The catalog, as the same matrix: per relation and privilege, '*' when the relation is granted, else the granted columns.
CREATE TEMP TABLE actual_cells AS
SELECT c.relname AS rel, pv.priv, r.col,
       CASE WHEN has_table_privilege(r.rolname, c.oid, pv.priv) THEN '*'
            WHEN pv.priv IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') THEN
                 (SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND has_column_privilege(r.rolname, c.oid, a.attnum, pv.priv)) END AS cell
  FROM pg_class c
 CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) pv(priv)
 CROSS JOIN roles r
 WHERE c.relnamespace = 'ama'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f');
DELETE FROM actual_cells WHERE cell IS NULL;
CREATE TEMP TABLE expected_cells AS
SELECT e.rel, e.priv, r.col, CASE r.col WHEN 'anon' THEN e.anon WHEN 'auth' THEN e.auth WHEN 'srv' THEN e.srv
                                        WHEN 'svc' THEN e.svc WHEN 'shim' THEN e.shim ELSE e.admin END AS cell
  FROM expected_tables e CROSS JOIN roles r;
DELETE FROM expected_cells WHERE cell = '.';

SELECT is_empty(format($$(SELECT 'unexpected' AS diff, rel, priv, cell FROM actual_cells WHERE col = %1$L
                           EXCEPT SELECT 'unexpected', rel, priv, cell FROM expected_cells WHERE col = %1$L)
                          UNION ALL
                          (SELECT 'missing', rel, priv, cell FROM expected_cells WHERE col = %1$L
                           EXCEPT SELECT 'missing', rel, priv, cell FROM actual_cells WHERE col = %1$L)
                          ORDER BY 2, 3$$, r.col),
                format('%s (%s): exactly the expected table, view and column privileges in ama', r.rolname, r.col))
  FROM roles r ORDER BY r.ord;

SELECT * FROM finish();
ROLLBACK;
