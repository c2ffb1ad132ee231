-- People hardening (issue 9, items 1, 6, 7 and 8): HR's view of the company's people, the
-- practitioner network's identities, guard triggers that test privilege positively, and
-- one-way state changes the column grants left reversible.
--
-- Threats closed and the rules that close them:
-- * HR knows the org chart (every department's headcount), can ask as often as it likes and can
--   compare answers. Live membership counts per department or role therefore tell HR who signed
--   up: a one-person department turning into a suppressed cell, a total moving by one, or a
--   department whose visible count equals its headcount. `member_summary` now returns ONE
--   company-wide figure, for the last COMPLETE calendar month (in the company's time zone) and
--   never for the month under way, rounded DOWN to a band of max(min_cohort, 10) members and
--   suppressed entirely below one band. Nothing per department or role. A sign-up changes
--   nothing HR can see until its month has closed, and then only the coarse company total.
--   Residual (stated in the README): one person can move the total across a band boundary when
--   a month closes; that says nothing about which department. Membership history comes from
--   `memberships.enrolled_since` (maintained here by trigger, never by the request role) and
--   `ended_at`, so a closed month's figure does not move when people join or leave later.
--   (`app_private.suppress_cells` of migration 0010 stays, unused here: it is for usage
--   reports, where `min_cohort` applies after every filter.)
-- * A platform admin could insert a `practitioner_profiles` row for any user id (an employee's)
--   and so reveal that person to the platform and assign them as a practitioner. The request
--   role no longer inserts profiles: `create_practitioner_identity` creates the identity AND its
--   (empty) profile together, only for an address that had no account. The assignment definer
--   answers 'assigned' whether the person was a member of that company before or not.
-- * Guard triggers tested `current_user = 'serein_app'`, so a request role IN ROLE serein_app
--   got the policies but skipped every trigger. They now test the privileged path positively:
--   restrictions apply unless the current user has the privileges of the table's owner (the
--   migrator, whose SECURITY DEFINER functions are the sanctioned ways round them).
-- * A revoked session could be un-revoked by its owner (UPDATE … SET revoked_at = NULL), and an
--   ended membership came back in two steps (clear `ended_at` while disabled, then activate).
--   Both are now one-way for the request role (triggers).
-- * Through `users_visible`, every context of a company (anonymous, employee, HR) read the
--   identity row of each practitioner serving it: e-mail, TOTP status, verification. Now a user
--   row is visible to the person themself, to the company's tenant admins (who manage its
--   members) and to platform admins for the practitioner network (migration 0008); the
--   directory reads practitioners' names through `practitioner_names()`, which returns id and
--   display name only. TOTP status is readable by the person themself only
--   (`own_totp_enabled()`): the column is no longer granted.

-- ---------------------------------------------------------------------------------------------
-- The privileged path, for guard triggers: the current user has the privileges of the table's
-- owner (SECURITY DEFINER functions of the migrations, the CLI and jobs connected as the owner).
-- Anything else — serein_app, a role IN ROLE serein_app, any other login — is restricted.
-- Internal; not granted (trigger functions below call it as the invoker, so it is not a
-- definer and reads only the public catalogue).
CREATE FUNCTION app_private.is_table_owner(p_table oid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
        SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
                         FROM pg_catalog.pg_class c WHERE c.oid = p_table), false)
    $$;
REVOKE ALL ON FUNCTION app_private.is_table_owner(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.is_table_owner(oid) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Item 7: the guard triggers, restated positively.
CREATE OR REPLACE FUNCTION app_private.tenants_guard_update() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.is_table_owner(TG_RELID) AND NOT app.is_platform_admin()
       AND (NEW.plan, NEW.seats, NEW.allowance, NEW.status, NEW.web_origins,
            NEW.offboard_requested_at, NEW.purge_after)
           IS DISTINCT FROM
           (OLD.plan, OLD.seats, OLD.allowance, OLD.status, OLD.web_origins,
            OLD.offboard_requested_at, OLD.purge_after) THEN
        RAISE EXCEPTION 'only the platform changes a tenant''s plan, seats, allowance, status or origins'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION app_private.memberships_guard_roles() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.is_table_owner(TG_RELID)
       AND ('practitioner' = ANY (NEW.roles) OR 'practitioner' = ANY (OLD.roles)) THEN
        RAISE EXCEPTION 'the practitioner role is assigned by the platform'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION app_private.practitioner_profiles_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.is_table_owner(TG_RELID) AND NOT app.is_platform_admin()
       AND (NEW.licence_number, NEW.licence_country, NEW.verified_at)
           IS DISTINCT FROM (OLD.licence_number, OLD.licence_country, OLD.verified_at) THEN
        RAISE EXCEPTION 'licence and verification are managed by the platform'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Items 1 and 8: membership history and the one-way end of a membership.
--
-- `enrolled_since`: when the membership last began to hold a company role while not ended.
-- Set from `created_at` on insert; moved to the update's time when a membership that was ended,
-- or held no company role (a practitioner's), becomes an enrolled one. Never granted to the
-- request role. HR's figure "as of the end of month M" counts memberships with
-- `enrolled_since` before and `ended_at` not before that instant, so events after the month
-- closed do not move it.
ALTER TABLE memberships ADD COLUMN enrolled_since timestamptz;
UPDATE memberships SET enrolled_since = created_at;
ALTER TABLE memberships ALTER COLUMN enrolled_since SET NOT NULL;

CREATE FUNCTION app_private.memberships_enrolment_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    NEW.enrolled_since := NEW.created_at;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.memberships_enrolment_insert() FROM PUBLIC;
CREATE TRIGGER memberships_enrolment_insert BEFORE INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION app_private.memberships_enrolment_insert();

-- An ended membership stays ended for the request role: `ended_at` is set once (NULL → a time)
-- and only a definer (an accepted invitation, running as the owner) clears it. Activating
-- clears it on the privileged path only. Before, the request role could clear `ended_at` while
-- the membership was disabled, then activate it (no invitation, no seat check).
CREATE OR REPLACE FUNCTION app_private.memberships_clear_ended() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
DECLARE
    v_privileged boolean := app_private.is_table_owner(TG_RELID);
BEGIN
    IF NOT v_privileged AND OLD.ended_at IS NOT NULL
       AND NEW.ended_at IS DISTINCT FROM OLD.ended_at THEN
        RAISE EXCEPTION 'an ended membership comes back through a new invitation'
            USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'active' THEN
        IF NOT v_privileged AND OLD.ended_at IS NOT NULL THEN
            RAISE EXCEPTION 'an ended membership comes back through a new invitation'
                USING ERRCODE = '42501';
        END IF;
        NEW.ended_at := NULL;
    END IF;
    IF NOT (OLD.ended_at IS NULL AND OLD.roles && ARRAY['employee', 'hr', 'tenant_admin'])
       AND NEW.ended_at IS NULL AND NEW.roles && ARRAY['employee', 'hr', 'tenant_admin'] THEN
        NEW.enrolled_since := coalesce(NEW.updated_at, pg_catalog.now());
    ELSIF NOT v_privileged THEN
        NEW.enrolled_since := OLD.enrolled_since;
    END IF;
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Item 1: HR's view. Replaces the live per-role / per-department counts of migration 0010.
DROP FUNCTION app_private.member_summary();

-- One row: the closed period [period_start, period_end) (the last complete calendar month in
-- the company's time zone, judged by the EARLIER of the caller's clock and the database's, so
-- no caller can open the month under way), the band, the company's enrolled members at
-- period_end rounded down to a multiple of the band (NULL and suppressed below one band).
-- Counted: memberships holding a company role (employee, hr, tenant_admin), enrolled before
-- period_end and not ended by then; a disabled membership that was not ended still counts
-- (disabling is an access switch, not a departure). Practitioners are not company members.
CREATE FUNCTION app_private.member_summary(p_now timestamptz)
    RETURNS TABLE (period_start timestamptz, period_end timestamptz, band integer,
                   members integer, suppressed boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_min    integer;
    v_tz     text;
    v_band   integer;
    v_month  timestamp;
    v_end    timestamptz;
    v_n      integer;
BEGIN
    IF v_tenant IS NULL OR v_tenant = '00000000-0000-0000-0000-000000000000'::uuid
       OR NOT (app.current_roles() && ARRAY['hr', 'tenant_admin']) THEN
        RAISE EXCEPTION 'hr or tenant admin only' USING ERRCODE = '42501';
    END IF;
    SELECT t.min_cohort, t.time_zone INTO v_min, v_tz FROM public.tenants t WHERE t.id = v_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_band := greatest(v_min, 10);
    v_month := pg_catalog.date_trunc('month',
                   least(p_now, pg_catalog.statement_timestamp()) AT TIME ZONE v_tz);
    v_end := v_month AT TIME ZONE v_tz;
    SELECT count(*)::integer INTO v_n
    FROM public.memberships m
    WHERE m.tenant_id = v_tenant
      AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']
      AND m.enrolled_since < v_end
      AND (m.ended_at IS NULL OR m.ended_at >= v_end);
    v_n := (v_n / v_band) * v_band;
    RETURN QUERY SELECT (v_month - interval '1 month') AT TIME ZONE v_tz, v_end, v_band,
                        CASE WHEN v_n = 0 THEN NULL ELSE v_n END, v_n = 0;
END
$$;
REVOKE ALL ON FUNCTION app_private.member_summary(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.member_summary(timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Item 8: revocation of a session is one-way. The request role may revoke (NULL → a time) but
-- never change or clear a revocation; on the privileged path the first revocation is kept.
CREATE FUNCTION app_private.sessions_revocation_one_way() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL
       AND (NEW.revoked_at, NEW.revoked_reason) IS DISTINCT FROM (OLD.revoked_at, OLD.revoked_reason) THEN
        IF NOT app_private.is_table_owner(TG_RELID) THEN
            RAISE EXCEPTION 'a revoked session stays revoked' USING ERRCODE = '42501';
        END IF;
        NEW.revoked_at := OLD.revoked_at;
        NEW.revoked_reason := OLD.revoked_reason;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.sessions_revocation_one_way() FROM PUBLIC;
CREATE TRIGGER sessions_revocation_one_way BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION app_private.sessions_revocation_one_way();

-- ---------------------------------------------------------------------------------------------
-- Item 8: who reads whose identity row.
DROP POLICY users_visible ON users;
CREATE POLICY users_visible ON users
    FOR SELECT TO serein_app
    USING (
        id = (SELECT app.current_user_id())
        OR (ARRAY['tenant_admin'] <@ (SELECT app.current_roles())
            AND EXISTS (
                SELECT 1 FROM memberships m
                WHERE m.user_id = users.id AND m.tenant_id = (SELECT app.current_tenant())
            ))
    );

-- TOTP status: the person's own only.
REVOKE SELECT (totp_enabled_at) ON users FROM serein_app;

CREATE FUNCTION app_private.own_totp_enabled()
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.totp_enabled_at IS NOT NULL FROM public.users u
        WHERE u.id = app.current_user_id()
    $$;
REVOKE ALL ON FUNCTION app_private.own_totp_enabled() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.own_totp_enabled() TO serein_app;

-- The directory's names: id and display name of the active practitioners serving the
-- request's company, for a signed-in person of that company. Nothing else of the identity.
CREATE FUNCTION app_private.practitioner_names()
    RETURNS TABLE (id uuid, display_name text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.id, u.display_name
        FROM public.memberships m
        JOIN public.users u ON u.id = m.user_id
        WHERE m.tenant_id = app.current_tenant()
          AND app.current_user_id() IS NOT NULL
          AND m.status = 'active' AND 'practitioner' = ANY (m.roles)
          AND u.status = 'active'
    $$;
REVOKE ALL ON FUNCTION app_private.practitioner_names() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_names() TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Item 6: practitioner identities. The request role inserts no profile any more.
DROP POLICY practitioner_profiles_platform_create ON practitioner_profiles;
REVOKE INSERT ON practitioner_profiles FROM serein_app;

-- Create a new practitioner's identity and its empty profile together (the caller then fills
-- the profile under RLS, policy `practitioner_profiles_update`). Returns the new id, or no row
-- when the address already has an account: an existing identity (a company's employee, or a
-- practitioner already) is never given a profile here, and its id is never returned.
CREATE OR REPLACE FUNCTION app_private.create_practitioner_identity(p_id uuid, p_email text,
                                                                   p_display_name text, p_locale text,
                                                                   p_now timestamptz)
    RETURNS TABLE (user_id uuid, created boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admins only' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.users (id, email, display_name, password_hash, locale, created_at, updated_at)
    VALUES (p_id, lower(p_email), p_display_name, NULL, p_locale, p_now, p_now)
    ON CONFLICT (email) DO NOTHING;
    IF FOUND THEN
        INSERT INTO public.practitioner_profiles (user_id, created_at, updated_at)
        VALUES (p_id, p_now, p_now);
        RETURN QUERY SELECT p_id, true;
    END IF;
END
$$;

-- Assignment: the outcome no longer tells whether the person was a member of that company
-- (before: 'created' / 'reactivated' / 'added'). 'assigned' | 'unchanged' (already an active
-- practitioner there: the platform's own fact) | 'not_found' | 'closed'.
CREATE OR REPLACE FUNCTION app_private.assign_practitioner(p_tenant uuid, p_user uuid, p_id uuid,
                                                           p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_status text;
    v_m      public.memberships%ROWTYPE;
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
    END IF;
    SELECT t.status INTO v_status FROM public.tenants t
     WHERE t.id = p_tenant AND t.managed_by <> 'platform'
     FOR SHARE;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM public.practitioner_profiles p WHERE p.user_id = p_user) THEN
        RETURN 'not_found';
    END IF;
    IF v_status IN ('offboarding', 'offboarded') THEN
        RETURN 'closed';
    END IF;
    SELECT * INTO v_m FROM public.memberships m
     WHERE m.tenant_id = p_tenant AND m.user_id = p_user
     FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO public.memberships (id, tenant_id, user_id, roles, status, created_at, updated_at)
        VALUES (p_id, p_tenant, p_user, ARRAY['practitioner'], 'active', p_now, p_now);
        RETURN 'assigned';
    END IF;
    IF v_m.status <> 'active' THEN
        -- Roles held while disabled (a former employee's) are not revived.
        UPDATE public.memberships SET roles = ARRAY['practitioner'], status = 'active', updated_at = p_now
         WHERE id = v_m.id;
        RETURN 'assigned';
    END IF;
    IF 'practitioner' = ANY (v_m.roles) THEN
        RETURN 'unchanged';
    END IF;
    UPDATE public.memberships SET roles = v_m.roles || ARRAY['practitioner'], updated_at = p_now
     WHERE id = v_m.id;
    RETURN 'assigned';
END
$$;

-- The notice mailed to an address that already has an account when the platform asks to make
-- it a practitioner (instead of a 409 that told the platform the address has an account).
-- Widened from the current list, read from the catalogue (as migration 0011 does).
DO $$
DECLARE
    v_values text[];
BEGIN
    SELECT array_agg(m[1] ORDER BY m[1]) INTO v_values
    FROM pg_constraint c,
         regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') AS m
    WHERE c.conrelid = 'public.email_outbox'::regclass AND c.conname = 'email_outbox_template_check';
    IF v_values IS NULL THEN
        RAISE EXCEPTION 'email_outbox_template_check not found';
    END IF;
    IF NOT ('practitioner_address_in_use' = ANY (v_values)) THEN
        ALTER TABLE public.email_outbox DROP CONSTRAINT email_outbox_template_check;
        EXECUTE format('ALTER TABLE public.email_outbox ADD CONSTRAINT email_outbox_template_check '
                       'CHECK (template IN (%s))',
                       (SELECT string_agg(quote_literal(v), ', ')
                        FROM unnest(array_append(v_values, 'practitioner_address_in_use')) AS v));
    END IF;
END $$;
