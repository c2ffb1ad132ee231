-- Background jobs get a door of their own (issue 9, items 4 and 11).
--
-- Threat closed: the mail worker's definers (`app_private.mail_claim`, `mail_mark_sent`,
-- `mail_mark_failed`, `mail_prune`) were granted to the request role and trusted "no tenant
-- context" as proof that the caller was the worker. Any request transaction could drop its
-- context with `set_config('app.tenant_id', '', true)` and lease every tenant's queued mail,
-- bodies included (password-reset and invitation links). A context value is no proof: the
-- request role can set any custom setting.
--
-- Rule from now on: a background job runs as a role of its own, never as the request role and
-- never as the serving pool pretending to be the owner.
--
-- serein_worker  NOLOGIN, NOSUPERUSER, NOBYPASSRLS, NOINHERIT, owns nothing, holds no table
--                privilege: only EXECUTE on the worker definers below. The mail worker's
--                transactions drop to it (`set_config('role', 'serein_worker', true)`, see
--                `db::tenancy::WorkerTx`), exactly as request transactions drop to serein_app.
--                In production the authenticator login role is granted both roles
--                (helm/serein/README.md); serein_app is NOT a member of serein_worker, so no
--                request transaction can reach these functions, whatever context it sets.
--
-- Owner-level jobs (the offboarding purge deletes across every tenant) do not use this role:
-- they run through the owner door (`JOBS_DATABASE_URL`, `db::Db::owner_conn`), or as a CronJob
-- with the owner's URL (`serein tenants purge`).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'serein_worker') THEN
        BEGIN
            CREATE ROLE serein_worker NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_catalog.pg_roles
        WHERE rolname = 'serein_worker' AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'role serein_worker exists with SUPERUSER or BYPASSRLS; refusing to migrate';
    END IF;
    IF pg_catalog.pg_has_role('serein_app', 'serein_worker', 'MEMBER') THEN
        RAISE EXCEPTION 'serein_app must not be a member of serein_worker; refusing to migrate';
    END IF;
END
$$;

-- The definers live in app_private and read the context accessors of `app` (as their owner);
-- the worker role needs to name the schema to call them, nothing more.
GRANT USAGE ON SCHEMA app_private TO serein_worker;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.mail_claim(timestamptz, integer, integer, integer)',
        'app_private.mail_mark_sent(uuid, uuid, uuid, timestamptz)',
        'app_private.mail_mark_failed(uuid, uuid, uuid, timestamptz, text, boolean, integer, integer, integer)',
        'app_private.mail_prune(timestamptz, integer)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, serein_app', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_worker', f);
    END LOOP;
END $$;
