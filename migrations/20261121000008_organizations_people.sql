-- Organizations and people: platform tenant management, seats, invitations, the practitioner
-- network.
--
-- Rules this migration follows (on top of those of the earlier ones):
-- * Platform admins act in the platform tenant's context (tenant zero). `app.is_platform_admin()`
--   is true only there and only with the `platform_admin` role — a role the session guard of the
--   same statement has already verified against `users.platform_roles`. Policies below grant
--   platform admins the `tenants` rows and the practitioner network, never a company's people:
--   what they learn about a company's members is counts, through definer functions.
-- * Membership rows are no longer readable by every member of the tenant: a person reads their
--   own, a tenant admin reads all, and everybody reads the practitioner memberships (the
--   directory). HR reads none: HR gets counts through a definer that suppresses small cells.
--   Because the `users_visible` policy looks through `memberships` under the invoker's RLS, an
--   employee thereby no longer sees colleagues' identities either.
-- * Only tenant admins change memberships; a person may create their own membership only as an
--   employee (self-sign-up). Practitioner memberships are created by the platform only.

-- ---------------------------------------------------------------------------------------------
-- Context helper.
CREATE FUNCTION app.is_platform_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(app.current_tenant() = '00000000-0000-0000-0000-000000000000'::uuid
                        AND 'platform_admin' = ANY (app.current_roles()), false)
    $$;
REVOKE ALL ON FUNCTION app.is_platform_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.is_platform_admin() TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Tenants: seats, the offboarding life cycle.
--
-- status: active → suspended ⇄ active; active|suspended → offboarding (grace period, data intact,
-- host refused like a suspended one; resume cancels) → offboarded (tenant keys destroyed, rows
-- purged by the job; the row stays as a tombstone so the slug is never handed to another company
-- and links mailed to the old one can never reach a new one).
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'offboarding', 'offboarded'));
ALTER TABLE tenants
    -- Seats: members holding a company role (employee, hr, tenant_admin) plus pending
    -- invitations. Practitioners belong to the platform's network and take no seat.
    ADD COLUMN seats                 integer NOT NULL DEFAULT 50 CHECK (seats BETWEEN 0 AND 1000000),
    ADD COLUMN offboard_requested_at timestamptz,
    ADD COLUMN purge_after           timestamptz,
    ADD COLUMN offboarded_at         timestamptz,
    ADD CONSTRAINT tenants_offboarding_check
        CHECK ((status = 'offboarding') = (purge_after IS NOT NULL)
               AND (status = 'offboarded') = (offboarded_at IS NOT NULL));
-- Plan defaults for rows that predate seats (the application sets seats explicitly from now on).
UPDATE tenants SET seats = CASE plan WHEN 'starter' THEN 50 WHEN 'standard' THEN 500 ELSE 5000 END;

-- The purge job's queue: offboarding tenants whose grace period is over.
CREATE INDEX tenants_purge_idx ON tenants (purge_after) WHERE status = 'offboarding';

-- Platform admins read every company row and create API-managed ones. Tenant zero is theirs to
-- read but never to change.
CREATE POLICY tenants_platform_read ON tenants
    FOR SELECT TO serein_app
    USING ((SELECT app.is_platform_admin()));
CREATE POLICY tenants_platform_create ON tenants
    FOR INSERT TO serein_app
    WITH CHECK ((SELECT app.is_platform_admin()) AND managed_by = 'api' AND status = 'active');
-- File-managed tenants are changed by editing their file (the files are the desired state), so
-- neither platform admins nor tenant admins update them through the API.
CREATE POLICY tenants_platform_update ON tenants
    FOR UPDATE TO serein_app
    USING ((SELECT app.is_platform_admin()) AND managed_by = 'api')
    WITH CHECK ((SELECT app.is_platform_admin()) AND managed_by = 'api');
CREATE POLICY tenants_admin_update ON tenants
    FOR UPDATE TO serein_app
    USING (id = (SELECT app.current_tenant()) AND managed_by = 'api'
           AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()))
    WITH CHECK (id = (SELECT app.current_tenant()) AND managed_by = 'api');

GRANT INSERT (id, slug, name, plan, seats, status, locale, time_zone, allowance, min_cohort,
              allowed_email_domains, web_origins, branding, managed_by, created_at, updated_at)
    ON tenants TO serein_app;
GRANT UPDATE (name, plan, seats, status, locale, time_zone, allowance, min_cohort,
              allowed_email_domains, web_origins, branding, offboard_requested_at, purge_after,
              updated_at)
    ON tenants TO serein_app;

-- What a tenant admin may change of their own company is narrower than what the platform may:
-- the commercial terms (plan, seats, allowance), the life cycle and the CORS origins stay with
-- the platform. Column grants cannot tell the two apart (one request role), so a trigger does.
CREATE FUNCTION app_private.tenants_guard_update() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF current_user = 'serein_app' AND NOT app.is_platform_admin()
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
REVOKE ALL ON FUNCTION app_private.tenants_guard_update() FROM PUBLIC;
CREATE TRIGGER tenants_guard_update BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION app_private.tenants_guard_update();

-- ---------------------------------------------------------------------------------------------
-- Memberships: who reads and who changes them (see the header).
DROP POLICY memberships_tenant_read ON memberships;
CREATE POLICY memberships_read ON memberships
    FOR SELECT TO serein_app
    USING (
        tenant_id = (SELECT app.current_tenant())
        AND (user_id = (SELECT app.current_user_id())
             OR ARRAY['tenant_admin'] <@ (SELECT app.current_roles())
             -- The practitioner directory: serving practitioners are public within their
             -- companies (not once their assignment has ended).
             OR ('practitioner' = ANY (roles) AND status = 'active'))
    );

-- Nobody inserts or deletes a membership directly any more: every way in is a definer that
-- knows its rule — self-sign-up (`join_by_signup` below: allowed e-mail domain, employee only,
-- seats), an accepted invitation, a platform assignment — and a membership ends by status, never
-- by deletion (records will reference it). Without this, a tenant admin could attach any known
-- user id to their company to read that person's e-mail.
DROP POLICY memberships_create ON memberships;
REVOKE INSERT, DELETE ON memberships FROM serein_app;

CREATE FUNCTION app_private.join_by_signup(p_membership uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user   uuid := app.current_user_id();
BEGIN
    IF v_tenant IS NULL OR v_user IS NULL
       OR v_tenant = '00000000-0000-0000-0000-000000000000'::uuid THEN
        RAISE EXCEPTION 'a person in a company context only' USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.users u JOIN public.tenants t ON t.id = v_tenant
        WHERE u.id = v_user AND t.status = 'active'
          AND pg_catalog.split_part(u.email, '@', 2) = ANY (t.allowed_email_domains)
    ) THEN
        RAISE EXCEPTION 'self-sign-up is not open to this address' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.memberships (id, tenant_id, user_id, roles, created_at, updated_at)
    VALUES (p_membership, v_tenant, v_user, ARRAY['employee'], p_now, p_now)
    ON CONFLICT (tenant_id, user_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM app_private.enforce_seats(v_tenant, p_now);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.join_by_signup(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.join_by_signup(uuid, timestamptz) TO serein_app;

DROP POLICY memberships_tenant_update ON memberships;
CREATE POLICY memberships_admin_update ON memberships
    FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()));

DROP POLICY memberships_tenant_delete ON memberships;

-- A tenant admin never changes a practitioner's membership (roles, status, department) nor
-- grants the practitioner role: the practitioner network is the platform's (assignment goes
-- through app_private functions, which run as the owner).
CREATE FUNCTION app_private.memberships_guard_roles() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF current_user = 'serein_app'
       AND ('practitioner' = ANY (NEW.roles) OR 'practitioner' = ANY (OLD.roles)) THEN
        RAISE EXCEPTION 'the practitioner role is assigned by the platform'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.memberships_guard_roles() FROM PUBLIC;
CREATE TRIGGER memberships_guard_roles BEFORE UPDATE ON memberships
    FOR EACH ROW EXECUTE FUNCTION app_private.memberships_guard_roles();

-- Keyset pagination and search over a tenant's members.
CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id, id);

-- ---------------------------------------------------------------------------------------------
-- Invitations: a tenant admin invites a person (by e-mail) to take roles in the company.
-- The token is `{invitation id}.{256 random bits}`, stored as SHA-256 of the whole string; it is
-- single-use and expires (7 days). Re-inviting the same address refreshes the pending row (new
-- token, new expiry), so there is at most one pending invitation per address.
-- Only tenant admins see or write invitations; accepting one (anonymous, by token) goes through
-- a definer function.
CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    email        text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1),
    roles        text[] NOT NULL
                 CHECK (cardinality(roles) > 0 AND roles <@ ARRAY['tenant_admin', 'hr', 'employee']::text[]),
    department   text CHECK (department IS NULL OR length(department) BETWEEN 1 AND 120),
    first_name   text CHECK (first_name IS NULL OR length(first_name) BETWEEN 1 AND 100),
    last_name    text CHECK (last_name IS NULL OR length(last_name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   timestamptz,
    CONSTRAINT invitations_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT invitations_tenant_token_key UNIQUE (tenant_id, token_hash)
);
-- At most one pending invitation per address and company.
CREATE UNIQUE INDEX invitations_pending_email_key ON invitations (tenant_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_tenant_created_idx ON invitations (tenant_id, created_at, id);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;

CREATE POLICY invitations_admin_read ON invitations
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()));
CREATE POLICY invitations_admin_create ON invitations
    FOR INSERT TO serein_app
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()));
CREATE POLICY invitations_admin_update ON invitations
    FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND ARRAY['tenant_admin'] <@ (SELECT app.current_roles()));

GRANT SELECT ON invitations TO serein_app;
GRANT INSERT ON invitations TO serein_app;
GRANT UPDATE (roles, department, first_name, last_name, token_hash, invited_by, updated_at,
              expires_at, revoked_at)
    ON invitations TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Seats. Used = active memberships holding a company role + pending, unexpired invitations of
-- addresses that hold no such membership yet. Internal (not granted): callers are the definers
-- below and those of later migrations.
CREATE FUNCTION app_private.seats_used(p_tenant uuid, p_now timestamptz)
    RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
        SELECT (SELECT count(*) FROM public.memberships m
                WHERE m.tenant_id = p_tenant AND m.status = 'active'
                  AND m.roles && ARRAY['employee', 'hr', 'tenant_admin'])::integer
             + (SELECT count(*) FROM public.invitations i
                WHERE i.tenant_id = p_tenant AND i.accepted_at IS NULL AND i.revoked_at IS NULL
                  AND i.expires_at > p_now
                  AND NOT EXISTS (
                      SELECT 1 FROM public.memberships m JOIN public.users u ON u.id = m.user_id
                      WHERE m.tenant_id = p_tenant AND u.email = i.email AND m.status = 'active'
                        AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']))::integer
    $$;
REVOKE ALL ON FUNCTION app_private.seats_used(uuid, timestamptz) FROM PUBLIC;

-- Refuse the transaction when the tenant is over its seats (SQLSTATE SR409, answered as 409
-- `seat_limit_reached`). Call it AFTER the transaction's writes (invite, import, re-enable,
-- accept): it serialises the tenant's seat-changing transactions on an advisory lock, then counts
-- with a fresh snapshot, so two concurrent invitations cannot both take the last seat.
CREATE FUNCTION app_private.enforce_seats(p_tenant uuid, p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    v_seats integer;
    v_used  integer;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('serein.seats.' || p_tenant::text, 0));
    SELECT t.seats INTO v_seats FROM public.tenants t WHERE t.id = p_tenant;
    v_used := app_private.seats_used(p_tenant, p_now);
    IF v_used > v_seats THEN
        RAISE EXCEPTION 'seat limit reached' USING ERRCODE = 'SR409',
            DETAIL = pg_catalog.format('%s of %s seats', v_used, v_seats);
    END IF;
    RETURN v_seats - v_used;
END
$$;
REVOKE ALL ON FUNCTION app_private.enforce_seats(uuid, timestamptz) FROM PUBLIC;

-- The request's entry point: a tenant admin checks their own company after writing.
CREATE FUNCTION app_private.check_seats(p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR NOT ('tenant_admin' = ANY (app.current_roles())) THEN
        RAISE EXCEPTION 'tenant admin only' USING ERRCODE = '42501';
    END IF;
    RETURN app_private.enforce_seats(app.current_tenant(), p_now);
END
$$;
REVOKE ALL ON FUNCTION app_private.check_seats(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.check_seats(timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- The practitioner network. GLOBAL TABLE (no tenant_id), deliberately: a practitioner is one
-- person serving several companies, with one profile. A profile is visible to its owner, to
-- platform admins, and inside a company only while the practitioner holds an active practitioner
-- membership there. The owner edits the descriptive fields; licence and verification belong to
-- the platform (trigger below).
CREATE FUNCTION app.practitioner_specialties() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT ARRAY['anxiety', 'depression', 'stress', 'burnout', 'trauma', 'grief',
                     'relationships', 'family', 'parenting', 'addiction', 'sleep',
                     'eating_disorders', 'self_esteem', 'career', 'adhd', 'ocd', 'bipolar',
                     'loneliness', 'life_transitions', 'work_conflict']::text[]
    $$;
GRANT EXECUTE ON FUNCTION app.practitioner_specialties() TO serein_app;

-- ISO 639-1 codes: two lower-case letters each.
CREATE FUNCTION app.valid_language_codes(p text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(bool_and(c ~ '^[a-z]{2}$'), true) FROM unnest(p) AS c $$;
GRANT EXECUTE ON FUNCTION app.valid_language_codes(text[]) TO serein_app;

CREATE TABLE practitioner_profiles (
    user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    specialties      text[] NOT NULL DEFAULT '{}'
                     CHECK (specialties <@ app.practitioner_specialties() AND cardinality(specialties) <= 10),
    languages        text[] NOT NULL DEFAULT '{}'
                     CHECK (app.valid_language_codes(languages) AND cardinality(languages) <= 10),
    bio              text NOT NULL DEFAULT '' CHECK (length(bio) <= 4000),
    licence_number   text CHECK (licence_number IS NULL OR length(licence_number) BETWEEN 1 AND 64),
    licence_country  text CHECK (licence_country IS NULL OR licence_country ~ '^[A-Z]{2}$'),
    verified_at      timestamptz,
    -- A file id once files exist (no foreign key yet).
    photo_file_id    uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

ALTER TABLE practitioner_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE practitioner_profiles FORCE ROW LEVEL SECURITY;

CREATE POLICY practitioner_profiles_read ON practitioner_profiles
    FOR SELECT TO serein_app
    USING (
        user_id = (SELECT app.current_user_id())
        OR (SELECT app.is_platform_admin())
        OR EXISTS (
            SELECT 1 FROM memberships m
            WHERE m.user_id = practitioner_profiles.user_id
              AND m.tenant_id = (SELECT app.current_tenant())
              AND m.status = 'active' AND 'practitioner' = ANY (m.roles)
        )
    );
CREATE POLICY practitioner_profiles_platform_create ON practitioner_profiles
    FOR INSERT TO serein_app
    WITH CHECK ((SELECT app.is_platform_admin()));
CREATE POLICY practitioner_profiles_update ON practitioner_profiles
    FOR UPDATE TO serein_app
    USING (user_id = (SELECT app.current_user_id()) OR (SELECT app.is_platform_admin()))
    WITH CHECK (user_id = (SELECT app.current_user_id()) OR (SELECT app.is_platform_admin()));

GRANT SELECT ON practitioner_profiles TO serein_app;
GRANT INSERT ON practitioner_profiles TO serein_app;
GRANT UPDATE (specialties, languages, bio, licence_number, licence_country, verified_at,
              photo_file_id, updated_at)
    ON practitioner_profiles TO serein_app;

CREATE FUNCTION app_private.practitioner_profiles_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF current_user = 'serein_app' AND NOT app.is_platform_admin()
       AND (NEW.licence_number, NEW.licence_country, NEW.verified_at)
           IS DISTINCT FROM (OLD.licence_number, OLD.licence_country, OLD.verified_at) THEN
        RAISE EXCEPTION 'licence and verification are managed by the platform'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_profiles_guard() FROM PUBLIC;
CREATE TRIGGER practitioner_profiles_guard BEFORE UPDATE ON practitioner_profiles
    FOR EACH ROW EXECUTE FUNCTION app_private.practitioner_profiles_guard();

-- Platform admins see the identities of the practitioner network (name, e-mail), and nobody
-- else's: a company's employees stay invisible to them.
CREATE POLICY users_platform_practitioners ON users
    FOR SELECT TO serein_app
    USING ((SELECT app.is_platform_admin())
           AND EXISTS (SELECT 1 FROM practitioner_profiles p WHERE p.user_id = users.id));
