-- The scheduling path's database side, made cheaper (issue 11, item 13). Same answers, same
-- privileges.
--
-- Measured (bench/sched_probe.sh, bench/RESULTS.md "Scheduling"): reading a practitioner's 20
-- rules as the request role took 4.6 ms against 0.04 ms as the owner, and a booking ran
-- `proven_user()` 29 times. Two causes, both of the kind migration 20261205000001 fixed for the
-- guard:
-- * `proven_user()` and `proven_person()` were LANGUAGE sql with a SET clause (and the latter a
--   definer): never inlined, so PostgreSQL 15 parsed and planned their bodies again on every
--   call (~100 µs each). As PL/pgSQL the plans live as long as the connection. The bodies are
--   the same statements: the proof is the same MAC of the same inputs.
-- * The read policies of `practitioner_schedules`, `availability_rules` and
--   `availability_exceptions` called `availability_visible(practitioner)` for EACH row (a SQL
--   function with a SET clause: planned per row, and two proofs per row). They now say the same
--   thing inline: the proven person (an initplan, once per statement) is the practitioner, or is
--   proven and the practitioner has an active practitioner membership in the request's company
--   (a correlated look-up under the caller's own policies, as `availability_visible` did with
--   invoker rights). `availability_visible` stays, as PL/pgSQL, for any other caller.
-- * `booking_allowed` and `consultation_counterparts` (once per booking, once per list) become
--   PL/pgSQL for the same reason.

CREATE OR REPLACE FUNCTION app_private.proven_user() RETURNS uuid
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NOT NULL AND app.current_user_id() IS NOT NULL
       AND NULLIF(pg_catalog.current_setting('app.session_proof', true), '')
           = app_private.session_proof_mac(app.current_tenant(), app.current_user_id()) THEN
        RETURN app.current_user_id();
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.proven_user() FROM PUBLIC;

CREATE OR REPLACE FUNCTION app_private.proven_person() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    RETURN app_private.proven_user();
END
$$;
REVOKE ALL ON FUNCTION app_private.proven_person() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.proven_person() TO serein_app;

CREATE OR REPLACE FUNCTION app_private.availability_visible(p uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
BEGIN
    RETURN v_me IS NOT NULL
       AND (p = v_me
            OR EXISTS (SELECT 1 FROM public.memberships m
                       WHERE m.user_id = p AND m.tenant_id = app.current_tenant()
                         AND m.status = 'active' AND 'practitioner' = ANY (m.roles)));
END
$$;
REVOKE ALL ON FUNCTION app_private.availability_visible(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.availability_visible(uuid) TO serein_app;

DROP POLICY practitioner_schedules_read ON practitioner_schedules;
CREATE POLICY practitioner_schedules_read ON practitioner_schedules
    FOR SELECT TO serein_app
    USING (user_id = (SELECT app_private.proven_person())
           OR ((SELECT app_private.proven_person()) IS NOT NULL
               AND EXISTS (SELECT 1 FROM public.memberships m
                           WHERE m.user_id = practitioner_schedules.user_id
                             AND m.tenant_id = (SELECT app.current_tenant())
                             AND m.status = 'active' AND 'practitioner' = ANY (m.roles))));

DROP POLICY availability_rules_read ON availability_rules;
CREATE POLICY availability_rules_read ON availability_rules
    FOR SELECT TO serein_app
    USING (practitioner_id = (SELECT app_private.proven_person())
           OR ((SELECT app_private.proven_person()) IS NOT NULL
               AND EXISTS (SELECT 1 FROM public.memberships m
                           WHERE m.user_id = availability_rules.practitioner_id
                             AND m.tenant_id = (SELECT app.current_tenant())
                             AND m.status = 'active' AND 'practitioner' = ANY (m.roles))));

DROP POLICY availability_exceptions_read ON availability_exceptions;
CREATE POLICY availability_exceptions_read ON availability_exceptions
    FOR SELECT TO serein_app
    USING (practitioner_id = (SELECT app_private.proven_person())
           OR ((SELECT app_private.proven_person()) IS NOT NULL
               AND EXISTS (SELECT 1 FROM public.memberships m
                           WHERE m.user_id = availability_exceptions.practitioner_id
                             AND m.tenant_id = (SELECT app.current_tenant())
                             AND m.status = 'active' AND 'practitioner' = ANY (m.roles))));

CREATE OR REPLACE FUNCTION app_private.booking_allowed(p_user uuid, p_tenant uuid, p_practitioner uuid)
    RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
BEGIN
    RETURN p_user <> p_practitioner
       AND EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = p_tenant AND m.user_id = p_user AND m.status = 'active'
                     AND m.ended_at IS NULL AND 'employee' = ANY (m.roles))
       AND EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = p_tenant AND m.user_id = p_practitioner
                     AND m.status = 'active' AND 'practitioner' = ANY (m.roles));
END
$$;
REVOKE ALL ON FUNCTION app_private.booking_allowed(uuid, uuid, uuid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION app_private.consultation_counterparts(p_ids uuid[])
    RETURNS TABLE (consultation_id uuid, display_name text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_user();
BEGIN
    IF v_me IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT c.id, u.display_name
        FROM public.consultations c
        JOIN public.users u
          ON u.id = CASE WHEN c.employee_id = v_me THEN c.practitioner_id ELSE c.employee_id END
        WHERE c.tenant_id = app.current_tenant() AND c.id = ANY (p_ids)
          AND v_me IN (c.employee_id, c.practitioner_id);
END
$$;
REVOKE ALL ON FUNCTION app_private.consultation_counterparts(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.consultation_counterparts(uuid[]) TO serein_app;
