-- The request path's database side, made cheaper (issue 10). Same answers, same privileges.
--
-- `app_private.session_proof_mac` was a LANGUAGE sql function with a SET clause, so it could
-- never be inlined, and PostgreSQL 15 keeps a SQL function's parsed and planned body only for
-- the life of its caller's expression: called from `session_guard`'s PERFORM, whose executor
-- state is rebuilt on every call, the body was parsed, analysed and planned again on EVERY
-- authenticated request (measured with track_functions on the bench database: ~30 µs of the
-- guard's ~85 µs per call). As PL/pgSQL the statements keep their plans for the connection's
-- life. The MAC is byte for byte the same (same inputs, same formula), so proofs made by the
-- guard still match what `proven_user()` recomputes, and nothing else changes: not a definer,
-- `SET search_path = ''` kept, EXECUTE still revoked from PUBLIC (CREATE OR REPLACE keeps the
-- function's privileges and owner).
CREATE OR REPLACE FUNCTION app_private.session_proof_mac(p_tenant uuid, p_user uuid) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
DECLARE
    v_secret bytea;
BEGIN
    SELECT s.secret INTO v_secret FROM app_private.proof_secret s;
    RETURN pg_catalog.encode(pg_catalog.sha256(v_secret || pg_catalog.sha256(v_secret ||
               pg_catalog.convert_to(pg_catalog.concat_ws('|', 'serein session proof v1',
                   p_tenant::text, p_user::text, pg_catalog.pg_backend_pid()::text,
                   (EXTRACT(EPOCH FROM pg_catalog.transaction_timestamp()))::text), 'UTF8'))), 'hex');
END
$$;
REVOKE ALL ON FUNCTION app_private.session_proof_mac(uuid, uuid) FROM PUBLIC;

-- The same for two LANGUAGE sql definers on the request path: `own_totp_enabled()` (in the
-- SELECT of every GET /auth/me) and `resolve_tenant(slug)` (each miss of the server's tenant
-- cache). A SECURITY DEFINER function is never inlined, so as SQL their bodies were parsed and
-- planned again on every call; as PL/pgSQL the plan is kept per connection. Same results
-- (no row: NULL, resp. no row), same definer rules (`SET search_path = ''`, EXECUTE revoked from
-- PUBLIC and granted to the request role only, privileges kept by CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION app_private.own_totp_enabled()
    RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    RETURN (SELECT u.totp_enabled_at IS NOT NULL FROM public.users u
            WHERE u.id = app.current_user_id());
END
$$;
REVOKE ALL ON FUNCTION app_private.own_totp_enabled() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.own_totp_enabled() TO serein_app;

CREATE OR REPLACE FUNCTION app_private.resolve_tenant(p_slug text)
    RETURNS TABLE (id uuid, status text, web_origins text[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    RETURN QUERY
        SELECT t.id, t.status, t.web_origins FROM public.tenants t
        WHERE t.slug = p_slug AND t.managed_by <> 'platform';
END
$$;
REVOKE ALL ON FUNCTION app_private.resolve_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.resolve_tenant(text) TO serein_app;
