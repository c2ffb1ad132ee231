-- The late-cancellation window becomes a platform-set term of a company (issue 11, item 4):
-- `tenants.late_cancel_hours` (migration 20261206000005, default 24) is now written by
-- `serein tenants apply` (file: `late_cancel_hours`) and by the platform API (create, PATCH).
--
-- Like the allowance it is a commercial term: the platform sets it, a tenant admin does not.
-- The column grant lets the request role write it (platform admins' transactions), and the
-- update guard refuses the change from anyone but a platform admin or the owner.

GRANT INSERT (late_cancel_hours), UPDATE (late_cancel_hours) ON tenants TO serein_app;

CREATE OR REPLACE FUNCTION app_private.tenants_guard_update() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.is_table_owner(TG_RELID) AND NOT app.is_platform_admin()
       AND (NEW.plan, NEW.seats, NEW.allowance, NEW.late_cancel_hours, NEW.status, NEW.web_origins,
            NEW.offboard_requested_at, NEW.purge_after)
           IS DISTINCT FROM
           (OLD.plan, OLD.seats, OLD.allowance, OLD.late_cancel_hours, OLD.status, OLD.web_origins,
            OLD.offboard_requested_at, OLD.purge_after) THEN
        RAISE EXCEPTION 'only the platform changes a tenant''s plan, seats, allowance, late-cancellation window, status or origins'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
