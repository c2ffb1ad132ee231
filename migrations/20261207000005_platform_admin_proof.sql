-- A platform admin is a PROVEN platform admin (review of issue 11; STYLE 17).
--
-- Threat closed: `app.is_platform_admin()` read two settings the request role writes itself
-- (`app.tenant_id` = tenant zero and `app.roles` containing `platform_admin`). A request
-- transaction that set them, without any session, passed every platform policy and guard:
-- create or change any company (plan, seats, allowance, late-cancellation window, status,
-- origins), verify practitioners, read every company row. A claimed context is no proof.
--
-- From now on the platform role counts only when the session guard proved, in this same
-- transaction, a live session of the context's person on the platform host
-- (`app_private.proven_person()`, which answers only for the context's tenant and person); the
-- guard already refuses a claimed role that person does not hold (`users.platform_roles`), so
-- claim and proof together mean a platform admin with a live session. Operator commands run
-- as the owner and never reach this function's answer (owners bypass row-level security and
-- the guards check `is_table_owner`).
CREATE OR REPLACE FUNCTION app.is_platform_admin() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT coalesce(app.current_tenant() = '00000000-0000-0000-0000-000000000000'::uuid
                        AND 'platform_admin' = ANY (app.current_roles())
                        AND app_private.proven_person() IS NOT NULL, false)
    $$;
