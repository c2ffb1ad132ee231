-- Envelope encryption keys (DESIGN §3). The database only ever holds WRAPPED keys:
--
--   master KEK (process memory only: SEREIN_MASTER_KEY)
--     └─ tenant_keys   per tenant, purpose and version: 'data' keys wrap subject keys,
--                      'clinical' keys seal clinical notes directly
--          └─ subject_keys  per (tenant, person) and version, wrapped by a 'data' tenant key;
--                           they seal that person's journal and messages, so destroying them
--                           crypto-shreds exactly that person's data in that tenant
--
-- A wrapped key is a sealed blob (format byte, parent version, 96-bit nonce, 32-byte key
-- sealed with AES-256-GCM, tag: 65 bytes) whose associated data names the key's identity
-- (tenant, purpose or subject, version), so a wrapped key copied to another row, tenant or
-- subject does not unwrap. Destroying a key sets wrapped_key to NULL; a trigger makes that
-- irreversible. The newest version of a (tenant, purpose) or (tenant, subject) seals new data;
-- older versions are marked retired and still open the records that name them.
--
-- Keys are created lazily, race-safely (INSERT … ON CONFLICT DO NOTHING, then read back),
-- inside the request's own RLS-scoped transaction, so the request role needs SELECT and INSERT,
-- and UPDATE of the columns that rotation and destruction change. It can never DELETE a key.

CREATE TABLE tenant_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    purpose      text NOT NULL CHECK (purpose IN ('data', 'clinical')),
    version      integer NOT NULL CHECK (version >= 1),
    wrapped_key  bytea CHECK (length(wrapped_key) = 65),
    created_at   timestamptz NOT NULL,
    -- Superseded by a newer version: no longer used for new writes, still opens old records.
    retired_at   timestamptz,
    -- Crypto-shredded (tenant offboarding): the wrapped key is gone.
    destroyed_at timestamptz,
    PRIMARY KEY (tenant_id, purpose, version),
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

CREATE TABLE subject_keys (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    -- The person whose journal and messages this key seals. Deleting the identity deletes
    -- the key: their data in every tenant becomes unreadable.
    subject_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    version          integer NOT NULL CHECK (version >= 1),
    -- Version of the tenant's 'data' key that wraps this key (0 only for the tombstone
    -- written when a subject without any key is erased).
    wrapping_version integer NOT NULL CHECK (wrapping_version >= 0),
    wrapped_key      bytea CHECK (length(wrapped_key) = 65),
    created_at       timestamptz NOT NULL,
    retired_at       timestamptz,
    destroyed_at     timestamptz,
    PRIMARY KEY (tenant_id, subject_id, version),
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK (wrapping_version >= 1 OR destroyed_at IS NOT NULL)
);
-- Rotation walks a tenant's live subject keys in (subject, version) order: the primary key
-- serves it. The wrapping version is looked up with the key, never searched.

-- A destroyed key stays destroyed: no update may touch the row again.
CREATE FUNCTION app_private.keys_stay_destroyed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF OLD.destroyed_at IS NOT NULL AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'a destroyed key cannot be changed' USING ERRCODE = '55000';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.keys_stay_destroyed() FROM PUBLIC;

CREATE TRIGGER tenant_keys_stay_destroyed BEFORE UPDATE ON tenant_keys
    FOR EACH ROW EXECUTE FUNCTION app_private.keys_stay_destroyed();
CREATE TRIGGER subject_keys_stay_destroyed BEFORE UPDATE ON subject_keys
    FOR EACH ROW EXECUTE FUNCTION app_private.keys_stay_destroyed();

-- Row-level security: a tenant's transaction sees and changes its own keys only. (Wrapped keys
-- are useless without the master key, which never reaches the database; the policies keep one
-- tenant from even shredding another's.)
ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_keys_tenant_read ON tenant_keys FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()));
CREATE POLICY tenant_keys_tenant_insert ON tenant_keys FOR INSERT TO serein_app
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));
CREATE POLICY tenant_keys_tenant_update ON tenant_keys FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));

ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_keys_tenant_read ON subject_keys FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()));
CREATE POLICY subject_keys_tenant_insert ON subject_keys FOR INSERT TO serein_app
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));
CREATE POLICY subject_keys_tenant_update ON subject_keys FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));

GRANT SELECT, INSERT ON tenant_keys, subject_keys TO serein_app;
GRANT UPDATE (wrapped_key, retired_at, destroyed_at) ON tenant_keys TO serein_app;
GRANT UPDATE (wrapped_key, wrapping_version, retired_at, destroyed_at) ON subject_keys TO serein_app;
