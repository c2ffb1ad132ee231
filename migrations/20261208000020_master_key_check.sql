-- The master key check (issue 12, item 6: a wrong key never serves).
--
-- The threat closed: a server started with another SEREIN_MASTER_KEY than its peers (a typo, a
-- stale secret, a pod started before the secret rolled out) started, passed readiness, and then
-- failed on everything sealed; worse, the tenant keys it created on first use were wrapped
-- under its own key, which its peers cannot open.
--
-- Rules:
-- 1. `app_private.master_key_checks` holds one row per master key id. Global (no tenant_id):
--    the master key is the platform's, not a tenant's. `sealed_check` is a known constant
--    (`serein master key check v1`, 26 bytes) sealed with that master key itself in the
--    sealed-record format (format byte, key version = the master id, nonce, ciphertext, tag:
--    59 bytes), associated data `serein-key-check v1|{id as 8 hex digits}`, so a check opens
--    only under its own key and cannot pass for a wrapped key or a record. A master key id is
--    a fingerprint (the first 4 bytes of SHA-256 over a label and the key), not a secret; the
--    constraint ties the blob's header to its row's id.
-- 2. No privilege for any role but the owner: no grant, RLS enabled and forced with no policy
--    (like `app_private.proof_secret`).
-- 3. Every process that builds the keyring (serve, `serein keys rotate`, `serein tenants
--    purge`) checks it at start-up, before it serves or changes anything
--    (src/crypto/keycheck.rs): the check of its master id must open; with no check for its id,
--    it refuses unless SEREIN_PREVIOUS_MASTER_KEY opens an existing check (a master rotation
--    in progress); on a database without any check (fresh, or the first start after this
--    migration) it proves its key first, by unwrapping a live tenant key that names its id when
--    there is one, and records the first check.
-- 4. Serving pods log in as a role that can only become `serein_app` (helm/), so the start-up
--    check reaches the table through two definers granted to `serein_app`:
--    - `master_key_check_state(master, previous)`: the checks of those two ids, the ids that
--      have a check, the ids live tenant keys are wrapped under, and, ONLY while the database
--      has no check at all, one live wrapped tenant key under `master` (else `previous`) for
--      the caller to prove its key on;
--    - `master_key_check_record(master, check, now)`: records the FIRST check of the database
--      only (a table lock serializes two first starters: the second finds the first's check
--      and returns false), and only for an id that wraps a live tenant key, or when no tenant
--      key is live at all.
--    Once a check exists, nothing the request role can call adds, changes or removes one. The
--    check of a new master is recorded by `serein keys rotate`, as the owner, in the
--    transaction that re-wraps under it; the same command removes the checks of ids that no
--    longer wrap any live tenant key.
--
-- Residual trust, stated: what the state door returns is not secret (ids are fingerprints, a
-- check is a known constant under AES-256-GCM, a wrapped key is useless without the master,
-- which never reaches the database), and its one wrapped key is served only before the first
-- check exists. Someone running SQL as the request role before the first server start after
-- this migration could record a garbage check for the database's id: denial (every server
-- refuses, naming the id and the variable), not disclosure; the owner deletes the row.

-- The key version a sealed blob names (bytes 1–4, big-endian): for a wrapped tenant key, the
-- id of the master key that wraps it. NULL for anything that is not a format-1 blob.
CREATE FUNCTION app_private.sealed_key_version(p_blob bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = ''
    AS $$
    SELECT (get_byte(p_blob, 1)::bigint << 24) | (get_byte(p_blob, 2)::bigint << 16)
         | (get_byte(p_blob, 3)::bigint << 8) | get_byte(p_blob, 4)::bigint
    WHERE length(p_blob) >= 5 AND get_byte(p_blob, 0) = 1
$$;
REVOKE ALL ON FUNCTION app_private.sealed_key_version(bytea) FROM PUBLIC;

CREATE TABLE app_private.master_key_checks (
    master_id    bigint PRIMARY KEY CHECK (master_id BETWEEN 0 AND 4294967295),
    sealed_check bytea NOT NULL CHECK (length(sealed_check) = 59
                                       AND app_private.sealed_key_version(sealed_check) = master_id),
    created_at   timestamptz NOT NULL
);
ALTER TABLE app_private.master_key_checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_private.master_key_checks FORCE ROW LEVEL SECURITY;
REVOKE ALL ON app_private.master_key_checks FROM PUBLIC;

-- The start-up check's view of the database (rule 4).
CREATE FUNCTION app_private.master_key_check_state(p_master bigint, p_previous bigint)
    RETURNS TABLE (master_check bytea, previous_check bytea, checked_ids bigint[],
                   key_ids bigint[], sample_tenant uuid, sample_purpose text,
                   sample_version integer, sample_wrapped bytea)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
    WITH checks AS (
        SELECT c.master_id, c.sealed_check FROM app_private.master_key_checks c
    ), live AS (
        SELECT k.tenant_id, k.purpose, k.version, k.wrapped_key,
               app_private.sealed_key_version(k.wrapped_key) AS master_id
        FROM public.tenant_keys k
        WHERE k.wrapped_key IS NOT NULL
    ), sample AS (
        SELECT l.tenant_id, l.purpose, l.version, l.wrapped_key
        FROM live l
        WHERE NOT EXISTS (SELECT 1 FROM checks)
          AND (l.master_id = p_master OR l.master_id = p_previous)
        ORDER BY l.master_id = p_master DESC, l.tenant_id, l.purpose, l.version
        LIMIT 1
    )
    SELECT (SELECT c.sealed_check FROM checks c WHERE c.master_id = p_master),
           (SELECT c.sealed_check FROM checks c WHERE c.master_id = p_previous),
           coalesce((SELECT array_agg(c.master_id ORDER BY c.master_id) FROM checks c), '{}'),
           coalesce((SELECT array_agg(DISTINCT l.master_id) FROM live l
                     WHERE l.master_id IS NOT NULL), '{}'),
           s.tenant_id, s.purpose, s.version, s.wrapped_key
    FROM (SELECT 1) AS one LEFT JOIN sample s ON true
$$;
REVOKE ALL ON FUNCTION app_private.master_key_check_state(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.master_key_check_state(bigint, bigint) TO serein_app;

-- Record the database's first check (rule 4). False when a check exists already (the caller
-- reads the state again); 42501 for an id no live tenant key names while some are live.
CREATE FUNCTION app_private.master_key_check_record(p_master bigint, p_check bytea,
                                                    p_now timestamptz) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    LOCK TABLE app_private.master_key_checks IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM app_private.master_key_checks) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM public.tenant_keys k WHERE k.wrapped_key IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM public.tenant_keys k
                       WHERE k.wrapped_key IS NOT NULL
                         AND app_private.sealed_key_version(k.wrapped_key) = p_master) THEN
        RAISE EXCEPTION 'no live tenant key is wrapped under this master key id'
            USING ERRCODE = '42501';
    END IF;
    INSERT INTO app_private.master_key_checks (master_id, sealed_check, created_at)
    VALUES (p_master, p_check, p_now);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.master_key_check_record(bigint, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.master_key_check_record(bigint, bytea, timestamptz)
    TO serein_app;
