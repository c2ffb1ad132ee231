-- Availability (issue 11, item 1): a practitioner's weekly rules and exceptions.
--
-- GLOBAL TABLES (no tenant_id), deliberately, as DESIGN §4 says: a practitioner's time is one
-- resource across every company they serve, so a rule is written once and offered on every
-- company host. Like `users` and `practitioner_profiles`, they have forced row-level security
-- and explicit tests (tests/api/availability.rs; the catalogue-driven matrix covers tables
-- with a tenant_id):
-- * read: the practitioner themself, or a person of a company the practitioner serves (an
--   active practitioner membership in the request's company) — both PROVEN by the session
--   guard in this transaction (`app_private.proven_person()`), never a claimed `app.user_id`;
-- * written: by the practitioner themself, proven, only.
-- Nothing here says anything about a company's people; a booking (a company's record) comes
-- with the consultations of a later migration.
--
-- `practitioner_schedules` holds the practitioner's IANA time zone (rules are local times in
-- it) and whether bookings confirm automatically. The zone is checked against PostgreSQL's
-- list by the API, and against the slot engine's bundled tz database.

-- The proven person of this transaction, for policies: `app_private.proven_user()` is not
-- granted to the request role (it reads the proof secret); this definer answers only the id
-- the guard proved, or NULL. It takes no argument and trusts no claim.
CREATE FUNCTION app_private.proven_person() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$ SELECT app_private.proven_user() $$;
REVOKE ALL ON FUNCTION app_private.proven_person() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.proven_person() TO serein_app;

-- May the proven person of this transaction read practitioner p's availability? p themself,
-- or anyone proven in a company p serves. Invoker rights: the membership look-up runs under
-- the caller's own policies (as `practitioner_profiles_read` does).
CREATE FUNCTION app_private.availability_visible(p uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT p = app_private.proven_person()
        OR (app_private.proven_person() IS NOT NULL
            AND EXISTS (SELECT 1 FROM public.memberships m
                        WHERE m.user_id = p AND m.tenant_id = app.current_tenant()
                          AND m.status = 'active' AND 'practitioner' = ANY (m.roles)))
$$;
REVOKE ALL ON FUNCTION app_private.availability_visible(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.availability_visible(uuid) TO serein_app;

CREATE TABLE practitioner_schedules (
    user_id      uuid PRIMARY KEY REFERENCES practitioner_profiles (user_id) ON DELETE CASCADE,
    -- IANA name, e.g. Europe/Paris.
    time_zone    text NOT NULL CHECK (time_zone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$'),
    -- Bookings are confirmed at once (true) or wait for the practitioner (false).
    auto_confirm boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- A window of a weekday, in local time of the schedule's zone, and what it offers. Minutes.
CREATE TABLE availability_rules (
    id                 uuid PRIMARY KEY,
    practitioner_id    uuid NOT NULL REFERENCES practitioner_schedules (user_id) ON DELETE CASCADE,
    weekday            smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),  -- ISO: 1 = Monday
    start_time         time NOT NULL,
    end_time           time NOT NULL,
    lengths            smallint[] NOT NULL
                       CHECK (cardinality(lengths) BETWEEN 1 AND 6 AND array_position(lengths, NULL) IS NULL
                              AND 15 <= ALL (lengths) AND 240 >= ALL (lengths)),
    step_minutes       smallint CHECK (step_minutes BETWEEN 5 AND 240),
    buffer_before      smallint NOT NULL DEFAULT 0 CHECK (buffer_before BETWEEN 0 AND 120),
    buffer_after       smallint NOT NULL DEFAULT 0 CHECK (buffer_after BETWEEN 0 AND 120),
    min_notice_minutes integer NOT NULL CHECK (min_notice_minutes BETWEEN 0 AND 43200),
    horizon_days       smallint NOT NULL CHECK (horizon_days BETWEEN 1 AND 365),
    kinds              text[] NOT NULL
                       CHECK (cardinality(kinds) BETWEEN 1 AND 4 AND array_position(kinds, NULL) IS NULL
                              AND kinds <@ ARRAY['video', 'audio', 'chat', 'in_person']),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT availability_rules_window CHECK (start_time < end_time)
);
CREATE INDEX availability_rules_practitioner_idx ON availability_rules (practitioner_id, weekday);

-- Time off (nothing offered) or extra hours (a one-off window with its own offer).
CREATE TABLE availability_exceptions (
    id                 uuid PRIMARY KEY,
    practitioner_id    uuid NOT NULL REFERENCES practitioner_schedules (user_id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('time_off', 'extra_hours')),
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    -- The offer of extra hours; all NULL for time off.
    lengths            smallint[]
                       CHECK (cardinality(lengths) BETWEEN 1 AND 6 AND array_position(lengths, NULL) IS NULL
                              AND 15 <= ALL (lengths) AND 240 >= ALL (lengths)),
    step_minutes       smallint CHECK (step_minutes BETWEEN 5 AND 240),
    buffer_before      smallint CHECK (buffer_before BETWEEN 0 AND 120),
    buffer_after       smallint CHECK (buffer_after BETWEEN 0 AND 120),
    min_notice_minutes integer CHECK (min_notice_minutes BETWEEN 0 AND 43200),
    horizon_days       smallint CHECK (horizon_days BETWEEN 1 AND 365),
    kinds              text[]
                       CHECK (cardinality(kinds) BETWEEN 1 AND 4 AND array_position(kinds, NULL) IS NULL
                              AND kinds <@ ARRAY['video', 'audio', 'chat', 'in_person']),
    created_at         timestamptz NOT NULL,
    CONSTRAINT availability_exceptions_period CHECK (
        starts_at < ends_at
        AND ends_at <= starts_at + CASE kind WHEN 'time_off' THEN interval '366 days'
                                             ELSE interval '24 hours' END),
    CONSTRAINT availability_exceptions_offer CHECK (
        CASE kind
            WHEN 'time_off' THEN num_nonnulls(lengths, step_minutes, buffer_before, buffer_after,
                                              min_notice_minutes, horizon_days, kinds) = 0
            ELSE num_nonnulls(lengths, buffer_before, buffer_after, min_notice_minutes,
                              horizon_days, kinds) = 6
        END)
);
CREATE INDEX availability_exceptions_practitioner_idx
    ON availability_exceptions (practitioner_id, starts_at, id);

ALTER TABLE practitioner_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE practitioner_schedules FORCE ROW LEVEL SECURITY;
ALTER TABLE availability_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE availability_rules FORCE ROW LEVEL SECURITY;
ALTER TABLE availability_exceptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE availability_exceptions FORCE ROW LEVEL SECURITY;

CREATE POLICY practitioner_schedules_read ON practitioner_schedules
    FOR SELECT TO serein_app USING (app_private.availability_visible(user_id));
CREATE POLICY practitioner_schedules_create ON practitioner_schedules
    FOR INSERT TO serein_app WITH CHECK (user_id = (SELECT app_private.proven_person()));
CREATE POLICY practitioner_schedules_update ON practitioner_schedules
    FOR UPDATE TO serein_app
    USING (user_id = (SELECT app_private.proven_person()))
    WITH CHECK (user_id = (SELECT app_private.proven_person()));

CREATE POLICY availability_rules_read ON availability_rules
    FOR SELECT TO serein_app USING (app_private.availability_visible(practitioner_id));
CREATE POLICY availability_rules_create ON availability_rules
    FOR INSERT TO serein_app WITH CHECK (practitioner_id = (SELECT app_private.proven_person()));
CREATE POLICY availability_rules_update ON availability_rules
    FOR UPDATE TO serein_app
    USING (practitioner_id = (SELECT app_private.proven_person()))
    WITH CHECK (practitioner_id = (SELECT app_private.proven_person()));
CREATE POLICY availability_rules_delete ON availability_rules
    FOR DELETE TO serein_app USING (practitioner_id = (SELECT app_private.proven_person()));

CREATE POLICY availability_exceptions_read ON availability_exceptions
    FOR SELECT TO serein_app USING (app_private.availability_visible(practitioner_id));
CREATE POLICY availability_exceptions_create ON availability_exceptions
    FOR INSERT TO serein_app WITH CHECK (practitioner_id = (SELECT app_private.proven_person()));
CREATE POLICY availability_exceptions_delete ON availability_exceptions
    FOR DELETE TO serein_app USING (practitioner_id = (SELECT app_private.proven_person()));

GRANT SELECT ON practitioner_schedules, availability_rules, availability_exceptions TO serein_app;
GRANT INSERT (user_id, time_zone, auto_confirm, created_at, updated_at)
    ON practitioner_schedules TO serein_app;
GRANT UPDATE (time_zone, auto_confirm, updated_at) ON practitioner_schedules TO serein_app;
GRANT INSERT ON availability_rules TO serein_app;
GRANT UPDATE (weekday, start_time, end_time, lengths, step_minutes, buffer_before, buffer_after,
              min_notice_minutes, horizon_days, kinds, updated_at)
    ON availability_rules TO serein_app;
GRANT DELETE ON availability_rules TO serein_app;
GRANT INSERT, DELETE ON availability_exceptions TO serein_app;
