-- ============================================================================
-- ama_pg 030: row-level security
-- RLS is the last line of defence: every policy is keyed on the request context
-- (ama.actor_id(), ama.principal_kind()), which no session can forge. Policies
-- are named after who may do what. Helpers that must look past RLS (to avoid
-- policy recursion) are SECURITY DEFINER, STABLE, and take only a thread id.
-- Context calls are wrapped in (SELECT ...) so they are evaluated once per query.
-- ============================================================================

-- Capabilities of the current actor in one thread; NULL when it does not take part.
CREATE FUNCTION ama._my_caps(thread uuid) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT p.capabilities FROM ama.participants p
         WHERE p.thread_id = thread AND p.actor_id = ama.actor_id());
END
$$;

-- Planner support for the membership helpers below: selectivity 1, so a policy built on them keeps the owner's plan. Rust: caps::ama_membership_support.
CREATE FUNCTION ama._membership_support(internal) RETURNS internal
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'ama_membership_support';

-- Whether the current actor takes part in a thread (with any capabilities): one participants primary-key probe, remembered for the statement's snapshot. Rust: caps::ama_is_participant.
CREATE FUNCTION ama._is_participant(thread uuid) RETURNS boolean
LANGUAGE c STABLE STRICT PARALLEL SAFE
SUPPORT ama._membership_support
AS 'MODULE_PATHNAME', 'ama_is_participant';

-- Whether the current actor holds read in a thread, for the messages read policy; probed and remembered like _is_participant. Rust: caps::ama_can_read.
CREATE FUNCTION ama._can_read(thread uuid) RETURNS boolean
LANGUAGE c STABLE STRICT PARALLEL SAFE
SUPPORT ama._membership_support
AS 'MODULE_PATHNAME', 'ama_can_read';

-- Whether the current actor may add participants: it manages the thread, or created it and it has no participant yet (rows made in a subtransaction included).
CREATE FUNCTION ama._can_add_participant(thread uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT 'manage' = ANY (coalesce(ama._my_caps(thread), '{}'))
            OR EXISTS (SELECT 1 FROM ama.threads t
                        WHERE t.thread_id = thread AND t.created_by = ama.actor_id()
                          AND NOT EXISTS (SELECT 1 FROM ama.participants p WHERE p.thread_id = t.thread_id)));
END
$$;

-- The user who owns the current actor: a user owns itself, an agent belongs to its owner; NULL for others.
CREATE FUNCTION ama._my_owner() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT a.owner_user_id FROM ama.actors a
         WHERE a.actor_id = ama.actor_id() AND a.kind IN ('user', 'agent'));
END
$$;

-- Whether an actor may hold run in a thread: an agent of the current actor's owner, of the thread's owner, or one its owner allowed in.
CREATE FUNCTION ama._may_run(thread uuid, actor text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT coalesce((
            SELECT a.kind = 'agent'
                   AND (a.owner_user_id = ama._my_owner()
                        OR a.owner_user_id = (SELECT t.owner_user_id FROM ama.threads t WHERE t.thread_id = thread)
                        OR EXISTS (SELECT 1 FROM ama.agent_allowances w
                                    WHERE w.thread_id = thread AND w.agent_actor_id = a.actor_id))
              FROM ama.actors a WHERE a.actor_id = actor), false));
END
$$;

-- Whether the current actor may add an actor to a thread (managing it is not enough: not anyone, not another owner's agent with run):
-- users may be added by users and agents; an agent only by its owner's side or once its owner allowed it in; a visitor never.
CREATE FUNCTION ama._may_add_participant(thread uuid, actor text, caps text[]) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT coalesce((
            SELECT CASE a.kind
                       WHEN 'user' THEN ama.principal_kind() IN ('user', 'agent')
                       WHEN 'agent' THEN a.owner_user_id = ama._my_owner()
                                         OR EXISTS (SELECT 1 FROM ama.agent_allowances w
                                                     WHERE w.thread_id = thread AND w.agent_actor_id = a.actor_id)
                       ELSE false END
              FROM ama.actors a WHERE a.actor_id = actor), false)
           AND (NOT 'run' = ANY (coalesce(caps, '{}')) OR ama._may_run(thread, actor)));
END
$$;

-- The current principal's plan (an agent acts on its owner's plan), NULL for others.
CREATE FUNCTION ama.principal_plan() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT u.plan FROM ama.actors a JOIN ama.users u ON u.user_id = a.owner_user_id
         WHERE a.actor_id = ama.actor_id() AND a.kind IN ('user', 'agent'));
END
$$;

-- Whether the current principal's plan ranks at least as high as the named plan.
CREATE FUNCTION ama.plan_at_least(needed text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT coalesce((SELECT have.rank >= want.rank
                           FROM ama.plans have, ama.plans want
                          WHERE have.plan = ama.principal_plan() AND want.plan = needed), false));
END
$$;

-- plans: readable by everyone; changed by DBAs only (no write policy).
CREATE POLICY everyone_reads_plans ON ama.plans FOR SELECT USING (true);

-- users: a user reads their own row.
CREATE POLICY users_read_themselves ON ama.users FOR SELECT
    USING (user_id = (SELECT ama.uid()));

-- users: trusted services read, create and update users (plan changes included).
CREATE POLICY services_manage_users ON ama.users FOR ALL
    USING ((SELECT ama.principal_kind()) = 'service')
    WITH CHECK ((SELECT ama.principal_kind()) = 'service');

-- actors: an actor reads itself, a user reads the agents they own.
CREATE POLICY actors_read_themselves_and_owned_agents ON ama.actors FOR SELECT
    USING (actor_id = (SELECT ama.actor_id()) OR owner_user_id = (SELECT ama.uid()));

-- actors: a user creates agents owned by themselves.
CREATE POLICY users_create_own_agents ON ama.actors FOR INSERT
    WITH CHECK (kind = 'agent' AND owner_user_id = (SELECT ama.uid()));

-- actors: trusted services manage user actors.
CREATE POLICY services_manage_actors ON ama.actors FOR ALL
    USING ((SELECT ama.principal_kind()) = 'service')
    WITH CHECK ((SELECT ama.principal_kind()) = 'service');

-- agent_profiles: a user reads their own profile whatever the plan (the API still needs starter to show it).
CREATE POLICY users_read_own_agent_profile ON ama.agent_profiles FOR SELECT
    USING (user_id = (SELECT ama.uid()));

-- agent_profiles: a user on any plan may switch their public page off (a downgraded owner too); the guard trigger keeps the rest unchanged.
CREATE POLICY users_switch_off_own_agent_profile ON ama.agent_profiles FOR UPDATE
    USING (user_id = (SELECT ama.uid()))
    WITH CHECK (user_id = (SELECT ama.uid()) AND NOT is_active);

-- agent_profiles: a starter user reads and writes their own profile, pointing only at an agent they own.
CREATE POLICY starter_users_manage_own_agent_profile ON ama.agent_profiles FOR ALL
    USING (user_id = (SELECT ama.uid()) AND (SELECT ama.plan_at_least('starter')))
    WITH CHECK (user_id = (SELECT ama.uid()) AND (SELECT ama.plan_at_least('starter'))
                AND EXISTS (SELECT 1 FROM ama.actors a
                             WHERE a.actor_id = agent_profiles.agent_actor_id
                               AND a.kind = 'agent' AND a.owner_user_id = (SELECT ama.uid())));

-- threads: participants see the threads they take part in.
CREATE POLICY participants_read_threads ON ama.threads FOR SELECT
    USING (EXISTS (SELECT 1 FROM ama.participants p
                    WHERE p.thread_id = threads.thread_id AND p.actor_id = (SELECT ama.actor_id())));

-- threads: a creator sees the thread it is creating, until its participant rows exist (inside savepoints too).
CREATE POLICY creators_read_threads_they_create ON ama.threads FOR SELECT
    USING (created_by = (SELECT ama.actor_id()) AND ama._can_add_participant(thread_id));

-- threads: users and agents create private threads in their own name; the dedupe key is set by ama._seal_private_thread() from the real participants, so no caller can squat another pair's key.
CREATE POLICY users_and_agents_create_private_threads ON ama.threads FOR INSERT
    WITH CHECK (thread_type = 'private'
                AND participant_key IS NULL
                AND owner_user_id IS NOT DISTINCT FROM (SELECT ama._my_owner())
                AND created_by = (SELECT ama.actor_id())
                AND (SELECT ama.principal_kind()) IN ('user', 'agent'));

-- threads: a user creates the workspace thread with their own agent.
CREATE POLICY users_create_own_workspace_threads ON ama.threads FOR INSERT
    WITH CHECK (thread_type = 'workspace'
                AND owner_user_id = (SELECT ama.uid())
                AND participant_key = 'workspace:' || (SELECT ama.uid())::text
                AND created_by = (SELECT ama.actor_id()));

-- threads: holders of manage change the mode (column privileges limit what else).
CREATE POLICY managers_update_threads ON ama.threads FOR UPDATE
    USING ('manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')))
    WITH CHECK ('manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')));

-- participants: an actor sees its own rows, and the other participants of its threads. One policy,
-- cheap test first: separate policies let the planner put the per-row membership call first.
CREATE POLICY participants_read_own_and_co_participants ON ama.participants FOR SELECT
    USING (actor_id = (SELECT ama.actor_id()) OR ama._is_participant(thread_id));

-- participants: managers (or a creator in its creating transaction) add participants their owners allow in (see ama._may_add_participant).
CREATE POLICY managers_add_participants ON ama.participants FOR INSERT
    WITH CHECK (ama._can_add_participant(thread_id) AND ama._may_add_participant(thread_id, actor_id, capabilities));

-- participants: user and agent managers change capabilities; run only for agents that may hold it (a visitor's manage covers the mode only).
CREATE POLICY managers_change_capabilities ON ama.participants FOR UPDATE
    USING ('manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')))
    WITH CHECK ('manage' = ANY (coalesce(ama._my_caps(thread_id), '{}'))
                AND (SELECT ama.principal_kind()) IN ('user', 'agent')
                AND (NOT 'run' = ANY (capabilities) OR ama._may_run(thread_id, actor_id)));

-- participants: an actor updates its own read marker, never its own capabilities (no participant grants itself manage).
CREATE POLICY actors_update_own_read_marker ON ama.participants FOR UPDATE
    USING (actor_id = (SELECT ama.actor_id()))
    WITH CHECK (actor_id = (SELECT ama.actor_id())
                AND capabilities IS NOT DISTINCT FROM ama._my_caps(thread_id));

-- participants: managers remove participants.
CREATE POLICY managers_remove_participants ON ama.participants FOR DELETE
    USING ('manage' = ANY (coalesce(ama._my_caps(thread_id), '{}')));

-- messages: participants holding read see the thread's messages. The test is per row but costs one
-- participants primary-key probe per thread and statement (ama._can_read remembers it), so reading a
-- thread's latest page keeps the owner's plan, a backward index scan that stops after the page, and
-- does not grow with the number of threads the reader is in.
CREATE POLICY readers_read_messages ON ama.messages FOR SELECT
    USING (ama._can_read(thread_id));

-- messages: holders of send post in their own name, users as user and agents as assistant.
CREATE POLICY senders_post_messages ON ama.messages FOR INSERT
    WITH CHECK (sender_id = (SELECT ama.actor_id())
                AND role = CASE (SELECT ama.principal_kind())
                               WHEN 'user' THEN 'user' WHEN 'visitor' THEN 'user'
                               WHEN 'agent' THEN 'assistant' END
                AND 'send' = ANY (coalesce(ama._my_caps(thread_id), '{}')));

-- messages: trusted services post system messages into any thread.
CREATE POLICY services_post_system_messages ON ama.messages FOR INSERT
    WITH CHECK ((SELECT ama.principal_kind()) = 'service'
                AND role = 'system'
                AND sender_id = (SELECT ama.actor_id()));

-- agent_tokens: a user lists their own tokens (column privileges hide the hash).
CREATE POLICY owners_read_own_tokens ON ama.agent_tokens FOR SELECT
    USING (owner_user_id = (SELECT ama.uid()));

-- agent_tokens: a starter user issues tokens for agents they own.
CREATE POLICY starter_owners_issue_tokens ON ama.agent_tokens FOR INSERT
    WITH CHECK (owner_user_id = (SELECT ama.uid())
                AND (SELECT ama.plan_at_least('starter'))
                AND EXISTS (SELECT 1 FROM ama.actors a
                             WHERE a.actor_id = agent_tokens.agent_actor_id
                               AND a.kind = 'agent' AND a.owner_user_id = (SELECT ama.uid())));

-- agent_tokens: a user revokes their own tokens, for good (revoked_at never goes back to NULL).
CREATE POLICY owners_revoke_own_tokens ON ama.agent_tokens FOR UPDATE
    USING (owner_user_id = (SELECT ama.uid()))
    WITH CHECK (owner_user_id = (SELECT ama.uid()) AND revoked_at IS NOT NULL);

-- agent_allowances: an owner allows their own agent into a thread they take part in.
CREATE POLICY owners_allow_own_agents ON ama.agent_allowances FOR INSERT
    WITH CHECK (allowed_by = (SELECT ama.uid())
                AND EXISTS (SELECT 1 FROM ama.actors a
                             WHERE a.actor_id = agent_allowances.agent_actor_id
                               AND a.kind = 'agent' AND a.owner_user_id = (SELECT ama.uid()))
                AND ama._is_participant(thread_id));

-- agent_allowances: an owner sees and withdraws their own allowances.
CREATE POLICY owners_read_own_allowances ON ama.agent_allowances FOR SELECT
    USING (allowed_by = (SELECT ama.uid()));

-- agent_allowances: an owner withdraws an allowance (participants already added stay until a manager removes them).
CREATE POLICY owners_withdraw_own_allowances ON ama.agent_allowances FOR DELETE
    USING (allowed_by = (SELECT ama.uid()));

-- internal_keys, visitor_tokens, visitors, event_keys, audit_log, rate tables: no policy, so request roles
-- see nothing; they are reached only through the SECURITY DEFINER API in 050/060.

-- plans: DBAs edit them directly (table grants in 090_grants.sql); the rate tables' policies are in 040_ratelimit.sql.
CREATE POLICY admins_manage_plans ON ama.plans FOR ALL TO ama_admin USING (true) WITH CHECK (true);

-- Assigns thread_seq under the thread's row lock (no gaps, no duplicates); first refuses a sender without send, so it never locks others' threads before RLS runs and its AM404 cannot probe ids.
CREATE FUNCTION ama._assign_thread_seq() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A service posts only in its own name, so a service login without a context cannot tell existing thread ids from
    -- unknown ones by the error; a superuser's bulk load (no context) is not checked.
    IF ama.principal_kind() = 'service' AND ama.actor_id() IS DISTINCT FROM NEW.sender_id
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'new row violates row-level security policy for table "messages"';
    END IF;
    IF ama.principal_kind() <> 'service' AND NOT 'send' = ANY (coalesce(ama._my_caps(NEW.thread_id), '{}')) THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'new row violates row-level security policy for table "messages"';
    END IF;
    UPDATE ama.threads
       SET last_seq = last_seq + 1,
           last_message_at = now(),
           last_message_preview = left(NEW.content, 200)
     WHERE thread_id = NEW.thread_id
    RETURNING last_seq INTO NEW.thread_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AM404', MESSAGE = 'thread not found';
    END IF;
    NEW.server_seq_at_submit := NEW.thread_seq - 1;
    NEW.created_at := now();
    RETURN NEW;
END
$$;

-- Every new message takes the next thread_seq.
CREATE TRIGGER messages_assign_thread_seq BEFORE INSERT ON ama.messages
    FOR EACH ROW EXECUTE FUNCTION ama._assign_thread_seq();

-- Keeps the audit log append-only, for every role including the owner.
CREATE FUNCTION ama._audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'ama.audit_log is append-only';
END
$$;

-- Rejects UPDATE and DELETE on the audit log.
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON ama.audit_log
    FOR EACH ROW EXECUTE FUNCTION ama._audit_log_is_append_only();

-- Keeps a downgraded owner's profile as it is: below starter, a user may only switch the page off.
CREATE FUNCTION ama._agent_profile_plan_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ama.principal_kind() = 'user' AND NOT ama.plan_at_least('starter')
       AND (NEW.is_active
            OR (NEW.user_id, NEW.agent_actor_id, NEW.custom_slug, NEW.display_name, NEW.agent_name, NEW.welcome_message)
               IS DISTINCT FROM (OLD.user_id, OLD.agent_actor_id, OLD.custom_slug, OLD.display_name, OLD.agent_name, OLD.welcome_message)) THEN
        RAISE EXCEPTION USING ERRCODE = 'AM403', MESSAGE = 'this needs the starter plan or higher',
            HINT = 'below starter the agent profile can only be switched off';
    END IF;
    RETURN NEW;
END
$$;

-- Below starter, profile updates may only switch the page off.
CREATE TRIGGER agent_profiles_plan_guard BEFORE UPDATE ON ama.agent_profiles
    FOR EACH ROW EXECUTE FUNCTION ama._agent_profile_plan_guard();

-- Rejects TRUNCATE on the audit log.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON ama.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ama._audit_log_is_append_only();
