-- Keys only through narrow definers (issue 9, item 2; PROOF 8b: "Key tables are never readable
-- or writable by the request role directly").
--
-- The threat closed: migration 0006 granted the request role SELECT, INSERT and UPDATE on
-- `tenant_keys` and `subject_keys` inside its tenant. Any session of a company (HR, a tenant
-- admin, or a handler bug / injection running as `serein_app`) could therefore
--   - crypto-shred the company: `UPDATE tenant_keys SET wrapped_key = NULL, destroyed_at = now()`
--     (irreversible: the 0006 trigger keeps a destroyed key destroyed),
--   - crypto-shred another person: the same on their `subject_keys`,
--   - plant a forged newest subject key (INSERT version n+1: that person's new writes are sealed
--     under a key nobody can unwrap),
--   - list who has a subject key (`SELECT u.email FROM subject_keys JOIN users …`): once journals
--     exist, the list of the people who use them.
--
-- Rules from here on:
-- 1. The request role holds NO privilege on either key table (every grant of 0006 revoked; RLS
--    stays ENABLED + FORCED; only the tenant-scoped read policies remain, the write policies are
--    dropped, so a grant added by mistake later still cannot write).
-- 2. Requests reach keys only through the `app_private` definers below. Each takes tenant and
--    person from the context and demands a PROVEN person: `app_private.proven_user()` is the
--    context's `app.user_id` only when `app_private.session_guard` checked a live session of
--    that person in that tenant IN THIS TRANSACTION (the guard leaves a MAC over tenant, person,
--    backend and transaction start, keyed by a secret only the owner can read; the request role
--    can set `app.session_proof` to anything, but cannot compute the MAC for anyone). A crafted
--    `app.user_id`, an empty `''` or foreign `app.tenant_id`, or no session → refused (42501).
-- 3. What the doors allow:
--    - `tenant_key(purpose, version|NULL)`: the context tenant's key of a purpose (newest, or
--      one version to open an old record), for any proven member of that tenant;
--    - `tenant_key_create(purpose, wrapped, now)`: version 1 only, when the tenant has no key of
--      that purpose yet (lazy, race-safe: ON CONFLICT DO NOTHING, the caller reads back);
--    - `subject_key(subject, version|NULL)`: the subject key of the PROVEN PERSON ONLY (with its
--      wrapping 'data' key). There is deliberately no "any subject" door. Messages will be
--      sealed under the employee's subject key and read by the consultation's practitioner
--      (issue 12): that check belongs in `app_private.subject_key_reader_may`, which today
--      allows only `p_subject = proven_user()` — extend it there with "a consultation in the
--      context tenant has both the proven user and p_subject as participants", not with an
--      argument the caller controls;
--    - `subject_key_create(subject, wrapping_version, wrapped, now)`: version 1 of the proven
--      person's own key, wrapped by the tenant's newest live 'data' key, only when they have
--      none (a destroyed tombstone also blocks it).
--    No door updates or destroys a key, or creates a version above 1.
-- 4. Rotation (`serein keys rotate`), destroying a subject (erasure) and destroying a tenant
--    (offboarding purge) run as the OWNER (the login role of DATABASE_URL, via the operator /
--    job connection), never as the request role.
--
-- Residual trust, stated honestly: a wrapped key is useless without the master key, which never
-- reaches the database, so what remains is denial, not disclosure: a proven member of a tenant
-- who can run SQL as the request role can, before first use, create a tenant key of garbage
-- (new clinical notes then fail with 410 `sealed_data_unreadable` until an operator rotates);
-- and the proof is as strong as `session_guard`, which (from migration
-- 20261204000002_identity_proof) demands the session's secret, not only its id: a context
-- crafted with another person's `app.user_id` can read that person's session ids but cannot
-- pass the guard. These doors read the proof only through `app_private.proven_user()`.

-- ---------------------------------------------------------------------------------------------
-- 1. No direct access for the request role.
REVOKE ALL ON tenant_keys, subject_keys FROM serein_app;
REVOKE UPDATE (wrapped_key, retired_at, destroyed_at) ON tenant_keys FROM serein_app;
REVOKE UPDATE (wrapped_key, wrapping_version, retired_at, destroyed_at) ON subject_keys FROM serein_app;
DROP POLICY tenant_keys_tenant_insert ON tenant_keys;
DROP POLICY tenant_keys_tenant_update ON tenant_keys;
DROP POLICY subject_keys_tenant_insert ON subject_keys;
DROP POLICY subject_keys_tenant_update ON subject_keys;
ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- 2. The session proof.
--
-- The MAC key: 32 bytes from the server's strong random source (two v4 UUIDs, 244 random bits),
-- made once per database. No grant: only the owner (and so the definers) can read it.
-- Global, not per tenant (no tenant_id): one platform secret, like the master key it stands
-- beside; RLS forced with no policy at all, so no role but the owner's definers reads a row.
CREATE TABLE app_private.proof_secret (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret    bytea NOT NULL CHECK (length(secret) = 32)
);
ALTER TABLE app_private.proof_secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_private.proof_secret FORCE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.proof_secret FROM PUBLIC;
INSERT INTO app_private.proof_secret (secret)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- The proof value for (tenant, person) in THIS transaction of THIS backend. Nested keyed hash
-- (secret at both ends: no length extension). Not granted to anyone: only definers (owner) call it.
CREATE FUNCTION app_private.session_proof_mac(p_tenant uuid, p_user uuid) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(s.secret || pg_catalog.sha256(s.secret ||
               pg_catalog.convert_to(pg_catalog.concat_ws('|', 'serein session proof v1',
                   p_tenant::text, p_user::text, pg_catalog.pg_backend_pid()::text,
                   (EXTRACT(EPOCH FROM pg_catalog.transaction_timestamp()))::text), 'UTF8'))), 'hex')
    FROM app_private.proof_secret s
$$;
REVOKE ALL ON FUNCTION app_private.session_proof_mac(uuid, uuid) FROM PUBLIC;

-- The person proven in this transaction: the context's person, when the guard checked a live
-- session of theirs in the context tenant in this transaction; else NULL.
CREATE FUNCTION app_private.proven_user() RETURNS uuid
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT app.current_user_id()
    WHERE app.current_tenant() IS NOT NULL AND app.current_user_id() IS NOT NULL
      AND NULLIF(pg_catalog.current_setting('app.session_proof', true), '')
          = app_private.session_proof_mac(app.current_tenant(), app.current_user_id())
$$;
REVOKE ALL ON FUNCTION app_private.proven_user() FROM PUBLIC;

-- `app_private.session_guard` leaves this proof once it has found the session live: it is
-- redefined once, in the next migration (20261204000002_identity_proof), which also binds the
-- guard to the context's own tenant and person.

-- The proven person, or 42501.
CREATE FUNCTION app_private.require_proven_user() RETURNS uuid
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
DECLARE
    v_user uuid := app_private.proven_user();
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'keys need a session checked in this transaction' USING ERRCODE = '42501';
    END IF;
    RETURN v_user;
END
$$;
REVOKE ALL ON FUNCTION app_private.require_proven_user() FROM PUBLIC;

-- May the proven person use p_subject's key? Their own only, today (see rule 3 above: the
-- consultation-participant check of issue 12 goes here).
CREATE FUNCTION app_private.subject_key_reader_may(p_subject uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$ SELECT p_subject IS NOT NULL AND p_subject = app_private.proven_user() $$;
REVOKE ALL ON FUNCTION app_private.subject_key_reader_may(uuid) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- 3. The doors.

-- The context tenant's key of a purpose: the newest version (p_version NULL) or one version.
CREATE FUNCTION app_private.tenant_key(p_purpose text, p_version integer)
    RETURNS TABLE (version integer, wrapped_key bytea)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.require_proven_user();
    RETURN QUERY
        SELECT k.version, k.wrapped_key FROM public.tenant_keys k
        WHERE k.tenant_id = app.current_tenant() AND k.purpose = p_purpose
          AND (p_version IS NULL OR k.version = p_version)
        ORDER BY k.version DESC LIMIT 1;
END
$$;
REVOKE ALL ON FUNCTION app_private.tenant_key(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.tenant_key(text, integer) TO serein_app;

-- Version 1 of the context tenant's key of a purpose, unless any version exists (every tenant
-- that has keys has a version 1, tombstones included). True when this call created it.
CREATE FUNCTION app_private.tenant_key_create(p_purpose text, p_wrapped bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.require_proven_user();
    INSERT INTO public.tenant_keys (tenant_id, purpose, version, wrapped_key, created_at)
    VALUES (app.current_tenant(), p_purpose, 1, p_wrapped, p_now)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION app_private.tenant_key_create(text, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.tenant_key_create(text, bytea, timestamptz) TO serein_app;

-- A subject key of p_subject in the context tenant (newest, or one version) with the wrapped
-- tenant 'data' key that wraps it — for a reader the definer allows (the subject themselves).
CREATE FUNCTION app_private.subject_key(p_subject uuid, p_version integer)
    RETURNS TABLE (version integer, wrapped_key bytea, wrapping_version integer, parent_wrapped bytea)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.require_proven_user();
    IF NOT app_private.subject_key_reader_may(p_subject) THEN
        RAISE EXCEPTION 'a subject key is available to its subject only' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
        SELECT s.version, s.wrapped_key, s.wrapping_version, t.wrapped_key
        FROM public.subject_keys s
        LEFT JOIN public.tenant_keys t ON t.tenant_id = s.tenant_id AND t.purpose = 'data'
                                       AND t.version = s.wrapping_version
        WHERE s.tenant_id = app.current_tenant() AND s.subject_id = p_subject
          AND (p_version IS NULL OR s.version = p_version)
        ORDER BY s.version DESC LIMIT 1;
END
$$;
REVOKE ALL ON FUNCTION app_private.subject_key(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.subject_key(uuid, integer) TO serein_app;

-- Version 1 of the PROVEN person's own subject key, wrapped by the tenant's newest live 'data'
-- key, unless they have any version (a destroyed tombstone included). True when created here.
CREATE FUNCTION app_private.subject_key_create(p_subject uuid, p_wrapping_version integer,
                                               p_wrapped bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_user uuid := app_private.require_proven_user();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF p_subject IS DISTINCT FROM v_user THEN
        RAISE EXCEPTION 'a subject key is created by its subject only' USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.tenant_keys t
        WHERE t.tenant_id = v_tenant AND t.purpose = 'data' AND t.version = p_wrapping_version
          AND t.destroyed_at IS NULL
          AND t.version = (SELECT max(m.version) FROM public.tenant_keys m
                           WHERE m.tenant_id = v_tenant AND m.purpose = 'data')
    ) THEN
        RAISE EXCEPTION 'a subject key is wrapped by the newest live data key' USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key, created_at)
    VALUES (v_tenant, v_user, 1, p_wrapping_version, p_wrapped, p_now)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION app_private.subject_key_create(uuid, integer, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.subject_key_create(uuid, integer, bytea, timestamptz) TO serein_app;
