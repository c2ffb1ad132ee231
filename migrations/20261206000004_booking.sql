-- Booking (issue 11, item 3): `POST /consultations` cannot double-book, cannot exceed the
-- employee's yearly allowance, and replays an `Idempotency-Key` — under concurrency.
--
-- The request role writes no consultation and no idempotency record itself: the definers
-- below do, for the person proven by the session guard in this transaction, in the request's
-- company, and only as an active employee of it booking a practitioner who serves it. Nothing
-- is taken from an argument as proof of who asks.
--
-- One booking at a time per practitioner and per employee: `booking_lock` takes the
-- practitioner's schedule row, then the employee's membership row (always in that order, so
-- two bookings never wait on each other in a cycle). The API checks the slot against the
-- availability between the lock and the insert (every statement after the lock sees the
-- previous booking's commit); the exclusion constraints of the consultations table stay the
-- last word, and their violation is an outcome here, never an error.
--
-- Residual trust, stated: `book_consultation` does not expand the availability (the slot
-- engine lives in the API). Raw SQL as `serein_app` with a proven session could book a time
-- the practitioner does not offer — but never overlap another booking, exceed the allowance,
-- book for someone else, or leave its company.

CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request it first came with.
    request_hash bytea NOT NULL CHECK (length(request_hash) = 32),
    -- The first answer (set in the same transaction as the work it describes).
    status       smallint,
    response     jsonb,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, user_id, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
-- Not granted to serein_app (the definers below are the door); the policy keeps the table
-- tenant-scoped should a grant ever be added.
CREATE POLICY idempotency_keys_own ON idempotency_keys
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND user_id = (SELECT app_private.proven_person()));

-- The proven person and the request's company, or 42501.
CREATE FUNCTION app_private.booking_actor(OUT v_user uuid, OUT v_tenant uuid)
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
BEGIN
    v_user := app_private.proven_user();
    v_tenant := app.current_tenant();
    IF v_user IS NULL OR v_tenant IS NULL THEN
        RAISE EXCEPTION 'booking needs a session checked in this transaction' USING ERRCODE = '42501';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.booking_actor() FROM PUBLIC;

-- Claim an idempotency key for the proven person in this company: 'new' (this transaction
-- owns it; a concurrent request with the same key waits for it to finish), 'replay' with the
-- first answer, or 'mismatch' when the key came with another request. Expired keys are
-- forgotten.
CREATE FUNCTION app_private.idempotency_claim(p_key text, p_hash bytea, p_now timestamptz,
                                              p_ttl_hours integer)
    RETURNS TABLE (outcome text, status smallint, response jsonb)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    k record;
BEGIN
    DELETE FROM public.idempotency_keys i
    WHERE i.tenant_id = a.v_tenant AND i.user_id = a.v_user AND i.key = p_key
      AND i.expires_at <= p_now;
    INSERT INTO public.idempotency_keys (tenant_id, user_id, key, request_hash, created_at, expires_at)
    VALUES (a.v_tenant, a.v_user, p_key, p_hash, p_now,
            p_now + pg_catalog.make_interval(hours => LEAST(GREATEST(p_ttl_hours, 1), 168)))
    ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'new'::text, NULL::smallint, NULL::jsonb;
        RETURN;
    END IF;
    SELECT i.request_hash, i.status, i.response INTO k
    FROM public.idempotency_keys i
    WHERE i.tenant_id = a.v_tenant AND i.user_id = a.v_user AND i.key = p_key;
    IF k.request_hash <> p_hash THEN
        RETURN QUERY SELECT 'mismatch'::text, NULL::smallint, NULL::jsonb;
    ELSE
        RETURN QUERY SELECT 'replay'::text, k.status, k.response;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.idempotency_claim(text, bytea, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.idempotency_claim(text, bytea, timestamptz, integer) TO serein_app;

-- Record the first answer of a key this transaction claimed.
CREATE FUNCTION app_private.idempotency_finish(p_key text, p_status smallint, p_response jsonb)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
BEGIN
    UPDATE public.idempotency_keys i SET status = p_status, response = p_response
    WHERE i.tenant_id = a.v_tenant AND i.user_id = a.v_user AND i.key = p_key
      AND i.status IS NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.idempotency_finish(text, smallint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.idempotency_finish(text, smallint, jsonb) TO serein_app;

-- May the proven person book practitioner p here? An active employee of this company, and p
-- an active practitioner of it.
CREATE FUNCTION app_private.booking_allowed(p_user uuid, p_tenant uuid, p_practitioner uuid)
    RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT p_user <> p_practitioner
       AND EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = p_tenant AND m.user_id = p_user AND m.status = 'active'
                     AND m.ended_at IS NULL AND 'employee' = ANY (m.roles))
       AND EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = p_tenant AND m.user_id = p_practitioner
                     AND m.status = 'active' AND 'practitioner' = ANY (m.roles))
$$;
REVOKE ALL ON FUNCTION app_private.booking_allowed(uuid, uuid, uuid) FROM PUBLIC;

-- Take the booking locks (the practitioner's schedule, then the employee's membership) and
-- answer whether the practitioner confirms automatically; NULL when this booking cannot be
-- (no schedule, not allowed).
CREATE FUNCTION app_private.booking_lock(p_practitioner uuid)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    v_auto boolean;
BEGIN
    IF NOT app_private.booking_allowed(a.v_user, a.v_tenant, p_practitioner) THEN
        RETURN NULL;
    END IF;
    SELECT s.auto_confirm INTO v_auto
    FROM public.practitioner_schedules s WHERE s.user_id = p_practitioner
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM public.memberships m
    WHERE m.tenant_id = a.v_tenant AND m.user_id = a.v_user
    FOR NO KEY UPDATE;
    RETURN v_auto;
END
$$;
REVOKE ALL ON FUNCTION app_private.booking_lock(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.booking_lock(uuid) TO serein_app;

-- Book, after `booking_lock` and the API's slot check in this transaction: 'booked' with the
-- new id, or 'allowance_exhausted', 'slot_taken' (the practitioner is busy then, in any
-- company), 'overlapping_booking' (the employee already has a session then), 'not_allowed'.
-- The allowance is the company's per employee and calendar year (of the start, in the
-- company's time zone); a session counts unless it was cancelled early.
CREATE FUNCTION app_private.book_consultation(p_id uuid, p_practitioner uuid, p_kind text,
                                              p_starts_at timestamptz, p_ends_at timestamptz,
                                              p_now timestamptz)
    RETURNS TABLE (outcome text, consultation_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    v_auto boolean;
    v_allowance integer;
    v_zone text;
    v_used bigint;
    v_constraint text;
BEGIN
    IF NOT app_private.booking_allowed(a.v_user, a.v_tenant, p_practitioner)
       OR p_starts_at <= p_now THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::uuid;
        RETURN;
    END IF;
    SELECT s.auto_confirm INTO v_auto FROM public.practitioner_schedules s
    WHERE s.user_id = p_practitioner;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::uuid;
        RETURN;
    END IF;
    SELECT t.allowance, t.time_zone INTO v_allowance, v_zone
    FROM public.tenants t WHERE t.id = a.v_tenant;
    SELECT count(*) INTO v_used
    FROM public.consultations c
    WHERE c.tenant_id = a.v_tenant AND c.employee_id = a.v_user AND c.counts_against_allowance
      AND pg_catalog.date_part('year', c.starts_at AT TIME ZONE v_zone)
          = pg_catalog.date_part('year', p_starts_at AT TIME ZONE v_zone);
    IF v_used >= v_allowance THEN
        RETURN QUERY SELECT 'allowance_exhausted'::text, NULL::uuid;
        RETURN;
    END IF;
    BEGIN
        INSERT INTO public.consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                          starts_at, ends_at, room, created_at, updated_at)
        VALUES (p_id, a.v_tenant, a.v_user, p_practitioner, p_kind,
                CASE WHEN v_auto THEN 'confirmed' ELSE 'requested' END,
                p_starts_at, p_ends_at,
                pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), p_now, p_now);
    EXCEPTION WHEN exclusion_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        RETURN QUERY SELECT CASE v_constraint WHEN 'consultations_one_at_a_time'
                                THEN 'overlapping_booking' ELSE 'slot_taken' END, NULL::uuid;
        RETURN;
    END;
    INSERT INTO public.consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
    VALUES (pg_catalog.gen_random_uuid(), a.v_tenant, p_id, 'requested', a.v_user, p_now);
    IF v_auto THEN
        -- Confirmed by the system at once, after the request (a microsecond orders the two).
        INSERT INTO public.consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
        VALUES (pg_catalog.gen_random_uuid(), a.v_tenant, p_id, 'confirmed', NULL,
                p_now + interval '1 microsecond');
    END IF;
    RETURN QUERY SELECT 'booked'::text, p_id;
END
$$;
REVOKE ALL ON FUNCTION app_private.book_consultation(uuid, uuid, text, timestamptz, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.book_consultation(uuid, uuid, text, timestamptz, timestamptz, timestamptz) TO serein_app;
