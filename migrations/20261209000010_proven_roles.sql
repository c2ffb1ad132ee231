-- Roles count only when the session guard proved them (STYLE 17; PROOF 8b "a role not held").
--
-- Threat closed: `app.current_roles()` read `app.roles`, a setting the request role writes
-- itself. The session guard checks the roles it is handed, but nothing stopped a transaction
-- that had passed the guard as an employee (or never called it) from setting
-- `app.roles = 'tenant_admin'` afterwards: every policy and definer that asked
-- `app.current_roles()` then believed it (membership and people administration, the member
-- list and search, seat checks, session revocation, HR's `member_summary`, the directory's
-- admin view, the identity rows of colleagues).
--
-- From now on:
-- * `app_private.session_guard`, once it has found the session live and the roles held (as
--   before: an active membership holding them, TOTP for admin roles, platform roles on the
--   platform host), also leaves a ROLES PROOF: `app.proven_roles` (the roles it checked,
--   sorted) and `app.roles_proof`, a keyed hash of (tenant, person, those roles, backend,
--   transaction start) that only definers can make — the same construction as the session
--   proof, so it is worthless in another transaction, on another connection, for another
--   person, company or role list.
-- * `app.current_roles()` answers the CLAIMED roles (`app.roles`) that the roles proof of this
--   transaction covers; without a valid proof, none. Claims narrow the answer, never widen it.
--   Every existing caller keeps its text: the function's name and type are unchanged.
-- The proof is the state of the membership when the transaction began, as the request was
-- authorised: a tenant admin who demotes themself keeps their rights until the end of that
-- request's transaction (the last-admin check and the session revocation that follow it in the
-- same transaction still run as the admin who asked), and not one transaction longer.
-- Operator commands run as the owner and never reach these policies.

CREATE FUNCTION app_private.roles_proof_mac(p_tenant uuid, p_user uuid, p_roles text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
DECLARE
    v_secret bytea;
BEGIN
    SELECT s.secret INTO v_secret FROM app_private.proof_secret s;
    RETURN pg_catalog.encode(pg_catalog.sha256(v_secret || pg_catalog.sha256(v_secret ||
               pg_catalog.convert_to(pg_catalog.concat_ws('|', 'serein roles proof v1',
                   p_tenant::text, p_user::text, p_roles, pg_catalog.pg_backend_pid()::text,
                   (EXTRACT(EPOCH FROM pg_catalog.transaction_timestamp()))::text), 'UTF8'))), 'hex');
END
$$;
REVOKE ALL ON FUNCTION app_private.roles_proof_mac(uuid, uuid, text) FROM PUBLIC;

-- The session guard of migration 20261204000002, unchanged but for the roles proof it leaves.
CREATE OR REPLACE FUNCTION app_private.session_guard(p_tenant uuid, p_user uuid, p_session uuid,
                                                     p_secret bytea, p_roles text[], p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_roles text;
BEGIN
    IF p_tenant IS NOT DISTINCT FROM app.current_tenant()
       AND p_user IS NOT DISTINCT FROM app.current_user_id()
       AND EXISTS (
        SELECT 1
        FROM public.sessions s
        JOIN public.users u ON u.id = s.user_id
        LEFT JOIN public.memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
        WHERE s.id = p_session AND s.tenant_id = p_tenant AND s.user_id = p_user
          AND s.secret_hash = pg_catalog.sha256(p_secret)
          AND s.revoked_at IS NULL AND s.idle_expires_at > p_now AND s.absolute_expires_at > p_now
          AND u.status = 'active'
          AND cardinality(p_roles) > 0
          -- Admin roles act only with TOTP enabled (a promotion or a disabled TOTP bites at once).
          AND (NOT (p_roles && ARRAY['tenant_admin', 'platform_admin']) OR u.totp_enabled_at IS NOT NULL)
          AND CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000'
                   THEN u.platform_roles @> p_roles
                   ELSE m.status = 'active' AND m.roles @> p_roles
              END
    ) THEN
        -- The session proof the key doors read (migration 20261204000001_key_definers):
        -- a keyed hash of (tenant, person, backend, transaction start) only definers can make.
        PERFORM pg_catalog.set_config('app.session_proof',
                                      app_private.session_proof_mac(p_tenant, p_user), true);
        -- The roles proof `app.current_roles()` reads (this migration).
        v_roles := pg_catalog.array_to_string(
            ARRAY(SELECT DISTINCT r FROM pg_catalog.unnest(p_roles) AS x (r) ORDER BY r), ',');
        PERFORM pg_catalog.set_config('app.proven_roles', v_roles, true);
        PERFORM pg_catalog.set_config('app.roles_proof',
                                      app_private.roles_proof_mac(p_tenant, p_user, v_roles), true);
        RETURN true;
    END IF;
    RAISE EXCEPTION 'session is no longer valid' USING ERRCODE = 'SR401';
END
$$;

-- The claimed roles the roles proof of this transaction covers.
CREATE FUNCTION app_private.held_roles(p_claimed text[]) RETURNS text[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user   uuid := app.current_user_id();
    v_roles  text := NULLIF(pg_catalog.current_setting('app.proven_roles', true), '');
    v_proof  text := NULLIF(pg_catalog.current_setting('app.roles_proof', true), '');
BEGIN
    IF p_claimed IS NULL OR cardinality(p_claimed) = 0 OR v_tenant IS NULL OR v_user IS NULL
       OR v_roles IS NULL OR v_proof IS NULL
       OR v_proof IS DISTINCT FROM app_private.roles_proof_mac(v_tenant, v_user, v_roles)
       OR app_private.proven_person() IS NULL THEN
        RETURN '{}'::text[];
    END IF;
    RETURN ARRAY(
        SELECT DISTINCT c.r
        FROM pg_catalog.unnest(p_claimed) AS c (r)
        WHERE c.r = ANY (pg_catalog.string_to_array(v_roles, ','))
        ORDER BY c.r);
END
$$;
REVOKE ALL ON FUNCTION app_private.held_roles(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.held_roles(text[]) TO serein_app;

CREATE OR REPLACE FUNCTION app.current_roles() RETURNS text[]
    LANGUAGE sql STABLE
    AS $$
    SELECT app_private.held_roles(
        COALESCE(pg_catalog.string_to_array(NULLIF(pg_catalog.current_setting('app.roles', true), ''), ','),
                 '{}'::text[]))
$$;
