-- Roles and the `app` schema: the ground every row-level security policy stands on.
--
-- serein_owner  owns the schema objects and runs migrations in production (BYPASSRLS, because the
--               SECURITY DEFINER functions of `app_private` run as it and must see across
--               tenants for the few pre-authentication look-ups they exist for). In development
--               the superuser of DATABASE_URL plays this part.
-- serein_app    the role every request transaction drops to: NOLOGIN, not superuser, no
--               BYPASSRLS, owns nothing, DML grants only (given table by table, never by default
--               privileges, so a new table is invisible to the app until its migration says so).
--
-- Roles are cluster-wide while databases are not: two test databases migrating at once may both
-- try to create them, so creation tolerates losing that race (duplicate_object, or
-- unique_violation on pg_authid when both inserts race), and an existing role is checked, not
-- trusted.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'serein_app') THEN
        BEGIN
            CREATE ROLE serein_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'serein_owner') THEN
        BEGIN
            CREATE ROLE serein_owner NOLOGIN BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_catalog.pg_roles
        WHERE rolname = 'serein_app' AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'role serein_app exists with SUPERUSER or BYPASSRLS; refusing to migrate';
    END IF;
END
$$;

-- Nobody but the owner creates objects in public (the PostgreSQL 15 default, stated anyway).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- `app`: the context accessors used by every policy. STABLE SQL functions, so a policy written as
-- `tenant_id = (SELECT app.current_tenant())` is evaluated once per statement (an InitPlan), not per
-- row. Unset → NULL → no row matches: fail closed. '' appears once a setting has been used on a
-- connection and reset at transaction end, hence NULLIF.
CREATE SCHEMA IF NOT EXISTS app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO serein_app;

CREATE OR REPLACE FUNCTION app.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.user_id', true), '')::uuid $$;

-- Roles of the verified actor in the current tenant, comma-separated in the setting.
CREATE OR REPLACE FUNCTION app.current_roles() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT COALESCE(pg_catalog.string_to_array(NULLIF(pg_catalog.current_setting('app.roles', true), ''), ','), '{}'::text[]) $$;

REVOKE ALL ON FUNCTION app.current_tenant(), app.current_user_id(), app.current_roles() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_tenant(), app.current_user_id(), app.current_roles() TO serein_app;

-- `app_private`: home of every SECURITY DEFINER function. Each one has `SET search_path = ''`,
-- EXECUTE revoked from PUBLIC, and is granted by name to the role that needs it.
CREATE SCHEMA IF NOT EXISTS app_private;
REVOKE ALL ON SCHEMA app_private FROM PUBLIC;
GRANT USAGE ON SCHEMA app_private TO serein_app;
