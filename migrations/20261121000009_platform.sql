-- Platform tenant management: what platform admins learn about a company's people (counts
-- only), and practitioner assignment (the practitioner network's memberships).
--
-- Rules (on top of those of the earlier migrations):
-- * Every function here is SECURITY DEFINER in app_private, `SET search_path = ''`, granted to
--   serein_app only, and refuses any caller that is not a platform admin acting in the platform
--   tenant (`app.is_platform_admin()`, whose role the session guard of the same transaction has
--   verified against `users.platform_roles`).
-- * They never return a person's identity: counts, or an outcome word.
-- * The platform tenant (tenant zero) is never a target.

-- ---------------------------------------------------------------------------------------------
-- Member counts of a company for the platform admin's tenant view. No member list, no names:
-- seats used (the enforcement's own count), active/disabled memberships, pending invitations,
-- and active memberships by role. Returns no row for an unknown tenant or tenant zero.
CREATE FUNCTION app_private.tenant_member_counts(p_tenant uuid, p_now timestamptz)
    RETURNS TABLE (seats_used integer, active_members integer, disabled_members integer,
                   pending_invitations integer, tenant_admins integer, hr integer,
                   employees integer, practitioners integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    SELECT app_private.seats_used(t.id, p_now),
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'active')::integer,
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'disabled')::integer,
           (SELECT count(*) FROM public.invitations i
             WHERE i.tenant_id = t.id AND i.accepted_at IS NULL AND i.revoked_at IS NULL
               AND i.expires_at > p_now)::integer,
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'active' AND 'tenant_admin' = ANY (m.roles))::integer,
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'active' AND 'hr' = ANY (m.roles))::integer,
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'active' AND 'employee' = ANY (m.roles))::integer,
           (SELECT count(*) FROM public.memberships m
             WHERE m.tenant_id = t.id AND m.status = 'active' AND 'practitioner' = ANY (m.roles))::integer
    FROM public.tenants t
    WHERE t.id = p_tenant AND t.managed_by <> 'platform';
END
$$;
REVOKE ALL ON FUNCTION app_private.tenant_member_counts(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.tenant_member_counts(uuid, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Practitioner assignment. A practitioner is an identity with a row in practitioner_profiles;
-- assigning one to a company gives them an active membership holding the 'practitioner' role
-- there (practitioners take no seat). Outcomes:
--   'created'      a new membership ['practitioner']
--   'reactivated'  a disabled membership became active with ['practitioner'] only — roles it
--                  held while disabled (say a former employee's) are NOT revived: only the
--                  company's admin gives company roles back
--   'added'        an active membership (e.g. an employee) gained the practitioner role
--   'unchanged'    already an active practitioner there
--   'not_found'    unknown tenant, tenant zero, or the user has no practitioner profile
--   'closed'       the tenant is offboarding or offboarded
-- p_id is the new membership's id (UUIDv7, made by the application).
CREATE FUNCTION app_private.assign_practitioner(p_tenant uuid, p_user uuid, p_id uuid,
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
        RETURN 'created';
    END IF;
    IF v_m.status <> 'active' THEN
        UPDATE public.memberships SET roles = ARRAY['practitioner'], status = 'active', updated_at = p_now
         WHERE id = v_m.id;
        RETURN 'reactivated';
    END IF;
    IF 'practitioner' = ANY (v_m.roles) THEN
        RETURN 'unchanged';
    END IF;
    UPDATE public.memberships SET roles = v_m.roles || ARRAY['practitioner'], updated_at = p_now
     WHERE id = v_m.id;
    RETURN 'added';
END
$$;
REVOKE ALL ON FUNCTION app_private.assign_practitioner(uuid, uuid, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.assign_practitioner(uuid, uuid, uuid, timestamptz) TO serein_app;

-- End a practitioner's assignment: the 'practitioner' role is removed; a membership left with
-- no other role is disabled (it keeps ['practitioner'] because a membership always holds a role,
-- and a disabled one grants nothing). Every session of the person in that tenant is revoked at
-- once (the session guard would refuse the practitioner role anyway; revoking also ends any
-- other role's session, so the person signs in again with what is left). Outcomes: 'ended',
-- 'not_found' (unknown tenant, tenant zero, no profile, or not an active practitioner there),
-- 'closed' (offboarding/offboarded: the purge removes everything).
CREATE FUNCTION app_private.unassign_practitioner(p_tenant uuid, p_user uuid, p_now timestamptz)
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
    IF NOT FOUND OR v_m.status <> 'active' OR NOT ('practitioner' = ANY (v_m.roles)) THEN
        RETURN 'not_found';
    END IF;
    IF v_m.roles = ARRAY['practitioner'] THEN
        UPDATE public.memberships SET status = 'disabled', updated_at = p_now WHERE id = v_m.id;
    ELSE
        UPDATE public.memberships SET roles = array_remove(v_m.roles, 'practitioner'), updated_at = p_now
         WHERE id = v_m.id;
    END IF;
    UPDATE public.sessions SET revoked_at = p_now, revoked_reason = 'membership_change'
     WHERE tenant_id = p_tenant AND user_id = p_user AND revoked_at IS NULL;
    RETURN 'ended';
END
$$;
REVOKE ALL ON FUNCTION app_private.unassign_practitioner(uuid, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.unassign_practitioner(uuid, uuid, timestamptz) TO serein_app;
