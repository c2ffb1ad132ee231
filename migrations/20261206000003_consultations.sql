-- Consultations (issue 11, items 2–4): the company's record of a booked session, and the
-- practitioner's busy time across every company.
--
-- * `consultations` is a TENANT table (forced RLS): a row is read by its two participants only,
--   proven by the session guard — the employee who booked and the practitioner — in the
--   company it belongs to. HR and tenant admins read no row (DESIGN §2, §7), whatever their
--   roles; no role writes one directly: bookings and transitions go through definers.
-- * A practitioner can never be double-booked, even across companies:
--   `EXCLUDE USING gist (practitioner_id WITH =, period WITH &&)` over the active statuses.
--   Deliberately NOT led by tenant_id (the rule for uniques): the practitioner's time is one
--   resource. What a violation could tell a company — "busy then" — is what the slots show
--   anyway, and the API maps it to 409 `slot_taken` without the constraint's detail.
-- * An employee cannot hold two overlapping sessions in one company either.
-- * Busy time crosses companies only through `app_private.practitioner_busy`, which returns
--   merged intervals: never who, never which company, never how many.
-- * `btree_gist` (trusted, PostgreSQL 13+) gives uuid `=` inside a GiST exclusion.

CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE TABLE consultations (
    id                 uuid NOT NULL,
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    employee_id        uuid NOT NULL,
    practitioner_id    uuid NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('video', 'audio', 'chat', 'in_person')),
    status             text NOT NULL
                       CHECK (status IN ('requested', 'confirmed', 'started', 'ended', 'cancelled', 'no_show')),
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    period             tstzrange GENERATED ALWAYS AS (tstzrange(starts_at, ends_at, '[)')) STORED,
    -- Bumped on every change a calendar must show (RFC 5545 SEQUENCE).
    sequence           integer NOT NULL DEFAULT 0,
    -- The video room: opaque and unguessable (128 random bits, hex).
    room               text NOT NULL CHECK (room ~ '^[0-9a-f]{32}$'),
    cancelled_by       uuid,
    -- A code, never free text: the reason is not health content.
    cancel_reason      text CHECK (cancel_reason IN ('schedule_conflict', 'unwell', 'no_longer_needed',
                                                     'practitioner_unavailable', 'other')),
    -- Whether the session uses up one of the employee's allowance (a late cancellation or a
    -- no-show still does; an early one gives it back).
    counts_against_allowance boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT consultations_pkey PRIMARY KEY (id),
    CONSTRAINT consultations_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT consultations_tenant_room_key UNIQUE (tenant_id, room),
    CONSTRAINT consultations_employee_fkey FOREIGN KEY (tenant_id, employee_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT consultations_practitioner_fkey FOREIGN KEY (tenant_id, practitioner_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT consultations_period CHECK (starts_at < ends_at AND ends_at <= starts_at + interval '4 hours'),
    CONSTRAINT consultations_parties CHECK (employee_id <> practitioner_id),
    CONSTRAINT consultations_cancelled CHECK ((status = 'cancelled') = (cancelled_by IS NOT NULL)),
    CONSTRAINT consultations_no_double_booking EXCLUDE USING gist
        (practitioner_id WITH =, period WITH &&) WHERE (status IN ('requested', 'confirmed', 'started')),
    CONSTRAINT consultations_one_at_a_time EXCLUDE USING gist
        (tenant_id WITH =, employee_id WITH =, period WITH &&) WHERE (status IN ('requested', 'confirmed', 'started'))
);
CREATE INDEX consultations_employee_idx ON consultations (tenant_id, employee_id, starts_at, id);
CREATE INDEX consultations_practitioner_idx ON consultations (tenant_id, practitioner_id, starts_at, id);

-- Every transition, as it happened.
CREATE TABLE consultation_events (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL,
    consultation_id uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('requested', 'confirmed', 'started', 'ended',
                                                  'cancelled', 'no_show', 'rescheduled')),
    -- Who acted (NULL: the system, e.g. automatic confirmation).
    actor_id        uuid,
    at              timestamptz NOT NULL,
    -- For a reschedule: the period it left.
    old_starts_at   timestamptz,
    old_ends_at     timestamptz,
    CONSTRAINT consultation_events_pkey PRIMARY KEY (id),
    CONSTRAINT consultation_events_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT consultation_events_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX consultation_events_consultation_idx
    ON consultation_events (tenant_id, consultation_id, at, id);

ALTER TABLE consultations ENABLE ROW LEVEL SECURITY;
ALTER TABLE consultations FORCE ROW LEVEL SECURITY;
ALTER TABLE consultation_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE consultation_events FORCE ROW LEVEL SECURITY;

CREATE POLICY consultations_participants ON consultations
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND (SELECT app_private.proven_person()) IN (employee_id, practitioner_id));
CREATE POLICY consultation_events_participants ON consultation_events
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND EXISTS (SELECT 1 FROM consultations c
                       WHERE c.tenant_id = consultation_events.tenant_id
                         AND c.id = consultation_events.consultation_id));
GRANT SELECT ON consultations, consultation_events TO serein_app;

-- The practitioner's busy time between p_from and p_to (at most 64 days), from every company:
-- merged intervals of their active consultations, and nothing else. Answers the practitioner
-- themself, or a person proven in a company the practitioner serves (the people who may see
-- their slots); anyone else gets no row.
CREATE FUNCTION app_private.practitioner_busy(p_practitioner uuid, p_from timestamptz,
                                              p_to timestamptz)
    RETURNS TABLE (starts_at timestamptz, ends_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    ROWS 20
    AS $$
DECLARE
    v_me uuid := app_private.proven_user();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR p_from IS NULL OR p_to IS NULL
       OR p_to <= p_from OR p_to > p_from + interval '64 days' THEN
        RETURN;
    END IF;
    IF v_me <> p_practitioner AND NOT EXISTS (
           SELECT 1 FROM public.memberships m
           WHERE m.tenant_id = v_tenant AND m.user_id = p_practitioner
             AND m.status = 'active' AND 'practitioner' = ANY (m.roles)) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT pg_catalog.lower(r), pg_catalog.upper(r)
        FROM pg_catalog.unnest((
            SELECT pg_catalog.range_agg(c.period)
            FROM public.consultations c
            WHERE c.practitioner_id = p_practitioner
              AND c.status IN ('requested', 'confirmed', 'started')
              AND c.period OPERATOR(pg_catalog.&&) pg_catalog.tstzrange(p_from, p_to, '[)'))) AS r
        ORDER BY 1;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_busy(uuid, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_busy(uuid, timestamptz, timestamptz) TO serein_app;
