-- Members: tenant settings, the member list, membership life cycle, HR's counts, invitations.
--
-- Decisions recorded here:
-- * Ending a membership (DELETE /members/{id}) does not delete the row: consultations and other
--   records will reference memberships. It sets `status = 'disabled'` and `ended_at`; the
--   session guard already refuses a disabled membership, and the person's sessions in the
--   tenant are revoked in the same transaction. An ended membership is brought back only by a
--   new invitation (accepting clears `ended_at`), never by PATCH.
-- * HR reads no membership row. What HR sees is `app_private.member_summary()`: counts of
--   active company members in total, by primary role and by department, with every cell below
--   the tenant's `min_cohort` suppressed together with enough neighbours that the total minus
--   the visible cells reveals nothing (DESIGN §7). Suppression happens here, in SQL.
-- * Anonymous invitation acceptance goes through two definers bound to the request's tenant
--   (`app.current_tenant()`, never an argument).

-- ---------------------------------------------------------------------------------------------
-- Ended memberships.
ALTER TABLE memberships ADD COLUMN ended_at timestamptz;
ALTER TABLE memberships ADD CONSTRAINT memberships_ended_check
    CHECK (ended_at IS NULL OR status = 'disabled');
GRANT UPDATE (ended_at) ON memberships TO serein_app;

-- Whatever re-activates a membership (PATCH, an accepted invitation, a practitioner
-- assignment by the platform) ends its "ended" state with it.
CREATE FUNCTION app_private.memberships_clear_ended() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NEW.status = 'active' THEN
        -- Only an accepted invitation or a platform assignment (definers, running as the owner)
        -- brings an ended membership back; a request's own UPDATE does not (no seat check).
        IF current_user = 'serein_app' AND OLD.ended_at IS NOT NULL THEN
            RAISE EXCEPTION 'an ended membership comes back through a new invitation'
                USING ERRCODE = '42501';
        END IF;
        NEW.ended_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.memberships_clear_ended() FROM PUBLIC;
CREATE TRIGGER memberships_clear_ended BEFORE UPDATE ON memberships
    FOR EACH ROW EXECUTE FUNCTION app_private.memberships_clear_ended();

-- ---------------------------------------------------------------------------------------------
-- Seats of the request's company, for its tenant admins (GET /tenant).
CREATE FUNCTION app_private.seat_usage(p_now timestamptz)
    RETURNS TABLE (seats integer, used integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR NOT ('tenant_admin' = ANY (app.current_roles())) THEN
        RAISE EXCEPTION 'tenant admin only' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
        SELECT t.seats, app_private.seats_used(t.id, p_now)
        FROM public.tenants t WHERE t.id = app.current_tenant();
END
$$;
REVOKE ALL ON FUNCTION app_private.seat_usage(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.seat_usage(timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Revoke a member's live sessions in the request's company (disable, role removal, end).
CREATE FUNCTION app_private.revoke_member_sessions(p_user uuid, p_reason text, p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE n integer;
BEGIN
    IF app.current_tenant() IS NULL OR NOT ('tenant_admin' = ANY (app.current_roles())) THEN
        RAISE EXCEPTION 'tenant admin only' USING ERRCODE = '42501';
    END IF;
    UPDATE public.sessions SET revoked_at = p_now, revoked_reason = p_reason
    WHERE tenant_id = app.current_tenant() AND user_id = p_user AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION app_private.revoke_member_sessions(uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.revoke_member_sessions(uuid, text, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Small-cell suppression (internal, not granted). Input: the cells of one partition of a
-- total. Every cell below p_min is suppressed; then, while exactly one cell is suppressed or
-- the suppressed cells add up to less than p_min (so `total - visible` would pin them down),
-- the smallest visible cell is suppressed too (ties broken by key: deterministic).
CREATE FUNCTION app_private.suppress_cells(p_keys text[], p_counts integer[], p_min integer)
    RETURNS TABLE (key text, n integer, suppressed boolean)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = ''
    AS $$
DECLARE
    v_keys   text[];
    v_counts integer[];
    v_hidden boolean[];
    v_sum    integer := 0;
    v_cnt    integer := 0;
    i        integer;
BEGIN
    SELECT coalesce(array_agg(c.k ORDER BY c.n, c.k), '{}'), coalesce(array_agg(c.n ORDER BY c.n, c.k), '{}')
      INTO v_keys, v_counts
      FROM unnest(p_keys, p_counts) AS c(k, n);
    v_hidden := array_fill(false, ARRAY[coalesce(array_length(v_keys, 1), 0)]);
    FOR i IN 1 .. coalesce(array_length(v_keys, 1), 0) LOOP
        IF v_counts[i] < p_min THEN
            v_hidden[i] := true;
            v_sum := v_sum + v_counts[i];
            v_cnt := v_cnt + 1;
        END IF;
    END LOOP;
    -- Cells are sorted ascending: the next visible one is the smallest.
    FOR i IN 1 .. coalesce(array_length(v_keys, 1), 0) LOOP
        EXIT WHEN v_cnt = 0 OR (v_cnt >= 2 AND v_sum >= p_min);
        IF NOT v_hidden[i] THEN
            v_hidden[i] := true;
            v_sum := v_sum + v_counts[i];
            v_cnt := v_cnt + 1;
        END IF;
    END LOOP;
    RETURN QUERY
        SELECT v_keys[j], CASE WHEN v_hidden[j] THEN NULL ELSE v_counts[j] END, v_hidden[j]
        FROM generate_subscripts(v_keys, 1) AS j;
END
$$;
REVOKE ALL ON FUNCTION app_private.suppress_cells(text[], integer[], integer) FROM PUBLIC;

-- HR's (and tenant admins') view of the company's people: counts only. Rows:
-- ('total', NULL, n, suppressed), ('role', primary role, …), ('department', name or NULL, …).
-- Counted: active, not ended memberships holding a company role (practitioners are the
-- platform's network and are not company members). The primary role partitions the members:
-- tenant_admin, else hr, else employee. When the total itself is below min_cohort every cell
-- is suppressed.
CREATE FUNCTION app_private.member_summary()
    RETURNS TABLE (dimension text, key text, n integer, suppressed boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_min    integer;
    v_total  integer;
    v_rkeys  text[];
    v_rcount integer[];
    v_dkeys  text[];
    v_dcount integer[];
BEGIN
    IF v_tenant IS NULL OR NOT (app.current_roles() && ARRAY['hr', 'tenant_admin']) THEN
        RAISE EXCEPTION 'hr or tenant admin only' USING ERRCODE = '42501';
    END IF;
    SELECT t.min_cohort INTO v_min FROM public.tenants t WHERE t.id = v_tenant;
    WITH members AS (
        SELECT CASE WHEN 'tenant_admin' = ANY (m.roles) THEN 'tenant_admin'
                    WHEN 'hr' = ANY (m.roles) THEN 'hr' ELSE 'employee' END AS role,
               -- NULL departments travel as '' through the arrays and come back as NULL.
               coalesce(m.department, '') AS department
        FROM public.memberships m
        WHERE m.tenant_id = v_tenant AND m.status = 'active' AND m.ended_at IS NULL
          AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']
    )
    SELECT (SELECT count(*)::integer FROM members),
           (SELECT array_agg(g.role ORDER BY g.role) FROM (SELECT DISTINCT x.role FROM members x) g),
           (SELECT array_agg(g.c ORDER BY g.role) FROM (SELECT x.role, count(*)::integer AS c FROM members x GROUP BY x.role) g),
           (SELECT array_agg(g.department ORDER BY g.department) FROM (SELECT DISTINCT x.department FROM members x) g),
           (SELECT array_agg(g.c ORDER BY g.department) FROM (SELECT x.department, count(*)::integer AS c FROM members x GROUP BY x.department) g)
      INTO v_total, v_rkeys, v_rcount, v_dkeys, v_dcount;
    v_rkeys := coalesce(v_rkeys, '{}');
    v_rcount := coalesce(v_rcount, '{}');
    v_dkeys := coalesce(v_dkeys, '{}');
    v_dcount := coalesce(v_dcount, '{}');
    IF v_total < v_min THEN
        RETURN QUERY SELECT 'total'::text, NULL::text, NULL::integer, true;
        RETURN QUERY SELECT 'role'::text, r.k, NULL::integer, true FROM unnest(v_rkeys) AS r(k);
        RETURN QUERY SELECT 'department'::text, NULLIF(d.k, ''), NULL::integer, true
            FROM unnest(v_dkeys) AS d(k);
        RETURN;
    END IF;
    RETURN QUERY SELECT 'total'::text, NULL::text, v_total, false;
    RETURN QUERY SELECT 'role'::text, s.key, s.n, s.suppressed
        FROM app_private.suppress_cells(v_rkeys, v_rcount, v_min) s;
    RETURN QUERY SELECT 'department'::text, NULLIF(s.key, ''), s.n, s.suppressed
        FROM app_private.suppress_cells(v_dkeys, v_dcount, v_min) s;
END
$$;
REVOKE ALL ON FUNCTION app_private.member_summary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.member_summary() TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Invitations, accepted by token on the company's host (anonymous request).
--
-- Preview: the invitation named by id in the request's tenant, if the hash matches and it is
-- still pending. `has_account` is true only for an identity with a verified e-mail: an
-- unverified identity under that address may have been created by someone else (account
-- pre-hijacking), so the invitee must then set a password, which replaces it.
CREATE FUNCTION app_private.invitation_for_token(p_id uuid, p_hash bytea, p_now timestamptz)
    RETURNS TABLE (email text, roles text[], department text, tenant_name text, has_account boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT i.email, i.roles, i.department, t.name,
               EXISTS (SELECT 1 FROM public.users u
                       WHERE u.email = i.email AND u.email_verified_at IS NOT NULL)
        FROM public.invitations i
        JOIN public.tenants t ON t.id = i.tenant_id
        WHERE i.id = p_id AND i.tenant_id = app.current_tenant()
          AND i.token_hash = p_hash
          AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > p_now
    $$;
REVOKE ALL ON FUNCTION app_private.invitation_for_token(uuid, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.invitation_for_token(uuid, bytea, timestamptz) TO serein_app;

-- Accept, all or nothing. Outcome: 'gone' (unknown, wrong hash, used, revoked, expired),
-- 'password_required' (no verified identity and no password given), or 'accepted'.
-- Creates the identity (e-mail verified: the link proves the address), or links the verified
-- one, or — for an unverified one — sets the given password, verifies it and revokes its
-- sessions everywhere. Creates or re-activates the membership with the invitation's roles
-- (an active membership keeps its roles and gains these; an inactive one — ended, disabled, or
-- a practitioner assignment the platform ended — gets exactly these: an invitation never gives
-- back a role the platform or an admin removed), marks the
-- invitation accepted, then enforces the seats (SR409 rolls everything back).
CREATE FUNCTION app_private.accept_invitation(p_id uuid, p_hash bytea, p_new_user uuid,
                                              p_display_name text, p_password_hash text,
                                              p_locale text, p_membership uuid, p_now timestamptz)
    RETURNS TABLE (outcome text, email text, existing_account boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_inv    public.invitations%ROWTYPE;
    v_user   public.users%ROWTYPE;
    v_uid    uuid;
    v_existing boolean;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in context' USING ERRCODE = '42501';
    END IF;
    SELECT * INTO v_inv FROM public.invitations i
    WHERE i.id = p_id AND i.tenant_id = v_tenant
    FOR UPDATE;
    IF NOT FOUND OR v_inv.token_hash <> p_hash OR v_inv.accepted_at IS NOT NULL
       OR v_inv.revoked_at IS NOT NULL OR v_inv.expires_at <= p_now THEN
        RETURN QUERY SELECT 'gone'::text, NULL::text, NULL::boolean;
        RETURN;
    END IF;
    SELECT * INTO v_user FROM public.users u WHERE u.email = v_inv.email FOR UPDATE;
    v_existing := FOUND;
    IF NOT v_existing OR v_user.email_verified_at IS NULL THEN
        IF p_password_hash IS NULL THEN
            RETURN QUERY SELECT 'password_required'::text, v_inv.email, v_existing;
            RETURN;
        END IF;
    END IF;
    IF NOT v_existing THEN
        INSERT INTO public.users (id, email, display_name, password_hash, locale,
                                  password_changed_at, email_verified_at, created_at, updated_at)
        VALUES (p_new_user, v_inv.email,
                coalesce(NULLIF(p_display_name, ''),
                         nullif(concat_ws(' ', v_inv.first_name, v_inv.last_name), ''), ''),
                p_password_hash,
                coalesce(p_locale, (SELECT t.locale FROM public.tenants t WHERE t.id = v_tenant)),
                p_now, p_now, p_now, p_now);
        v_uid := p_new_user;
    ELSIF v_user.email_verified_at IS NULL THEN
        UPDATE public.users
        SET password_hash = p_password_hash, password_changed_at = p_now,
            email_verified_at = p_now, updated_at = p_now
        WHERE id = v_user.id;
        UPDATE public.sessions SET revoked_at = p_now, revoked_reason = 'password_reset'
        WHERE user_id = v_user.id AND revoked_at IS NULL;
        v_uid := v_user.id;
    ELSE
        v_uid := v_user.id;
    END IF;
    INSERT INTO public.memberships (id, tenant_id, user_id, roles, status, department,
                                    created_at, updated_at)
    VALUES (p_membership, v_tenant, v_uid, v_inv.roles, 'active', v_inv.department, p_now, p_now)
    ON CONFLICT (tenant_id, user_id) DO UPDATE
    SET roles = CASE
                    WHEN memberships.status = 'active' AND memberships.ended_at IS NULL
                    THEN ARRAY(SELECT DISTINCT r FROM unnest(memberships.roles || EXCLUDED.roles) AS r ORDER BY r)
                    ELSE EXCLUDED.roles
                END,
        status = 'active',
        ended_at = NULL,
        department = coalesce(EXCLUDED.department, memberships.department),
        updated_at = p_now;
    UPDATE public.invitations SET accepted_at = p_now, accepted_by = v_uid, updated_at = p_now
    WHERE id = v_inv.id;
    PERFORM app_private.enforce_seats(v_tenant, p_now);
    RETURN QUERY SELECT 'accepted'::text, v_inv.email, v_existing AND v_user.email_verified_at IS NOT NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.accept_invitation(uuid, bytea, uuid, text, text, text, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.accept_invitation(uuid, bytea, uuid, text, text, text, uuid, timestamptz) TO serein_app;

-- Accepting needs `accepted_at`/`accepted_by`, which the request role may not write: only the
-- definer above marks an invitation accepted.
