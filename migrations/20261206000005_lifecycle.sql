-- Consultation lifecycle (issue 11, item 4): requested → confirmed → started → ended, or
-- cancelled (who, a reason code) or no_show; reschedule keeps the consultation and its history.
-- Every transition is a `consultation_events` row; durations are derived from them.
--
-- Who may do what (anything else is `invalid_transition`; a consultation the caller does not
-- take part in is `not_found`, the same as one that does not exist):
--
-- | action      | from                   | to          | by                     | when                          |
-- |-------------|------------------------|-------------|------------------------|-------------------------------|
-- | confirm     | requested              | confirmed   | practitioner           | before the end                |
-- | cancel      | requested, confirmed   | cancelled   | either participant     | before the start              |
-- | start       | confirmed              | started     | practitioner           | from 15 min before the start to the end |
-- | end         | started                | ended       | practitioner           | any time after starting       |
-- | no_show     | confirmed              | no_show     | practitioner           | after the start               |
-- | reschedule  | requested, confirmed   | (same, or requested when the practitioner confirms by hand) | either | before the start |
--
-- The allowance: a session counts unless it is cancelled by the practitioner, or by the
-- employee more than the company's `late_cancel_hours` before its start (a late cancellation
-- and a no-show still count).
--
-- The participant is the person proven by the session guard in this transaction; nothing is
-- taken from an argument as proof of who asks.

ALTER TABLE tenants ADD COLUMN late_cancel_hours integer NOT NULL DEFAULT 24
    CHECK (late_cancel_hours BETWEEN 0 AND 168);
COMMENT ON COLUMN tenants.late_cancel_hours IS
    'An employee cancelling closer than this to the start still uses up the session (platform term).';

CREATE FUNCTION app_private.consultation_transition(p_id uuid, p_action text, p_reason text,
                                                    p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    c record;
    v_as text;
    v_to text;
    v_late integer;
BEGIN
    SELECT * INTO c FROM public.consultations x
    WHERE x.tenant_id = a.v_tenant AND x.id = p_id
    FOR NO KEY UPDATE;
    IF NOT FOUND OR a.v_user NOT IN (c.employee_id, c.practitioner_id) THEN
        RETURN 'not_found';
    END IF;
    v_as := CASE WHEN a.v_user = c.practitioner_id THEN 'practitioner' ELSE 'employee' END;
    v_to := CASE
        WHEN p_action = 'confirm' AND v_as = 'practitioner' AND c.status = 'requested'
             AND p_now < c.ends_at THEN 'confirmed'
        WHEN p_action = 'cancel' AND c.status IN ('requested', 'confirmed')
             AND p_now < c.starts_at THEN 'cancelled'
        WHEN p_action = 'start' AND v_as = 'practitioner' AND c.status = 'confirmed'
             AND p_now >= c.starts_at - interval '15 minutes' AND p_now < c.ends_at THEN 'started'
        WHEN p_action = 'end' AND v_as = 'practitioner' AND c.status = 'started' THEN 'ended'
        WHEN p_action = 'no_show' AND v_as = 'practitioner' AND c.status = 'confirmed'
             AND p_now >= c.starts_at THEN 'no_show'
    END;
    IF v_to IS NULL THEN
        RETURN 'invalid_transition';
    END IF;
    IF v_to = 'cancelled' THEN
        SELECT t.late_cancel_hours INTO v_late FROM public.tenants t WHERE t.id = a.v_tenant;
        UPDATE public.consultations x
        SET status = 'cancelled', cancelled_by = a.v_user,
            cancel_reason = coalesce(p_reason, 'other'),
            counts_against_allowance = v_as = 'employee'
                AND c.starts_at - p_now < pg_catalog.make_interval(hours => v_late),
            sequence = x.sequence + 1, updated_at = p_now
        WHERE x.tenant_id = a.v_tenant AND x.id = p_id;
    ELSE
        UPDATE public.consultations x
        SET status = v_to, updated_at = p_now,
            sequence = x.sequence + CASE WHEN v_to = 'confirmed' THEN 1 ELSE 0 END
        WHERE x.tenant_id = a.v_tenant AND x.id = p_id;
    END IF;
    INSERT INTO public.consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
    VALUES (pg_catalog.gen_random_uuid(), a.v_tenant, p_id, v_to, a.v_user, p_now);
    RETURN v_to;
END
$$;
REVOKE ALL ON FUNCTION app_private.consultation_transition(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.consultation_transition(uuid, text, text, timestamptz) TO serein_app;

-- Lock a consultation for a reschedule (then the practitioner's schedule, as a booking does,
-- then the employee's membership): its practitioner, when the caller takes part in it and it
-- may still move; NULL otherwise.
CREATE FUNCTION app_private.reschedule_lock(p_id uuid, p_now timestamptz)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    c record;
BEGIN
    SELECT x.employee_id, x.practitioner_id, x.status, x.starts_at INTO c
    FROM public.consultations x
    WHERE x.tenant_id = a.v_tenant AND x.id = p_id
    FOR NO KEY UPDATE;
    IF NOT FOUND OR a.v_user NOT IN (c.employee_id, c.practitioner_id)
       OR c.status NOT IN ('requested', 'confirmed') OR p_now >= c.starts_at THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM public.practitioner_schedules s WHERE s.user_id = c.practitioner_id
    FOR NO KEY UPDATE;
    PERFORM 1 FROM public.memberships m
    WHERE m.tenant_id = a.v_tenant AND m.user_id = c.employee_id
    FOR NO KEY UPDATE;
    RETURN c.practitioner_id;
END
$$;
REVOKE ALL ON FUNCTION app_private.reschedule_lock(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.reschedule_lock(uuid, timestamptz) TO serein_app;

-- Move a consultation (after `reschedule_lock` and the API's slot check): 'rescheduled',
-- 'slot_taken', 'overlapping_booking', 'not_found' or 'invalid_transition'. The old period is
-- kept in the event; SEQUENCE grows; a practitioner who confirms by hand must confirm the new
-- time when the employee moved it.
CREATE FUNCTION app_private.consultation_reschedule(p_id uuid, p_starts_at timestamptz,
                                                    p_ends_at timestamptz, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    c record;
    v_auto boolean;
    v_constraint text;
BEGIN
    SELECT * INTO c FROM public.consultations x
    WHERE x.tenant_id = a.v_tenant AND x.id = p_id
    FOR NO KEY UPDATE;
    IF NOT FOUND OR a.v_user NOT IN (c.employee_id, c.practitioner_id) THEN
        RETURN 'not_found';
    END IF;
    IF c.status NOT IN ('requested', 'confirmed') OR p_now >= c.starts_at
       OR p_starts_at <= p_now THEN
        RETURN 'invalid_transition';
    END IF;
    SELECT s.auto_confirm INTO v_auto FROM public.practitioner_schedules s
    WHERE s.user_id = c.practitioner_id;
    BEGIN
        UPDATE public.consultations x
        SET starts_at = p_starts_at, ends_at = p_ends_at, sequence = x.sequence + 1,
            status = CASE WHEN a.v_user = c.employee_id AND NOT coalesce(v_auto, true)
                          THEN 'requested' ELSE x.status END,
            updated_at = p_now
        WHERE x.tenant_id = a.v_tenant AND x.id = p_id;
    EXCEPTION WHEN exclusion_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        RETURN CASE v_constraint WHEN 'consultations_one_at_a_time'
                    THEN 'overlapping_booking' ELSE 'slot_taken' END;
    END;
    INSERT INTO public.consultation_events (id, tenant_id, consultation_id, kind, actor_id, at,
                                            old_starts_at, old_ends_at)
    VALUES (pg_catalog.gen_random_uuid(), a.v_tenant, p_id, 'rescheduled', a.v_user, p_now,
            c.starts_at, c.ends_at);
    RETURN 'rescheduled';
END
$$;
REVOKE ALL ON FUNCTION app_private.consultation_reschedule(uuid, timestamptz, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.consultation_reschedule(uuid, timestamptz, timestamptz, timestamptz) TO serein_app;

-- The other participant's display name for the caller's consultations (the request role
-- cannot read an employee's identity row as a practitioner, nor a practitioner's as an
-- employee): the names only, for consultations the proven person takes part in, here.
CREATE FUNCTION app_private.consultation_counterparts(p_ids uuid[])
    RETURNS TABLE (consultation_id uuid, display_name text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
    SELECT c.id, u.display_name
    FROM public.consultations c
    JOIN public.users u
      ON u.id = CASE WHEN c.employee_id = app_private.proven_user() THEN c.practitioner_id
                     ELSE c.employee_id END
    WHERE c.tenant_id = app.current_tenant() AND c.id = ANY (p_ids)
      AND app_private.proven_user() IN (c.employee_id, c.practitioner_id)
$$;
REVOKE ALL ON FUNCTION app_private.consultation_counterparts(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.consultation_counterparts(uuid[]) TO serein_app;
