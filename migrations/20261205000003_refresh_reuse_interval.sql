-- Refresh rotation with a reuse interval (issue 10, item 6).
--
-- The problem: two refreshes of the same token sent at once (two tabs, a retry after a
-- timeout) answered 200 and 401 `refresh_reused`, and the whole session died. Like Supabase
-- Auth (REFRESH_TOKEN_REUSE_INTERVAL), Okta (rotation grace period) and Auth0 (reuse interval),
-- a token spent less than `p_reuse_interval` ago now answers with the SAME successor; after
-- that, or for a token whose successor has itself been spent (an older generation), reuse
-- still revokes the whole family.
--
-- "The same successor" without storing it: the server derives a child's plaintext from its
-- parent with a key only it holds (HKDF of the session's secret, itself derived from the
-- master key; see src/auth/flows/refresh.rs), so the database keeps hashes only. The server
-- sends the derived child's hash with every call; within the interval this definer checks
-- that the existing child has exactly that hash (so the plaintext the server returns is the
-- one the database knows) and mints nothing.
--
-- Proof rules kept from 20261204000002 (`rotate_refresh_token`), and made stronger:
-- * it acts only on the context's tenant and person (`app.current_tenant()`,
--   `app.current_user_id()`), never on an argument naming them;
-- * the proof is the presented refresh token itself, now its PLAINTEXT, hashed here: the
--   request role can read the hashes of the claimed person's refresh tokens (their policy shows
--   them), so a hash was a claim, not a proof: a context claiming a victim could read one and
--   plant a child whose secret it chose. A SHA-256 of 256 random bits cannot be inverted;
-- * the presented token must be unspent (or spent inside the interval, see above), unexpired,
--   and its session live (not revoked, idle and absolute lifetimes not reached);
-- * the spend, the session's idle extension and the child are all or nothing; the child
--   never outlives the session's absolute lifetime;
-- * reuse outside the interval revokes the session (the family) here, in the same call;
-- * the interval is clamped to [0, 60 s] whatever the caller passes, so a context cannot
--   turn reuse detection off (the server's setting has the same bounds).
-- The request role no longer needs to lock or mark refresh tokens itself: its column grant
-- UPDATE (used_at) is revoked (it let a context claiming a person spend that person's tokens,
-- and so revoke their session on its next refresh).
--
-- Outcomes (one row): rotated (child inserted; expires_at = the child's expiry), replayed
-- (the existing child is the answer; expires_at = its expiry), reused (session revoked),
-- expired (session or token past its life, or revoked), unknown (no such token here).

DROP FUNCTION app_private.rotate_refresh_token(bytea, uuid, bytea, timestamptz, timestamptz);

CREATE FUNCTION app_private.rotate_refresh_token(p_presented text, p_child_id uuid,
                                                 p_child_hash bytea, p_now timestamptz,
                                                 p_idle timestamptz, p_reuse_interval interval)
    RETURNS TABLE (outcome text, session_id uuid, expires_at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_parent   public.refresh_tokens%ROWTYPE;
    v_session  public.sessions%ROWTYPE;
    v_child    public.refresh_tokens%ROWTYPE;
    v_interval interval;
    v_idle     timestamptz;
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL OR p_presented IS NULL
       OR p_child_hash IS NULL OR p_now IS NULL THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    v_interval := least(greatest(coalesce(p_reuse_interval, interval '0'), interval '0'),
                        interval '60 seconds');
    -- Locks the presented token: a concurrent refresh of the same token waits here, then
    -- sees it spent (READ COMMITTED re-reads the row) and its child (a new snapshot per
    -- statement), and takes the replay branch.
    SELECT * INTO v_parent FROM public.refresh_tokens r
    WHERE r.tenant_id = app.current_tenant() AND r.user_id = app.current_user_id()
      AND r.token_hash = pg_catalog.sha256(pg_catalog.convert_to(p_presented, 'UTF8'))
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT * INTO v_session FROM public.sessions s
    WHERE s.tenant_id = v_parent.tenant_id AND s.id = v_parent.session_id
      AND s.user_id = v_parent.user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;

    IF v_parent.used_at IS NOT NULL THEN
        IF p_now < v_parent.used_at + v_interval
           AND v_session.revoked_at IS NULL
           AND v_session.idle_expires_at > p_now AND v_session.absolute_expires_at > p_now THEN
            SELECT * INTO v_child FROM public.refresh_tokens c
            WHERE c.tenant_id = v_parent.tenant_id AND c.session_id = v_parent.session_id
              AND c.parent_id = v_parent.id
            FOR UPDATE;
            IF FOUND AND v_child.used_at IS NULL AND v_child.expires_at > p_now
               AND v_child.token_hash = p_child_hash THEN
                RETURN QUERY SELECT 'replayed'::text, v_parent.session_id, v_child.expires_at;
                RETURN;
            END IF;
        END IF;
        UPDATE public.sessions s SET revoked_at = p_now, revoked_reason = 'refresh_reuse'
        WHERE s.tenant_id = v_session.tenant_id AND s.id = v_session.id
          AND s.revoked_at IS NULL;
        RETURN QUERY SELECT 'reused'::text, v_parent.session_id, NULL::timestamptz;
        RETURN;
    END IF;

    IF v_parent.expires_at <= p_now OR v_session.revoked_at IS NOT NULL
       OR v_session.idle_expires_at <= p_now OR v_session.absolute_expires_at <= p_now THEN
        RETURN QUERY SELECT 'expired'::text, v_parent.session_id, NULL::timestamptz;
        RETURN;
    END IF;

    v_idle := least(p_idle, v_session.absolute_expires_at);
    IF v_idle IS NULL OR v_idle <= p_now THEN
        RETURN QUERY SELECT 'expired'::text, v_parent.session_id, NULL::timestamptz;
        RETURN;
    END IF;
    UPDATE public.sessions s SET idle_expires_at = v_idle
    WHERE s.tenant_id = v_session.tenant_id AND s.id = v_session.id;
    UPDATE public.refresh_tokens r SET used_at = p_now WHERE r.id = v_parent.id;
    INSERT INTO public.refresh_tokens (id, tenant_id, session_id, user_id, parent_id, token_hash,
                                       created_at, expires_at)
    VALUES (p_child_id, v_parent.tenant_id, v_parent.session_id, v_parent.user_id, v_parent.id,
            p_child_hash, p_now, v_idle);
    RETURN QUERY SELECT 'rotated'::text, v_parent.session_id, v_idle;
END
$$;
REVOKE ALL ON FUNCTION app_private.rotate_refresh_token(text, uuid, bytea, timestamptz, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.rotate_refresh_token(text, uuid, bytea, timestamptz, timestamptz, interval) TO serein_app;

REVOKE UPDATE (used_at) ON refresh_tokens FROM serein_app;
