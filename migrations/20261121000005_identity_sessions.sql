-- Identity and access: the platform tenant, credentials, sessions, one-time tokens, lockout.
--
-- Design rules this migration follows:
-- * Credentials (password hash, TOTP secret and replay step, recovery codes) are never granted
--   to the request role. They are read and written through narrow SECURITY DEFINER functions in
--   app_private, and every function that touches a person's credentials acts only on
--   `app.current_user_id()` — the request must already be bound to that person.
-- * Sessions and one-time tokens are tenant tables under the usual forced RLS. Platform admins'
--   rows live in the platform tenant (below), so the platform host is isolated from every
--   company by the same policies.
-- * Security counters (failed logins, TOTP failures) live here, not in process memory, so a
--   lockout holds across every server instance.

-- ---------------------------------------------------------------------------------------------
-- The platform tenant ("tenant zero"). Requests on the bare BASE_DOMAIN run in its context. Its
-- slug is reserved, so no Host can ever resolve to it, and `resolve_tenant` refuses it anyway.
ALTER TABLE tenants DROP CONSTRAINT tenants_managed_by_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_managed_by_check
    CHECK (managed_by IN ('file', 'api', 'platform'));
-- Only tenant zero may be managed by the platform itself.
ALTER TABLE tenants ADD CONSTRAINT tenants_platform_row_check
    CHECK ((managed_by = 'platform') = (id = '00000000-0000-0000-0000-000000000000'));

INSERT INTO tenants (id, slug, name, plan, managed_by)
VALUES ('00000000-0000-0000-0000-000000000000', 'platform', 'Serein platform', 'enterprise', 'platform')
ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION app_private.resolve_tenant(p_slug text)
    RETURNS TABLE (id uuid, status text, web_origins text[])
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT t.id, t.status, t.web_origins FROM public.tenants t
        WHERE t.slug = p_slug AND t.managed_by <> 'platform'
    $$;
REVOKE ALL ON FUNCTION app_private.resolve_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.resolve_tenant(text) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Credentials on the global identity. None of these columns is granted to the request role.
ALTER TABLE users
    ADD COLUMN locale              text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'fr')),
    ADD COLUMN password_changed_at timestamptz,
    -- Sealed (AES-256-GCM, identity scope) TOTP secret; pending until totp_enabled_at is set.
    ADD COLUMN totp_secret         bytea,
    ADD COLUMN totp_enabled_at     timestamptz,
    -- Highest TOTP time step ever accepted: a code is accepted once (replay guard).
    ADD COLUMN totp_last_step      bigint;

GRANT SELECT (locale, totp_enabled_at) ON users TO serein_app;
GRANT UPDATE (locale) ON users TO serein_app;

-- Single-use TOTP recovery codes, stored as SHA-256 of an 80-bit random code.
-- GLOBAL TABLE (no tenant_id), deliberately: the codes belong to the identity, which is global
-- like `users`, and unlock it on every tenant. RLS is forced with NO policy and NO grant, so the
-- request role sees nothing; only the app_private functions bound to app.current_user_id() below
-- read or spend them.
CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes FORCE ROW LEVEL SECURITY;

-- Failed-attempt counters (login per tenant and e-mail, TOTP per person, reset mails), keyed by
-- SHA-256 of a purpose-prefixed subject so unknown e-mails are counted exactly like known ones.
-- GLOBAL TABLE (no tenant_id), deliberately: a key is a hash that names no tenant row and the
-- counters must hold across every server instance before anyone is authenticated. RLS is forced
-- with NO policy and NO grant; only throttle_begin / throttle_clear touch it.
CREATE TABLE auth_throttle (
    key_hash     bytea PRIMARY KEY CHECK (length(key_hash) = 32),
    attempts     integer NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);
ALTER TABLE auth_throttle ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_throttle FORCE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- Sessions: one per login, the refresh-token family. `id` is the `sid` claim of access tokens.
CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL,
    -- Moved forward on every refresh; a session unused for the idle lifetime is dead.
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_reason      text CHECK (revoked_reason IN
                        ('logout', 'refresh_reuse', 'password_reset', 'mfa_change', 'membership_change', 'admin')),
    CONSTRAINT sessions_tenant_id_key UNIQUE (tenant_id, id),
    CHECK (idle_expires_at <= absolute_expires_at)
);
CREATE INDEX sessions_tenant_user_idx ON sessions (tenant_id, user_id);
-- Password reset revokes a person's sessions in every tenant (definer function below).
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    session_id  uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The token this one replaced (NULL for the first of a family).
    parent_id   uuid,
    -- SHA-256 of the opaque 256-bit token; the token itself is never stored.
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT refresh_tokens_session_fkey FOREIGN KEY (tenant_id, session_id)
        REFERENCES sessions (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (tenant_id, token_hash)
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (tenant_id, session_id);

-- Single-use e-mailed tokens (password reset, e-mail verification), stored as SHA-256.
CREATE TABLE auth_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('password_reset', 'email_verify')),
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT auth_tokens_hash_key UNIQUE (tenant_id, token_hash)
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens (tenant_id, user_id, purpose);

-- Policies: a row is readable and updatable only in its tenant AND by its person. Every flow
-- that touches these tables knows the person first: login after the password check, and the
-- refresh, reset and verification tokens carry the user id in clear before their secret part
-- (`{user}.{secret}`), so the transaction is bound to that person before the hash is looked up.
-- The request role may not INSERT at all: rows are created only by the definer functions below,
-- which take tenant and person from the request's context (never from arguments), so no code
-- path can mint a session or a reset token for someone else.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_own_read ON sessions FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY sessions_own_update ON sessions FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_own_read ON refresh_tokens FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY refresh_tokens_own_update ON refresh_tokens FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));

ALTER TABLE auth_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY auth_tokens_own_read ON auth_tokens FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY auth_tokens_own_update ON auth_tokens FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));

GRANT SELECT ON sessions, refresh_tokens, auth_tokens TO serein_app;
GRANT UPDATE (revoked_at, revoked_reason, idle_expires_at) ON sessions TO serein_app;
GRANT UPDATE (used_at) ON refresh_tokens TO serein_app;
GRANT UPDATE (used_at) ON auth_tokens TO serein_app;

-- A new session with its first refresh token, for the request's tenant and person.
CREATE FUNCTION app_private.open_session(p_session uuid, p_refresh uuid, p_refresh_hash bytea,
                                         p_now timestamptz, p_idle timestamptz, p_absolute timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RAISE EXCEPTION 'no tenant or person in context' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
    VALUES (p_session, app.current_tenant(), app.current_user_id(), p_now, p_idle, p_absolute);
    INSERT INTO public.refresh_tokens (id, tenant_id, session_id, user_id, parent_id, token_hash, created_at, expires_at)
    VALUES (p_refresh, app.current_tenant(), p_session, app.current_user_id(), NULL, p_refresh_hash, p_now, p_idle);
END
$$;

-- The child of a spent refresh token, in a live session of the request's person.
CREATE FUNCTION app_private.add_refresh_token(p_session uuid, p_id uuid, p_parent uuid, p_hash bytea,
                                              p_now timestamptz, p_expires timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    INSERT INTO public.refresh_tokens (id, tenant_id, session_id, user_id, parent_id, token_hash, created_at, expires_at)
    SELECT p_id, s.tenant_id, s.id, s.user_id, p_parent, p_hash, p_now, p_expires
    FROM public.sessions s
    WHERE s.id = p_session AND s.tenant_id = app.current_tenant() AND s.user_id = app.current_user_id()
      AND s.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no live session of the current person' USING ERRCODE = '42501';
    END IF;
END
$$;

-- A single-use e-mailed token for the request's tenant and person.
CREATE FUNCTION app_private.issue_auth_token(p_id uuid, p_purpose text, p_hash bytea,
                                             p_now timestamptz, p_expires timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RAISE EXCEPTION 'no tenant or person in context' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
    VALUES (p_id, app.current_tenant(), app.current_user_id(), p_purpose, p_hash, p_now, p_expires);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The session guard, called inside every authenticated request's context statement (same round
-- trip): the session is live, the person active, and every role the token claims is still held
-- (membership active in the tenant; platform roles on the platform tenant). Otherwise it raises
-- SQLSTATE SR401, which the server answers with 401 — a revoked session, disabled membership or
-- removed role is refused on the very next request, not at token expiry.
CREATE FUNCTION app_private.session_guard(p_tenant uuid, p_user uuid, p_session uuid,
                                          p_roles text[], p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM public.sessions s
        JOIN public.users u ON u.id = s.user_id
        LEFT JOIN public.memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
        WHERE s.id = p_session AND s.tenant_id = p_tenant AND s.user_id = p_user
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
        RETURN true;
    END IF;
    RAISE EXCEPTION 'session is no longer valid' USING ERRCODE = 'SR401';
END
$$;
REVOKE ALL ON FUNCTION app_private.session_guard(uuid, uuid, uuid, text[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.session_guard(uuid, uuid, uuid, text[], timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Login look-up: everything login needs about one e-mail in one tenant, before anyone is
-- authenticated. Returns no row for an unknown e-mail. On a company tenant the roles are the
-- membership's; on the platform tenant they are the person's platform roles.
CREATE FUNCTION app_private.login_identity(p_tenant uuid, p_email text)
    RETURNS TABLE (user_id uuid, password_hash text, user_active boolean, email_verified boolean,
                   totp_enabled boolean, locale text, roles text[], member_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.id, u.password_hash, u.status = 'active', u.email_verified_at IS NOT NULL,
               u.totp_enabled_at IS NOT NULL, u.locale,
               CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000' THEN u.platform_roles
                    ELSE coalesce(m.roles, '{}') END,
               CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000'
                    THEN cardinality(u.platform_roles) > 0
                    ELSE coalesce(m.status = 'active', false) END
        FROM public.users u
        LEFT JOIN public.memberships m ON m.user_id = u.id AND m.tenant_id = p_tenant
        WHERE u.email = lower(p_email)
          -- Only before anyone is authenticated, and only for the request's own tenant.
          AND app.current_user_id() IS NULL
          AND p_tenant = app.current_tenant()
    $$;
REVOKE ALL ON FUNCTION app_private.login_identity(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.login_identity(uuid, text) TO serein_app;

-- Create a global identity (self-sign-up, CLI). Returns false when the e-mail is taken (the
-- caller must not reveal that to the client).
CREATE FUNCTION app_private.create_identity(p_id uuid, p_email text, p_display_name text,
                                            p_password_hash text, p_locale text, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    INSERT INTO public.users (id, email, display_name, password_hash, locale, password_changed_at,
                              created_at, updated_at)
    VALUES (p_id, lower(p_email), p_display_name, p_password_hash, p_locale,
            CASE WHEN p_password_hash IS NULL THEN NULL ELSE p_now END, p_now, p_now)
    ON CONFLICT (email) DO NOTHING;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION app_private.create_identity(uuid, text, text, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.create_identity(uuid, text, text, text, text, timestamptz) TO serein_app;

-- The current person's own credentials (request bound to them).
CREATE FUNCTION app_private.set_password(p_hash text, p_now timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
        UPDATE public.users SET password_hash = p_hash, password_changed_at = p_now, updated_at = p_now
        WHERE id = app.current_user_id()
    $$;

CREATE FUNCTION app_private.mark_email_verified(p_now timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
        UPDATE public.users SET email_verified_at = coalesce(email_verified_at, p_now), updated_at = p_now
        WHERE id = app.current_user_id()
    $$;

-- Revoke every live session of the current person, in every tenant (password reset, TOTP change).
CREATE FUNCTION app_private.revoke_all_sessions(p_reason text, p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE n integer;
BEGIN
    UPDATE public.sessions SET revoked_at = p_now, revoked_reason = p_reason
    WHERE user_id = app.current_user_id() AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION app_private.totp_state()
    RETURNS TABLE (secret bytea, enabled boolean, last_step bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.totp_secret, u.totp_enabled_at IS NOT NULL, u.totp_last_step
        FROM public.users u WHERE u.id = app.current_user_id()
    $$;

-- Store a new, not yet enabled secret (setup). Refused while TOTP is enabled: disable first.
CREATE FUNCTION app_private.totp_set_pending(p_secret bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.users SET totp_secret = p_secret, totp_last_step = NULL, updated_at = p_now
    WHERE id = app.current_user_id() AND totp_enabled_at IS NULL;
    RETURN FOUND;
END
$$;

-- Accept a verified time step once: succeeds only if it is newer than every step accepted
-- before (concurrent replays of one code: exactly one wins).
CREATE FUNCTION app_private.totp_accept_step(p_step bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.users SET totp_last_step = p_step
    WHERE id = app.current_user_id() AND totp_secret IS NOT NULL
      AND (totp_last_step IS NULL OR totp_last_step < p_step);
    RETURN FOUND;
END
$$;

-- Enable with fresh recovery codes (replacing any previous ones).
CREATE FUNCTION app_private.totp_enable(p_code_hashes bytea[], p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.users SET totp_enabled_at = p_now, updated_at = p_now
    WHERE id = app.current_user_id() AND totp_secret IS NOT NULL AND totp_enabled_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.recovery_codes WHERE user_id = app.current_user_id();
    INSERT INTO public.recovery_codes (user_id, code_hash)
    SELECT app.current_user_id(), h FROM unnest(p_code_hashes) AS h;
    RETURN true;
END
$$;

CREATE FUNCTION app_private.totp_disable(p_now timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
        DELETE FROM public.recovery_codes WHERE user_id = app.current_user_id();
        UPDATE public.users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL,
                                updated_at = p_now
        WHERE id = app.current_user_id();
    $$;

-- Spend one recovery code (single use; concurrent uses of one code: exactly one wins).
CREATE FUNCTION app_private.use_recovery_code(p_hash bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.recovery_codes SET used_at = p_now
    WHERE user_id = app.current_user_id() AND code_hash = p_hash AND used_at IS NULL;
    RETURN FOUND;
END
$$;

CREATE FUNCTION app_private.recovery_codes_left()
    RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT count(*)::integer FROM public.recovery_codes
        WHERE user_id = app.current_user_id() AND used_at IS NULL
    $$;

-- ---------------------------------------------------------------------------------------------
-- Failed-attempt budget. `throttle_begin` spends one attempt BEFORE the credential is checked,
-- atomically (row lock), so N parallel guesses cannot exceed the budget: once `p_max` attempts
-- are spent inside the window the key is locked for `p_lock_secs`. `locked_now` tells the caller
-- this attempt spent the last one (send the lock-out notice if it then fails). A success clears
-- the key (`throttle_clear`).
CREATE FUNCTION app_private.throttle_begin(p_key bytea, p_max integer, p_window_secs integer,
                                           p_lock_secs integer, p_now timestamptz)
    RETURNS TABLE (allowed boolean, retry_after_secs integer, locked_now boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE r public.auth_throttle;
BEGIN
    INSERT INTO public.auth_throttle (key_hash, attempts, window_start)
    VALUES (p_key, 0, p_now) ON CONFLICT (key_hash) DO NOTHING;
    SELECT * INTO r FROM public.auth_throttle WHERE key_hash = p_key FOR UPDATE;
    IF r.locked_until IS NOT NULL AND r.locked_until > p_now THEN
        RETURN QUERY SELECT false, greatest(1, ceil(extract(epoch FROM r.locked_until - p_now))::integer), false;
        RETURN;
    END IF;
    IF r.locked_until IS NOT NULL OR r.window_start + make_interval(secs => p_window_secs) <= p_now THEN
        r.attempts := 0;
        r.window_start := p_now;
        r.locked_until := NULL;
    END IF;
    r.attempts := r.attempts + 1;
    IF r.attempts >= p_max THEN
        r.locked_until := p_now + make_interval(secs => p_lock_secs);
    END IF;
    UPDATE public.auth_throttle
    SET attempts = r.attempts, window_start = r.window_start, locked_until = r.locked_until
    WHERE key_hash = p_key;
    -- Now and then, forget keys whose window and lock are long over (unknown e-mails tried
    -- once would otherwise accumulate forever).
    IF random() < 0.01 THEN
        DELETE FROM public.auth_throttle
        WHERE ctid IN (SELECT ctid FROM public.auth_throttle
                       WHERE greatest(window_start + make_interval(secs => p_window_secs),
                                      coalesce(locked_until, '-infinity')) < p_now - interval '1 day'
                       LIMIT 1000);
    END IF;
    RETURN QUERY SELECT true, 0, r.attempts >= p_max;
END
$$;

CREATE FUNCTION app_private.throttle_clear(p_key bytea)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
        DELETE FROM public.auth_throttle WHERE key_hash = p_key
    $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.set_password(text, timestamptz)',
        'app_private.mark_email_verified(timestamptz)',
        'app_private.revoke_all_sessions(text, timestamptz)',
        'app_private.totp_state()',
        'app_private.totp_set_pending(bytea, timestamptz)',
        'app_private.totp_accept_step(bigint)',
        'app_private.totp_enable(bytea[], timestamptz)',
        'app_private.totp_disable(timestamptz)',
        'app_private.use_recovery_code(bytea, timestamptz)',
        'app_private.recovery_codes_left()',
        'app_private.throttle_begin(bytea, integer, integer, integer, timestamptz)',
        'app_private.throttle_clear(bytea)',
        'app_private.open_session(uuid, uuid, bytea, timestamptz, timestamptz, timestamptz)',
        'app_private.add_refresh_token(uuid, uuid, uuid, bytea, timestamptz, timestamptz)',
        'app_private.issue_auth_token(uuid, text, bytea, timestamptz, timestamptz)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_app', f);
    END LOOP;
END $$;
