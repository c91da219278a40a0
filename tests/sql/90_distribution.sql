-- Scale-out checks, without Citus (docs/scale-out.md): the tables to be distributed by thread_id
-- keep every unique index on thread_id, reference tables never point at them, and their policies
-- are keyed on thread_id. The known exceptions are listed here and in the document, each with
-- what replaces it before distribution: a new exception fails this file.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(7);

CREATE TEMP TABLE distributed(relname name PRIMARY KEY) ON COMMIT DROP;
INSERT INTO distributed VALUES ('threads'), ('participants'), ('messages'), ('agent_allowances'),
                               ('visitor_tokens'), ('webhook_subscriptions'), ('webhook_secrets'),
                               ('webhook_deliveries');
CREATE TEMP TABLE reference(relname name PRIMARY KEY) ON COMMIT DROP;
INSERT INTO reference VALUES ('plans'), ('users'), ('actors'), ('agent_profiles'), ('agent_tokens'),
                             ('internal_keys'), ('rate_policies'), ('rate_policy_overrides'),
                             ('routes'), ('event_keys'), ('visitors');

-- 1. Every table of ama has its place in the plan (audit_log stays on the coordinator).
SELECT is_empty(
    $$SELECT relname FROM pg_class
       WHERE relnamespace = 'ama'::regnamespace AND relkind IN ('r', 'p')
         AND relname NOT IN (SELECT relname FROM distributed)
         AND relname NOT IN (SELECT relname FROM reference)
         AND relname <> 'audit_log'$$,
    'every ama table is distributed, a reference table, or the coordinator''s audit log');

-- 2. Each distributed table has the distribution column.
SELECT is_empty(
    $$SELECT d.relname FROM distributed d
       WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = ('ama.' || d.relname)::regclass
                            AND a.attname = 'thread_id' AND NOT a.attisdropped)$$,
    'every distributed table has thread_id');

-- 3. Unique indexes of distributed tables include thread_id, except the five listed in
--    docs/scale-out.md ("Before distribution").
SELECT set_eq(
    $$SELECT i.relname::text FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
       WHERE t.relnamespace = 'ama'::regnamespace AND x.indisunique
         AND t.relname IN (SELECT relname FROM distributed)
         AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = t.oid AND a.attname = 'thread_id'
                            AND a.attnum = ANY (x.indkey))$$,
    ARRAY['messages_message_id_key', 'threads_private_dedupe_idx',
          'threads_workspace_dedupe_idx', 'visitor_tokens_pkey', 'visitor_tokens_token_hash_key'],
    'unique indexes without thread_id are exactly the documented exceptions');

-- 4. Foreign keys between distributed tables go through thread_id.
SELECT is_empty(
    $$SELECT c.conname FROM pg_constraint c
        JOIN pg_class s ON s.oid = c.conrelid
        JOIN pg_class t ON t.oid = c.confrelid
       WHERE c.contype = 'f' AND s.relnamespace = 'ama'::regnamespace
         AND s.relname IN (SELECT relname FROM distributed)
         AND t.relname IN (SELECT relname FROM distributed)
         AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = s.oid AND a.attname = 'thread_id'
                            AND a.attnum = ANY (c.conkey))$$,
    'foreign keys between distributed tables include thread_id');

-- 5. Reference tables never reference a distributed table (Citus refuses it), except the one
--    documented exception.
SELECT set_eq(
    $$SELECT c.conname::text FROM pg_constraint c
        JOIN pg_class s ON s.oid = c.conrelid
        JOIN pg_class t ON t.oid = c.confrelid
       WHERE c.contype = 'f' AND s.relnamespace = 'ama'::regnamespace
         AND s.relname IN (SELECT relname FROM reference)
         AND t.relname IN (SELECT relname FROM distributed)$$,
    ARRAY['visitors_thread_id_fkey'],
    'reference tables point at distributed ones only where documented');

-- 6. Policies on distributed tables that consult membership or another distributed table pass
--    thread_id (so the check runs on the row's own shard); policies on the row's own columns
--    (an owner's allowed_by, say) are shard-local anyway.
SELECT is_empty(
    $$SELECT p.tablename || '.' || p.policyname FROM pg_policies p
       WHERE p.schemaname = 'ama' AND p.tablename IN (SELECT relname FROM distributed)
         AND (coalesce(p.qual, '') || coalesce(p.with_check, ''))
             ~ ('_can_read|_is_participant|_my_caps|\mama\.(' ||
                (SELECT string_agg(relname, '|') FROM distributed) || ')\M')
         AND coalesce(p.qual, '') || coalesce(p.with_check, '') NOT LIKE '%thread_id%'$$,
    'policies on distributed tables that consult membership are keyed on thread_id');

-- 7. No policy on a reference table reads a distributed table directly (it would be a
--    cross-shard query on every row).
SELECT is_empty(
    $$SELECT p.tablename || '.' || p.policyname FROM pg_policies p, distributed d
       WHERE p.schemaname = 'ama' AND p.tablename IN (SELECT relname FROM reference)
         AND (coalesce(p.qual, '') || coalesce(p.with_check, '')) ~ ('\mama\.' || d.relname || '\M')$$,
    'policies on reference tables do not read distributed tables');

SELECT * FROM finish();
ROLLBACK;
