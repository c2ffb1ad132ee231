-- The practitioner network (issue 4, items 6 and 7): platform admins create practitioner
-- identities and mail them a single-use "set your password" link; employees browse and match
-- the practitioners assigned to their company.
--
-- Rules (on top of those of migration 0008, whose `practitioner_profiles` table and policies
-- this builds on):
-- * A platform admin never reads or writes credentials. Creating the identity and issuing the
--   set-password link go through the two definers below, which check the caller is a platform
--   admin acting on the platform tenant, and which only act on practitioner identities.
-- * The set-password link is an ordinary `auth_tokens` row (purpose `password_reset`) in the
--   PLATFORM tenant: `POST /api/v1/auth/password/reset` on the platform host spends it exactly as
--   it spends a reset link (the person's own context, no role needed). It is issued only for an
--   identity that has no password yet, so a platform admin can never use it to take over an
--   existing account (someone already holding a password keeps it; they get no link).

-- ---------------------------------------------------------------------------------------------
-- The welcome mail's template name. Widened from the current list (read from the catalogue, so
-- a value another migration added before this one is kept, whatever the merge order).
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
    IF NOT ('practitioner_welcome' = ANY (v_values)) THEN
        ALTER TABLE public.email_outbox DROP CONSTRAINT email_outbox_template_check;
        -- Written as an IN list, which the catalogue shows in the same `ARRAY['…'::text, …]`
        -- form as the original, so a later migration can widen it the same way.
        EXECUTE format('ALTER TABLE public.email_outbox ADD CONSTRAINT email_outbox_template_check '
                       'CHECK (template IN (%s))',
                       (SELECT string_agg(quote_literal(v), ', ')
                        FROM unnest(array_append(v_values, 'practitioner_welcome')) AS v));
    END IF;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Create (or find) the identity of a new practitioner. Platform admins only.
-- Returns the new identity's id, or no row when the e-mail already has an account. An existing
-- identity is never turned into a practitioner from here: it may be a company's employee, and
-- the platform must learn nothing about a company's people (its id, name or locale stay out of
-- reach); the caller answers 409. The caller then inserts the profile under RLS (policy
-- `practitioner_profiles_platform_create`).
CREATE FUNCTION app_private.create_practitioner_identity(p_id uuid, p_email text,
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
        RETURN QUERY SELECT p_id, true;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.create_practitioner_identity(uuid, text, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.create_practitioner_identity(uuid, text, text, text, timestamptz) TO serein_app;

-- Issue a single-use set-password link (an `auth_tokens` row of purpose `password_reset` in the
-- platform tenant) for a practitioner who has no password yet. Platform admins only. Returns
-- false (and issues nothing) when the person is not a practitioner or already has a password.
-- Earlier unused links of the same person are retired: only the newest one works.
CREATE FUNCTION app_private.issue_practitioner_password_link(p_user uuid, p_id uuid, p_hash bytea,
                                                             p_now timestamptz, p_expires timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admins only' USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.users u
        JOIN public.practitioner_profiles p ON p.user_id = u.id
        WHERE u.id = p_user AND u.password_hash IS NULL AND u.status = 'active'
    ) THEN
        RETURN false;
    END IF;
    UPDATE public.auth_tokens SET used_at = p_now
    WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND user_id = p_user
      AND purpose = 'password_reset' AND used_at IS NULL;
    INSERT INTO public.auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
    VALUES (p_id, '00000000-0000-0000-0000-000000000000', p_user, 'password_reset', p_hash, p_now, p_expires);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.issue_practitioner_password_link(uuid, uuid, bytea, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.issue_practitioner_password_link(uuid, uuid, bytea, timestamptz, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- The directory's candidate set: a company's active practitioner memberships. Partial, so it
-- holds only the directory (a handful to a few hundred rows per company, against thousands of
-- employees). Full-text search (`to_tsvector('simple', display_name || ' ' || bio)`) is computed
-- over that candidate set at query time: the name lives in `users` and the bio in
-- `practitioner_profiles`, so no single-table expression or GIN index can cover both, and a
-- stored tsvector would have to be kept in sync from two tables for a set this small.
CREATE INDEX memberships_practitioner_directory_idx ON memberships (tenant_id, user_id)
    WHERE status = 'active' AND 'practitioner' = ANY (roles);

