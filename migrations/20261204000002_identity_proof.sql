-- Identity definers demand proof (issue 9, items 3, 4, 5, 10).
--
-- The threat: the request role can set any custom setting, so `app.user_id` is a claim, not a
-- proof. Before this migration a context holding only `set_config('app.user_id', <victim>)`
-- could open a session for the victim, set their password, disable their TOTP, issue them a
-- reset link whose hash it chose, and then pass `session_guard`; `login_identity` handed the
-- password hash of any person on the platform to any anonymous context; self-sign-up took a
-- seat before the address was verified; a reset left the person's reset links of other
-- companies alive.
--
-- Rules from here on:
-- * A credential definer acts only on the context's person AND only with a proof spent in the
--   same transaction. Proofs live in `auth_proofs`, which the request role can neither read nor
--   write (no grant; RLS forced): only definers record them, keyed by the transaction
--   (`pg_current_xact_id()`), the tenant, the person and the kind of proof, and a proof is
--   consumed by the definer it unlocks. A row of another transaction is never accepted (its xid
--   differs); rows of finished transactions are garbage, swept now and then.
-- * The kinds of proof, who records them, who spends them:
--     link_password_reset  spend_auth_token (a reset / set-password link, by its hash)
--                          → set_password
--     link_email_verify    spend_auth_token (a verification link, by its hash)
--                          → mark_email_verified (which also joins the company: item 3)
--     identity_created     create_identity (the identity was created in this transaction)
--                          → issue_auth_token (its verification link only; reset links are
--                          made by queue_password_reset, whose secret the request never sees)
--     login                login_challenge (the person's current password hash is the one the
--                          server has just verified the password against) → open_session
--     second_factor        totp_accept_step / use_recovery_code → open_session (TOTP users),
--                          totp_enable, totp_disable
--     session proof       session_guard, once it has found the session live AND been handed
--                          its secret (below) → the key doors (`proven_user()`) and
--                          proven_password_hash (TOTP setup re-checks the password). A keyed
--                          hash in `app.session_proof` bound to tenant, person, backend and
--                          transaction start (migration 20261204000001_key_definers): writing
--                          no row, so read-only requests stay read-only.
--   Refresh rotation (`rotate_refresh_token`) takes the presented refresh token's hash as its
--   proof; `add_refresh_token` is no longer granted.
-- * `session_guard` is bound to the context: it answers only for the context's own tenant and
--   person, so a guard call says something about the transaction it runs in.
--
-- Residual trust, stated honestly:
-- * Argon2 runs in the server, not in PostgreSQL: `login_challenge` proves that the login flow
--   looked the person up and that the hash it verified is still current, not that the password
--   was right. Likewise a TOTP code is verified in the server (the secret is sealed with the
--   application's key); `totp_accept_step` proves only a fresh time step. A recovery code and an
--   e-mailed link are verified here, by their hashes: those proofs are complete.
-- * A session id is no secret from a context that claims the person (the sessions policy
--   shows them their own rows), so the guard demands the session's SECRET, which the server
--   derives from the master key (the database stores its SHA-256 in a column the request role
--   cannot read). What stays trusted is the server's own code holding the master key.
-- * `totp_set_pending`, `revoke_all_sessions`, `totp_state` and `recovery_codes_left` still act
--   on `app.current_user_id()` without proof: they never mint a credential the caller can use
--   (a pending secret works only after `totp_enable`, which needs a second-factor proof).
--
-- Item 3: a self-sign-up creates the identity and a verification link only; the membership is
-- created when the link and the password are presented (`mark_email_verified`), and the seats
-- are enforced then (SR409: nothing is created, the link still works). `join_by_signup` is
-- internal from now on.
-- Item 5: `login_identity` returns a row (and a hash) only for a member of the context's
-- tenant, or a platform admin on the platform tenant; anyone else gets no row, for which the
-- server runs its dummy verification (same timing class).
-- Item 10: "forgot password" runs one transaction for every address: the budget spend and
-- `queue_password_reset` (which writes the link and its mail for a member, nothing otherwise),
-- so a member's address costs no second transaction and no second fsync; `set_password`
-- retires every reset link of the person, in every tenant.

-- ---------------------------------------------------------------------------------------------
-- Proofs. UNLOGGED: a proof never outlives its transaction, so it needs no WAL and no crash
-- safety (and recording one costs no fsync). tenant_id leads every key like every tenant table;
-- no grant: the policy below is unreachable and exists so that a future grant could never
-- expose another tenant's or person's rows.
CREATE UNLOGGED TABLE auth_proofs (
    tenant_id  uuid NOT NULL,
    xid        xid8 NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('link_password_reset', 'link_email_verify',
                                             'identity_created', 'login', 'second_factor')),
    user_id    uuid NOT NULL,
    PRIMARY KEY (tenant_id, xid, kind, user_id)
);
CREATE INDEX auth_proofs_xid_idx ON auth_proofs (xid);
ALTER TABLE auth_proofs ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_proofs FORCE ROW LEVEL SECURITY;
CREATE POLICY auth_proofs_own ON auth_proofs TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND user_id = (SELECT app.current_user_id()));
REVOKE ALL ON auth_proofs FROM serein_app;

-- Record a proof for the context's tenant and `p_user` (internal: called by definers only).
CREATE FUNCTION app_private.proof_record(p_kind text, p_user uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR p_user IS NULL THEN
        RAISE EXCEPTION 'no tenant or person in context' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.auth_proofs (tenant_id, xid, kind, user_id)
    VALUES (app.current_tenant(), pg_catalog.pg_current_xact_id(), p_kind, p_user)
    ON CONFLICT DO NOTHING;
    -- Now and then, sweep proofs of transactions that have finished (older than every running
    -- transaction): they can never be accepted again.
    IF pg_catalog.random() < 0.02 THEN
        DELETE FROM public.auth_proofs
        WHERE xid < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.proof_record(text, uuid) FROM PUBLIC;

-- Consume a proof of this transaction for the context's tenant and person (internal).
CREATE FUNCTION app_private.proof_take(p_kind text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM public.auth_proofs
    WHERE tenant_id = app.current_tenant() AND xid = pg_catalog.pg_current_xact_id()
      AND kind = p_kind AND user_id = app.current_user_id();
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION app_private.proof_take(text) FROM PUBLIC;

-- Does this transaction hold a proof of that kind (without consuming it)? Internal.
CREATE FUNCTION app_private.proof_held(p_kind text)
    RETURNS boolean
    LANGUAGE sql VOLATILE
    SET search_path = ''
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.auth_proofs
            WHERE tenant_id = app.current_tenant() AND xid = pg_catalog.pg_current_xact_id()
              AND kind = p_kind AND user_id = app.current_user_id())
    $$;
REVOKE ALL ON FUNCTION app_private.proof_held(text) FROM PUBLIC;

-- Sessions carry a secret. A session id is no secret from a context that claims the person
-- (the sessions policy shows them their own rows), so holding an id proved nothing. The server
-- derives each session's secret from the master key and the session id
-- (`Keyring::session_secret`); the database keeps only its SHA-256, in a column the request role
-- cannot read; the guard demands the secret itself. A context crafted with someone's
-- `app.user_id` can name their sessions but can pass the guard for none of them, so it gets
-- neither the session proof of the key doors nor a password hash. Sessions opened before this
-- migration have no secret and fail the guard: their people sign in again.
ALTER TABLE sessions ADD COLUMN secret_hash bytea CHECK (length(secret_hash) = 32);
REVOKE SELECT ON sessions FROM serein_app;
GRANT SELECT (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at,
              revoked_at, revoked_reason) ON sessions TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- The session guard answers only for the context's own tenant and person.
DROP FUNCTION app_private.session_guard(uuid, uuid, uuid, text[], timestamptz);
CREATE FUNCTION app_private.session_guard(p_tenant uuid, p_user uuid, p_session uuid,
                                          p_secret bytea, p_roles text[], p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
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
        RETURN true;
    END IF;
    RAISE EXCEPTION 'session is no longer valid' USING ERRCODE = 'SR401';
END
$$;
REVOKE ALL ON FUNCTION app_private.session_guard(uuid, uuid, uuid, bytea, text[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.session_guard(uuid, uuid, uuid, bytea, text[], timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Item 5: the login look-up returns a row only for a member of the context's tenant (any
-- membership status, so a disabled member is told apart only after the password check), or,
-- on the platform tenant, for a person holding a platform role.
CREATE OR REPLACE FUNCTION app_private.login_identity(p_tenant uuid, p_email text)
    RETURNS TABLE (user_id uuid, password_hash text, user_active boolean, email_verified boolean,
                   totp_enabled boolean, locale text, roles text[], member_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.id, u.password_hash, u.status = 'active', u.email_verified_at IS NOT NULL,
               u.totp_enabled_at IS NOT NULL, u.locale,
               CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000' THEN u.platform_roles
                    ELSE m.roles END,
               CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000'
                    THEN true
                    ELSE m.status = 'active' END
        FROM public.users u
        LEFT JOIN public.memberships m ON m.user_id = u.id AND m.tenant_id = p_tenant
        WHERE u.email = lower(p_email)
          AND CASE WHEN p_tenant = '00000000-0000-0000-0000-000000000000'
                   THEN cardinality(u.platform_roles) > 0
                   ELSE m.user_id IS NOT NULL END
          -- Only before anyone is authenticated, and only for the request's own tenant.
          AND app.current_user_id() IS NULL
          AND p_tenant = app.current_tenant()
    $$;

-- Login, after the server verified the password against `p_verified_hash`: record the proof
-- open_session spends, if that hash is still the person's current one and the person may sign
-- in here (active, verified address, active membership or platform role).
CREATE FUNCTION app_private.login_challenge(p_verified_hash text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user   uuid := app.current_user_id();
BEGIN
    IF v_tenant IS NULL OR v_user IS NULL OR p_verified_hash IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.users u
        LEFT JOIN public.memberships m ON m.user_id = u.id AND m.tenant_id = v_tenant
        WHERE u.id = v_user AND u.password_hash = p_verified_hash AND u.status = 'active'
          AND u.email_verified_at IS NOT NULL
          AND CASE WHEN v_tenant = '00000000-0000-0000-0000-000000000000'
                   THEN cardinality(u.platform_roles) > 0
                   ELSE m.status = 'active' END
    ) THEN
        RETURN false;
    END IF;
    PERFORM app_private.proof_record('login', v_user);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.login_challenge(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.login_challenge(text) TO serein_app;

-- A new session needs a login proof of this transaction, or, for a person with TOTP enabled,
-- a second-factor proof (the database holds the person to their second factor itself).
DROP FUNCTION app_private.open_session(uuid, uuid, bytea, timestamptz, timestamptz, timestamptz);
CREATE FUNCTION app_private.open_session(p_session uuid, p_secret bytea, p_refresh uuid, p_refresh_hash bytea,
                                         p_now timestamptz, p_idle timestamptz, p_absolute timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_totp boolean;
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RAISE EXCEPTION 'no tenant or person in context' USING ERRCODE = '42501';
    END IF;
    SELECT u.totp_enabled_at IS NOT NULL INTO v_totp
    FROM public.users u WHERE u.id = app.current_user_id() AND u.status = 'active';
    IF NOT FOUND
       OR NOT (CASE WHEN v_totp THEN app_private.proof_take('second_factor')
                    ELSE app_private.proof_take('login') END) THEN
        RAISE EXCEPTION 'no sign-in proof in this transaction' USING ERRCODE = '42501';
    END IF;
    IF p_secret IS NULL OR length(p_secret) <> 32 THEN
        RAISE EXCEPTION 'a session needs a 32-byte secret' USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at,
                                 secret_hash)
    VALUES (p_session, app.current_tenant(), app.current_user_id(), p_now, p_idle, p_absolute,
            pg_catalog.sha256(p_secret));
    INSERT INTO public.refresh_tokens (id, tenant_id, session_id, user_id, parent_id, token_hash, created_at, expires_at)
    VALUES (p_refresh, app.current_tenant(), p_session, app.current_user_id(), NULL, p_refresh_hash, p_now, p_idle);
END
$$;
REVOKE ALL ON FUNCTION app_private.open_session(uuid, bytea, uuid, bytea, timestamptz, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.open_session(uuid, bytea, uuid, bytea, timestamptz, timestamptz, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- One-time links. The request role no longer writes `auth_tokens` at all: spending goes
-- through this definer, which records the proof of the link.
-- Outcome: 'ok', 'unknown', 'used' or 'expired'. The link must name the context's person.
CREATE FUNCTION app_private.spend_auth_token(p_purpose text, p_hash bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_token public.auth_tokens%ROWTYPE;
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL
       OR p_purpose NOT IN ('password_reset', 'email_verify') THEN
        RETURN 'unknown';
    END IF;
    SELECT * INTO v_token FROM public.auth_tokens t
    WHERE t.tenant_id = app.current_tenant() AND t.purpose = p_purpose AND t.token_hash = p_hash
      AND t.user_id = app.current_user_id()
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'unknown';
    ELSIF v_token.used_at IS NOT NULL THEN
        RETURN 'used';
    ELSIF v_token.expires_at <= p_now THEN
        RETURN 'expired';
    END IF;
    UPDATE public.auth_tokens SET used_at = p_now WHERE id = v_token.id;
    PERFORM app_private.proof_record('link_' || p_purpose, app.current_user_id());
    RETURN 'ok';
END
$$;
REVOKE ALL ON FUNCTION app_private.spend_auth_token(text, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.spend_auth_token(text, bytea, timestamptz) TO serein_app;
REVOKE UPDATE ON auth_tokens FROM serein_app;

-- A new identity: as before, plus the proof that lets this transaction issue its verification
-- link.
CREATE OR REPLACE FUNCTION app_private.create_identity(p_id uuid, p_email text, p_display_name text,
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
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF app.current_tenant() IS NOT NULL THEN
        PERFORM app_private.proof_record('identity_created', p_id);
    END IF;
    RETURN true;
END
$$;

-- Only the verification link of an identity created in this transaction. Reset links are
-- queued by `queue_password_reset` (secret made in the database) and set-password links by the
-- practitioner definer of migration 0011.
CREATE OR REPLACE FUNCTION app_private.issue_auth_token(p_id uuid, p_purpose text, p_hash bytea,
                                                        p_now timestamptz, p_expires timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RAISE EXCEPTION 'no tenant or person in context' USING ERRCODE = '42501';
    END IF;
    IF p_purpose <> 'email_verify' OR NOT app_private.proof_take('identity_created') THEN
        RAISE EXCEPTION 'no proof for this link in this transaction' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
    VALUES (p_id, app.current_tenant(), app.current_user_id(), p_purpose, p_hash, p_now, p_expires);
END
$$;

-- "Forgot password", anonymous: queue a reset link for the address's owner if they may sign in
-- here (active person; active membership of the context's company, or a platform role on the
-- platform tenant). The DATABASE makes the link's secret and writes it straight into the
-- outbox row (replacing the placeholder the server rendered into the mail), so the request
-- role never holds it: no context, crafted or not, can mint a reset link it could spend. The
-- outbox is write-only for the request role. Returns whether a mail was queued (the handler
-- answers the same either way).
CREATE FUNCTION app_private.queue_password_reset(p_email text, p_mail uuid, p_subject text,
                                                 p_text text, p_html text,
                                                 p_now timestamptz, p_expires timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user   public.users%ROWTYPE;
    v_token  text;
BEGIN
    IF v_tenant IS NULL OR app.current_user_id() IS NOT NULL THEN
        RAISE EXCEPTION 'anonymous requests only' USING ERRCODE = '42501';
    END IF;
    IF pg_catalog.strpos(p_text, '__SEREIN_LINK_TOKEN__') = 0 THEN
        RAISE EXCEPTION 'the mail carries no link placeholder' USING ERRCODE = '22023';
    END IF;
    SELECT u.* INTO v_user
    FROM public.users u
    LEFT JOIN public.memberships m ON m.user_id = u.id AND m.tenant_id = v_tenant
    WHERE u.email = lower(p_email) AND u.status = 'active'
      AND CASE WHEN v_tenant = '00000000-0000-0000-0000-000000000000'
               THEN cardinality(u.platform_roles) > 0
               ELSE m.status = 'active' END;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- `{user id, 32 hex}.{256 bits, base64url}`, the format of the server's user tokens
    -- (two v4 UUIDs from the strong random source: 244 random bits).
    v_token := pg_catalog.replace(v_user.id::text, '-', '') || '.'
        || pg_catalog.translate(pg_catalog.encode(pg_catalog.decode(
               pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
               || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'), 'base64'),
           '+/=', '-_');
    INSERT INTO public.auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
    VALUES (p_mail, v_tenant, v_user.id, 'password_reset',
            pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), p_now, p_expires);
    INSERT INTO public.email_outbox (id, tenant_id, to_address, locale, template, subject,
                                     body_text, body_html, created_at, next_attempt_at)
    VALUES (p_mail, v_tenant, v_user.email, v_user.locale, 'password_reset', p_subject,
            pg_catalog.replace(p_text, '__SEREIN_LINK_TOKEN__', v_token),
            pg_catalog.replace(p_html, '__SEREIN_LINK_TOKEN__', v_token), p_now, p_now);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.queue_password_reset(text, uuid, text, text, text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.queue_password_reset(text, uuid, text, text, text, timestamptz, timestamptz) TO serein_app;

-- A new password, with the proof of a reset (or set-password) link spent in this transaction.
-- Receiving the link proves the address. Every reset link of the person, in every tenant, is
-- retired and every session everywhere revoked. Returns the number of sessions revoked.
DROP FUNCTION app_private.set_password(text, timestamptz);
CREATE FUNCTION app_private.set_password(p_hash text, p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_user uuid := app.current_user_id();
    n integer;
BEGIN
    IF NOT app_private.proof_take('link_password_reset') THEN
        RAISE EXCEPTION 'no reset link spent in this transaction' USING ERRCODE = '42501';
    END IF;
    UPDATE public.users
    SET password_hash = p_hash, password_changed_at = p_now,
        email_verified_at = coalesce(email_verified_at, p_now), updated_at = p_now
    WHERE id = v_user;
    UPDATE public.auth_tokens SET used_at = p_now
    WHERE user_id = v_user AND purpose = 'password_reset' AND used_at IS NULL;
    UPDATE public.sessions SET revoked_at = p_now, revoked_reason = 'password_reset'
    WHERE user_id = v_user AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION app_private.set_password(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.set_password(text, timestamptz) TO serein_app;

-- The context's person's password hash, for the server to re-check a password: only when the
-- session guard checked their session AND its secret in this transaction (TOTP setup: the
-- session proof of `app_private.proven_user()`), or a verification link was spent in it
-- (e-mail verification). Never to an anonymous or unproven context.
CREATE FUNCTION app_private.proven_password_hash()
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_hash text;
BEGIN
    IF NOT (app_private.proven_user() IS NOT NULL
            OR app_private.proof_held('link_email_verify')) THEN
        RAISE EXCEPTION 'no session or link proof in this transaction' USING ERRCODE = '42501';
    END IF;
    SELECT u.password_hash INTO v_hash FROM public.users u WHERE u.id = app.current_user_id();
    RETURN v_hash;
END
$$;
REVOKE ALL ON FUNCTION app_private.proven_password_hash() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.proven_password_hash() TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Item 3: self-sign-up joins the company only here, once the address is verified. Internal
-- from now on (callers: mark_email_verified). Seats are enforced (SR409 rolls back).
CREATE OR REPLACE FUNCTION app_private.join_by_signup(p_membership uuid, p_now timestamptz)
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
        WHERE u.id = v_user AND t.status = 'active' AND u.email_verified_at IS NOT NULL
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
REVOKE ALL ON FUNCTION app_private.join_by_signup(uuid, timestamptz) FROM serein_app;

-- Verification, with the proof of a verification link spent in this transaction (the server
-- has also checked the password against `proven_password_hash`). Marks the address verified,
-- and joins the company as an employee when self-sign-up is open to the address here and the
-- person has no membership yet. Returns whether a membership was created. SR409 when the seats
-- are full: the whole transaction rolls back.
DROP FUNCTION app_private.mark_email_verified(timestamptz);
CREATE FUNCTION app_private.mark_email_verified(p_membership uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user   uuid := app.current_user_id();
BEGIN
    IF NOT app_private.proof_take('link_email_verify') THEN
        RAISE EXCEPTION 'no verification link spent in this transaction' USING ERRCODE = '42501';
    END IF;
    UPDATE public.users SET email_verified_at = coalesce(email_verified_at, p_now), updated_at = p_now
    WHERE id = v_user;
    IF v_tenant <> '00000000-0000-0000-0000-000000000000'::uuid
       AND NOT EXISTS (SELECT 1 FROM public.memberships m
                       WHERE m.tenant_id = v_tenant AND m.user_id = v_user)
       AND EXISTS (SELECT 1 FROM public.users u JOIN public.tenants t ON t.id = v_tenant
                   WHERE u.id = v_user AND t.status = 'active'
                     AND pg_catalog.split_part(u.email, '@', 2) = ANY (t.allowed_email_domains)) THEN
        RETURN app_private.join_by_signup(p_membership, p_now);
    END IF;
    RETURN false;
END
$$;
REVOKE ALL ON FUNCTION app_private.mark_email_verified(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.mark_email_verified(uuid, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Second factor: an accepted time step or a spent recovery code is recorded as a proof.
CREATE OR REPLACE FUNCTION app_private.totp_accept_step(p_step bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.users SET totp_last_step = p_step
    WHERE id = app.current_user_id() AND totp_secret IS NOT NULL
      AND (totp_last_step IS NULL OR totp_last_step < p_step);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM app_private.proof_record('second_factor', app.current_user_id());
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION app_private.use_recovery_code(p_hash bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    UPDATE public.recovery_codes SET used_at = p_now
    WHERE user_id = app.current_user_id() AND code_hash = p_hash AND used_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM app_private.proof_record('second_factor', app.current_user_id());
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION app_private.totp_enable(p_code_hashes bytea[], p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.proof_take('second_factor') THEN
        RAISE EXCEPTION 'no second-factor proof in this transaction' USING ERRCODE = '42501';
    END IF;
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

DROP FUNCTION app_private.totp_disable(timestamptz);
CREATE FUNCTION app_private.totp_disable(p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.proof_take('second_factor') THEN
        RAISE EXCEPTION 'no second-factor proof in this transaction' USING ERRCODE = '42501';
    END IF;
    DELETE FROM public.recovery_codes WHERE user_id = app.current_user_id();
    UPDATE public.users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL,
                            updated_at = p_now
    WHERE id = app.current_user_id();
END
$$;
REVOKE ALL ON FUNCTION app_private.totp_disable(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.totp_disable(timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Refresh rotation: the presented refresh token IS the proof, checked here by its hash. Before,
-- `add_refresh_token` added a child to any live session of the claimed person, so a context
-- claiming someone (and reading their session ids, which the sessions policy shows it) could
-- plant a refresh token whose secret it chose and mint access tokens from it. Now the request
-- role cannot add refresh tokens; this definer spends the presented token (by its hash:
-- unused, unexpired, its session live), extends the session's idle lifetime and adds the
-- child, all or nothing. (The request role keeps UPDATE (used_at) so that the refresh flow can
-- lock the presented row `FOR UPDATE` and tell a replay from an expiry; marking a token used
-- mints nothing.) Returns false when the presented token cannot be rotated (the caller
-- has already told reuse from expiry by reading the row under RLS).
CREATE FUNCTION app_private.rotate_refresh_token(p_parent_hash bytea, p_id uuid, p_hash bytea,
                                                 p_now timestamptz, p_idle timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_parent public.refresh_tokens%ROWTYPE;
    v_idle   timestamptz;
BEGIN
    IF app.current_tenant() IS NULL OR app.current_user_id() IS NULL THEN
        RETURN false;
    END IF;
    SELECT * INTO v_parent FROM public.refresh_tokens r
    WHERE r.tenant_id = app.current_tenant() AND r.user_id = app.current_user_id()
      AND r.token_hash = p_parent_hash
    FOR UPDATE;
    IF NOT FOUND OR v_parent.used_at IS NOT NULL OR v_parent.expires_at <= p_now THEN
        RETURN false;
    END IF;
    UPDATE public.sessions s SET idle_expires_at = least(p_idle, s.absolute_expires_at)
    WHERE s.tenant_id = v_parent.tenant_id AND s.id = v_parent.session_id
      AND s.user_id = v_parent.user_id AND s.revoked_at IS NULL
      AND s.idle_expires_at > p_now AND s.absolute_expires_at > p_now
    RETURNING s.idle_expires_at INTO v_idle;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE public.refresh_tokens SET used_at = p_now WHERE id = v_parent.id;
    INSERT INTO public.refresh_tokens (id, tenant_id, session_id, user_id, parent_id, token_hash,
                                       created_at, expires_at)
    VALUES (p_id, v_parent.tenant_id, v_parent.session_id, v_parent.user_id, v_parent.id, p_hash,
            p_now, v_idle);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.rotate_refresh_token(bytea, uuid, bytea, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.rotate_refresh_token(bytea, uuid, bytea, timestamptz, timestamptz) TO serein_app;
REVOKE ALL ON FUNCTION app_private.add_refresh_token(uuid, uuid, uuid, bytea, timestamptz, timestamptz) FROM serein_app;
