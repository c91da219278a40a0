-- ============================================================================
-- ama_pg 010: tables
-- Every table lives in schema ama and has row-level security enabled AND
-- forced, so even the owner's non-superuser sessions go through the policies
-- in 030_policies.sql. User data is registered with pg_extension_config_dump
-- so pg_dump keeps it.
-- ============================================================================

-- Plans are data, ordered by rank, so a new tier is one INSERT.
CREATE TABLE ama.plans (
    plan         text PRIMARY KEY CHECK (plan ~ '^[a-z][a-z0-9_]{0,31}$'),
    rank         integer NOT NULL UNIQUE,
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    -- Active agent tokens a user on this plan may hold; 0 means the plan has no agent tokens, and
    -- agent tokens of its users' agents are refused at request time (a downgrade takes effect at once).
    max_agent_tokens integer NOT NULL DEFAULT 0 CHECK (max_agent_tokens BETWEEN 0 AND 10000)
);
ALTER TABLE ama.plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.plans FORCE ROW LEVEL SECURITY;

-- The two documented tiers.
INSERT INTO ama.plans (plan, rank, display_name, max_agent_tokens) VALUES ('basic', 0, 'Basic', 0), ('starter', 10, 'Starter', 25);

-- People who sign in through Supabase Auth; user_id is the JWT's sub.
CREATE TABLE ama.users (
    user_id      uuid PRIMARY KEY,
    email        text CHECK (length(email) <= 320),
    display_name text CHECK (length(display_name) <= 200),
    plan         text NOT NULL DEFAULT 'basic' REFERENCES ama.plans (plan) ON UPDATE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ama.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.users FORCE ROW LEVEL SECURITY;

-- Everyone who can speak in a thread: user:<uuid>, agent:<uuid>, visitor:<uuid>, service:<name>.
CREATE TABLE ama.actors (
    actor_id      text PRIMARY KEY CHECK (actor_id ~ '^(user|agent|visitor):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    kind          text NOT NULL CHECK (kind IN ('user', 'agent', 'visitor')),
    owner_user_id uuid REFERENCES ama.users (user_id) ON DELETE CASCADE,
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (split_part(actor_id, ':', 1) = kind),
    CHECK (kind = 'visitor' OR owner_user_id IS NOT NULL)
);
CREATE INDEX actors_owner_idx ON ama.actors (owner_user_id);
ALTER TABLE ama.actors ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.actors FORCE ROW LEVEL SECURITY;

-- A user's own agent profile (/owner/agent); the public link is custom_slug.
CREATE TABLE ama.agent_profiles (
    user_id         uuid PRIMARY KEY REFERENCES ama.users (user_id) ON DELETE CASCADE,
    agent_actor_id  text NOT NULL UNIQUE REFERENCES ama.actors (actor_id),
    custom_slug     text UNIQUE CHECK (custom_slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    display_name    text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    agent_name      text NOT NULL DEFAULT '' CHECK (length(agent_name) <= 200),
    welcome_message text NOT NULL DEFAULT '' CHECK (length(welcome_message) <= 5000),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ama.agent_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.agent_profiles FORCE ROW LEVEL SECURITY;

-- Threads; last_seq is the per-thread message counter, bumped under the row lock.
CREATE TABLE ama.threads (
    thread_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_type          text NOT NULL CHECK (thread_type IN ('public', 'workspace', 'private')),
    participation_mode   text NOT NULL DEFAULT 'open' CHECK (participation_mode IN ('open', 'invocation_only')),
    is_archived          boolean NOT NULL DEFAULT false,
    owner_user_id        uuid REFERENCES ama.users (user_id) ON DELETE CASCADE,
    created_by           text NOT NULL,
    participant_key      text,
    last_seq             bigint NOT NULL DEFAULT 0,
    last_message_at      timestamptz,
    last_message_preview text,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX threads_private_dedupe_idx ON ama.threads (participant_key) WHERE thread_type = 'private';
CREATE UNIQUE INDEX threads_workspace_dedupe_idx ON ama.threads (participant_key) WHERE thread_type = 'workspace';
ALTER TABLE ama.threads ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.threads FORCE ROW LEVEL SECURITY;

-- Who takes part in which thread, with canonical capabilities.
CREATE TABLE ama.participants (
    thread_id        uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    actor_id         text NOT NULL REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    participant_kind text NOT NULL CHECK (participant_kind IN ('user', 'agent', 'visitor')),
    display_name     text NOT NULL DEFAULT '',
    capabilities     text[] NOT NULL DEFAULT '{}' CHECK (capabilities <@ ARRAY['read', 'send', 'run', 'manage']),
    last_read_seq    bigint NOT NULL DEFAULT 0,
    joined_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, actor_id)
);
-- Finds an actor's threads (thread list) with an index-only scan, capabilities included.
CREATE INDEX participants_actor_idx ON ama.participants (actor_id, thread_id) INCLUDE (capabilities);
ALTER TABLE ama.participants ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.participants FORCE ROW LEVEL SECURITY;

-- Messages; thread_seq is assigned by a trigger and has no gaps per thread.
CREATE TABLE ama.messages (
    message_id           uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    thread_id            uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    thread_seq           bigint NOT NULL DEFAULT 0,
    sender_id            text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content              text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 5000),
    mentions             text[] NOT NULL DEFAULT '{}',
    client_message_id    text CHECK (length(client_message_id) BETWEEN 1 AND 200),
    metadata             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object' AND length(metadata::text) <= 16384),
    base_seq             bigint,
    latest_seen_seq      bigint,
    server_seq_at_submit bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, thread_seq)
);
CREATE UNIQUE INDEX messages_idempotency_idx ON ama.messages (thread_id, sender_id, client_message_id) WHERE client_message_id IS NOT NULL;
ALTER TABLE ama.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.messages FORCE ROW LEVEL SECURITY;

-- External agent tokens: only the SHA-256 of the raw token is stored.
CREATE TABLE ama.agent_tokens (
    token_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_actor_id     text NOT NULL REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    owner_user_id      uuid NOT NULL REFERENCES ama.users (user_id) ON DELETE CASCADE,
    token_hash         bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    token_prefix       text NOT NULL CHECK (token_prefix ~ '^ama_eat_[0-9a-f]{4}$'),
    agent_display_name text NOT NULL DEFAULT '' CHECK (length(agent_display_name) <= 200),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    last_used_at       timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX agent_tokens_owner_idx ON ama.agent_tokens (owner_user_id);
ALTER TABLE ama.agent_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.agent_tokens FORCE ROW LEVEL SECURITY;

-- Internal API keys for AMA2's own services; several may be active at once.
CREATE TABLE ama.internal_keys (
    key_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
ALTER TABLE ama.internal_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.internal_keys FORCE ROW LEVEL SECURITY;

-- Visitor tokens, each valid for one public thread only.
CREATE TABLE ama.visitor_tokens (
    token_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    visitor_actor_id text NOT NULL REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    thread_id        uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    email_hash       bytea NOT NULL,
    token_hash       bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    token_prefix     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz,
    last_used_at     timestamptz,
    revoked_at       timestamptz
);
ALTER TABLE ama.visitor_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.visitor_tokens FORCE ROW LEVEL SECURITY;

-- Visitors of a public agent, found again by (agent, hash of email).
CREATE TABLE ama.visitors (
    agent_actor_id   text NOT NULL REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    email_hash       bytea NOT NULL,
    visitor_actor_id text NOT NULL UNIQUE REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    thread_id        uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_actor_id, email_hash)
);
ALTER TABLE ama.visitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.visitors FORCE ROW LEVEL SECURITY;

-- Agents their owners allowed into a thread, so a manager of that thread may add them (with run).
CREATE TABLE ama.agent_allowances (
    thread_id      uuid NOT NULL REFERENCES ama.threads (thread_id) ON DELETE CASCADE,
    agent_actor_id text NOT NULL REFERENCES ama.actors (actor_id) ON DELETE CASCADE,
    allowed_by     uuid NOT NULL REFERENCES ama.users (user_id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, agent_actor_id)
);
ALTER TABLE ama.agent_allowances ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.agent_allowances FORCE ROW LEVEL SECURITY;

-- The key that seals live-event notifications (one row), so LISTEN ama_events reveals no thread id to other roles.
CREATE TABLE ama.event_keys (
    key_id     smallint PRIMARY KEY DEFAULT 1 CHECK (key_id = 1),
    key        bytea NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ama.event_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.event_keys FORCE ROW LEVEL SECURITY;

-- Append-only log of security events; never holds a raw token, key or JWT.
CREATE TABLE ama.audit_log (
    audit_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    event     text NOT NULL CHECK (event IN ('token_issued', 'token_revoked', 'key_created', 'key_revoked',
                                             'key_used', 'access_denied', 'auth_failed', 'rate_limited',
                                             'plan_changed', 'capabilities_changed', 'impersonation',
                                             'agent_allowed', 'webhook_created', 'webhook_deleted',
                                             'webhook_deactivated')),
    actor_id  text,
    subject   text,
    client_ip inet,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON ama.audit_log (at);
ALTER TABLE ama.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE ama.audit_log FORCE ROW LEVEL SECURITY;

-- pg_dump keeps user data; the two seeded plans are excluded by the filter.
SELECT pg_catalog.pg_extension_config_dump('ama.plans', 'WHERE rank NOT IN (0, 10)');
SELECT pg_catalog.pg_extension_config_dump('ama.users', '');
SELECT pg_catalog.pg_extension_config_dump('ama.actors', '');
SELECT pg_catalog.pg_extension_config_dump('ama.agent_profiles', '');
SELECT pg_catalog.pg_extension_config_dump('ama.threads', '');
SELECT pg_catalog.pg_extension_config_dump('ama.participants', '');
SELECT pg_catalog.pg_extension_config_dump('ama.messages', '');
SELECT pg_catalog.pg_extension_config_dump('ama.agent_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('ama.internal_keys', '');
SELECT pg_catalog.pg_extension_config_dump('ama.visitor_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('ama.visitors', '');
SELECT pg_catalog.pg_extension_config_dump('ama.agent_allowances', '');
SELECT pg_catalog.pg_extension_config_dump('ama.audit_log', '');
