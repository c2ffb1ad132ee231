-- Usage reports (issue 13, items 1–3): HR's usage report and CSV export, the platform's usage
-- report across companies, its per-company overview, and the practitioners' activity export.
--
-- The threat: HR knows the org chart (every department's people by name), can ask as often as
-- it likes, with every grouping and range, and can subtract one answer from another. A figure
-- about fewer than `min_cohort` people, or one recoverable from other figures, tells HR about a
-- person: "none of the 3 people in Legal booked", "Legal booked once in March, and Ana was off
-- sick", "all 6 people of Sales saw a therapist". HR and tenant admins keep NO row access to
-- consultations or memberships: everything below is computed by definers that return released
-- aggregates only.
--
-- Rules, in the order they apply:
-- 1. Closed periods only. A month is released once it is complete in the company's time zone
--    by the EARLIER of the caller's clock and the database's (no caller opens the month under
--    way); the platform's months once every company's month is over (one day after the month
--    ends in UTC). Nothing live: the API refuses (422) a range that reaches a month not closed.
-- 2. Frozen. The first request after a month closed (for any range that includes it) computes
--    that month's release ONCE, under an advisory lock, into `usage_months` / `usage_cells` /
--    `usage_practitioner_months`; every later answer reads the frozen release. A sign-up, a
--    booking entered late, a department change, an erasure or a new `min_cohort` changes
--    nothing already released, so two answers a day apart differ by nothing (PROOF 8c). Months
--    before this feature existed are computed the same way on their first request (from the
--    data as it is then) and frozen from then on. Months before the company's creation month
--    have no release. Raw figures of suppressed cells stay in the frozen tables (the platform's
--    sums need them); the request role can neither read nor write these tables (no grant; RLS
--    forced; the policies exist only so that a future grant could never cross tenants).
-- 3. One release per month. The unit of release is one month of one company: the cells of
--    every grouping (the month's total, each department, each specialty, each kind) are
--    suppressed JOINTLY, once, at the freeze; a query returns released month cells only (no
--    range sums, no cross-tabulation, no filter), so no combination of queries derives more than
--    that fixed release allows.
-- 4. Measures per cell: `booked` (consultations whose start falls in the month, any status),
--    `held` (ended), `cancelled`, `minutes` (of the held ones, from their start and end events),
--    `users` (distinct employees who booked). A cell's department is the employee's membership
--    department at the freeze ('' = none); its specialty is the practitioner's first listed
--    specialty at the freeze ('' = none listed); its kind the consultation's. The keys of each
--    grouping never depend on who booked or enrolled: departments are every department of the
--    company's memberships and invitations (set by admins, plus '' always), specialties those
--    of the practitioners serving the company, kinds all four. Empty cells are cells.
-- 5. Primary suppression ("below_min_cohort"), per measure and cell, `min_cohort` = the
--    company's at the freeze (recorded with the month): the count is below it (0 included:
--    "nobody in Legal" is about every person of Legal), or the PEOPLE behind it are fewer (ten
--    bookings by two people are about two people), or, for `users`, the people of the group who
--    did NOT book are fewer (enrolled members of the department at month end, the company's
--    for the other groupings): "6 of the 6 people of Sales" names all six.
-- 6. Complementary suppression ("complementary"), per measure, until a fixpoint:
--    a. a cell whose `booked` is hidden hides its other measures (parts of a hidden whole);
--    b. a measure whose month total is hidden is hidden in every cell;
--    c. every relation HR can see — each grouping's cells add up to the month's total — must
--       leave every hidden cell at least two possible values, taking into account what the
--       answer itself says of a hidden cell (the reason: "below_min_cohort" means 0 to
--       min_cohort − 1, "complementary" means min_cohort or more) and what the cell's own
--       released figures imply (held + cancelled ≤ booked; 1 ≤ users ≤ booked). While that
--       fails the next smallest released cell of that grouping is hidden (ties by key); if
--       hiding the whole grouping is not enough, the measure is hidden for the whole month.
--       (The interval test is `usage_hidden_safe`; it is what makes the two reasons safe to
--       publish: without it, "Legal: below_min_cohort, Sales: complementary, together 5"
--       would pin Legal at 0.)
--    `minutes` follow `held`. Exact linear derivation is impossible by construction: with the
--    total released the only linear relations are the three partition sums, each left with
--    two or more unknowns; unpublished "other" outcomes (no-shows, never confirmed) keep
--    `held` and `cancelled` from being differences of each other. The property test in
--    tests/api/reports_property.rs checks it by rank over the finest cells.
-- 7. Enrolment, company level only (DESIGN §7: membership counts per department are not a
--    report): enrolled members at the month's end, rounded DOWN to a band of
--    max(min_cohort, 10) exactly as `member_summary` does, and that banded figure divided by
--    the seats. Both hidden below one band. With HR's knowledge of the seats it says no more
--    than the member summary already released for that month.
-- 8. The platform (platform admins, platform host): the same release rules over the sum of the
--    companies' frozen cells (total, specialty, kind; departments are per company), with the
--    STRICTEST `min_cohort` of the companies that had consultations that month (at least 5),
--    frozen once per month as the months of the platform's own tenant (tenant zero) in the same
--    tables (the purge never touches tenant zero, so a later purge of a company does not change
--    a released platform month). The per-company overview shows each company's frozen month
--    total, hidden where HR's is; the platform total of a measure is hidden when, together
--    with the companies' hidden totals, it would pin one of them.
-- 9. Practitioner activity (platform admins): per practitioner, month and company, consultations
--    held and their minutes, exact — it is the practitioner's own work, what they are paid for;
--    no employee, no kind, no department. Frozen with the company's month so a later erasure
--    does not rewrite a paid month. A small company's line ("someone at acme saw Dr X in
--    March") names no employee to a platform admin, who reads no company's members; it is not
--    shown to HR. The held counts and minutes of the platform reports are therefore known
--    exactly to platform admins; the suppression there protects the other measures.
--
-- Residual, stated: the reasons narrow a hidden cell to an interval (that is what a reason
-- says); inequalities between measures can narrow it further without pinning it; when a whole
-- measure is hidden the relations between its hidden cells are not re-checked (none of them
-- has a known total left).

-- ---------------------------------------------------------------------------------------------
-- The month of a company's consultations, by start (the freeze reads one month per company).
CREATE INDEX consultations_tenant_start_idx ON consultations (tenant_id, starts_at);

-- A company's frozen month: the cohort it was released under, the enrolment figures. The
-- platform's months are those of tenant zero (sums over the companies).
CREATE TABLE usage_months (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    min_cohort  integer NOT NULL CHECK (min_cohort >= 3),
    -- Enrolled members (company roles) at the month's end, exact: never returned to HR.
    members     integer NOT NULL CHECK (members >= 0),
    band        integer NOT NULL CHECK (band >= 3),
    seats       integer NOT NULL,
    frozen_at   timestamptz NOT NULL,
    CONSTRAINT usage_months_pkey PRIMARY KEY (tenant_id, month)
);

-- The frozen cells of a company's month: raw figures and the release decision per measure
-- (NULL: released).
CREATE TABLE usage_cells (
    tenant_id        uuid NOT NULL,
    month            date NOT NULL,
    grouping         text NOT NULL CHECK (grouping IN ('total', 'department', 'specialty', 'kind')),
    group_key        text NOT NULL CHECK (grouping <> 'total' OR group_key = ''),
    booked           integer NOT NULL,
    held             integer NOT NULL,
    cancelled        integer NOT NULL,
    minutes          bigint NOT NULL,
    users            integer NOT NULL,
    held_users       integer NOT NULL,
    cancelled_users  integer NOT NULL,
    population       integer NOT NULL,
    booked_hidden    text CHECK (booked_hidden IN ('below_min_cohort', 'complementary')),
    held_hidden      text CHECK (held_hidden IN ('below_min_cohort', 'complementary')),
    cancelled_hidden text CHECK (cancelled_hidden IN ('below_min_cohort', 'complementary')),
    users_hidden     text CHECK (users_hidden IN ('below_min_cohort', 'complementary')),
    CONSTRAINT usage_cells_pkey PRIMARY KEY (tenant_id, month, grouping, group_key),
    CONSTRAINT usage_cells_month_fkey FOREIGN KEY (tenant_id, month)
        REFERENCES usage_months (tenant_id, month) ON DELETE CASCADE
);

-- A practitioner's frozen month in a company: consultations held, their minutes.
CREATE TABLE usage_practitioner_months (
    tenant_id       uuid NOT NULL,
    month           date NOT NULL,
    practitioner_id uuid NOT NULL,
    held            integer NOT NULL,
    minutes         bigint NOT NULL,
    CONSTRAINT usage_practitioner_months_pkey PRIMARY KEY (tenant_id, month, practitioner_id),
    CONSTRAINT usage_practitioner_months_month_fkey FOREIGN KEY (tenant_id, month)
        REFERENCES usage_months (tenant_id, month) ON DELETE CASCADE
);

ALTER TABLE usage_months ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_months FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_cells ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_cells FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_practitioner_months ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_practitioner_months FORCE ROW LEVEL SECURITY;
-- Unreachable (no grant): they exist so that a grant added by mistake could never show or
-- change another company's rows.
CREATE POLICY usage_months_tenant ON usage_months TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (false);
CREATE POLICY usage_cells_tenant ON usage_cells TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (false);
CREATE POLICY usage_practitioner_months_tenant ON usage_practitioner_months TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (false);
REVOKE ALL ON usage_months, usage_cells, usage_practitioner_months FROM PUBLIC, serein_app;

-- ---------------------------------------------------------------------------------------------
-- Release arithmetic (internal, not granted).

-- What an answer lets a reader know of one hidden cell, alone: the interval [lo, hi] (hi NULL:
-- no upper bound). The reason bounds it (below_min_cohort: 0 … max(min_cohort − 1, value) — the
-- value itself when its people, not its count, were too few; complementary: min_cohort …);
-- the cell's released `booked` bounds its parts: held ≤ booked − cancelled (or − the least a
-- hidden `cancelled` can be), and the other way round; 1 ≤ users ≤ booked.
-- p_measure: 1 booked, 2 held, 3 cancelled, 4 users.
CREATE FUNCTION app_private.usage_box(p_measure integer, p_hidden text, p_value integer,
                                      p_min integer, p_booked integer, p_booked_hidden text,
                                      p_sibling integer, p_sibling_hidden text,
                                      OUT lo integer, OUT hi integer)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = ''
    AS $$
DECLARE
    v_ub integer;
BEGIN
    IF p_hidden = 'complementary' THEN
        lo := p_min;
        hi := NULL;
    ELSE
        lo := 0;
        hi := greatest(p_min - 1, p_value);
    END IF;
    IF p_measure > 1 AND p_booked_hidden IS NULL THEN
        IF p_measure = 4 THEN
            v_ub := p_booked;
            IF p_booked > 0 THEN
                lo := greatest(lo, 1);
            END IF;
        ELSE
            v_ub := p_booked - CASE WHEN p_sibling_hidden IS NULL THEN p_sibling
                                    WHEN p_sibling_hidden = 'complementary' THEN p_min
                                    ELSE 0 END;
        END IF;
        hi := least(coalesce(hi, v_ub), v_ub);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_box(integer, text, integer, integer, integer, text, integer, text) FROM PUBLIC;

-- Is every hidden cell of one relation (their sum is known: the relation's total minus its
-- released cells) left with at least two possible values? p_value: the hidden cells' true
-- values; p_lo, p_hi: what the reader knows of each alone (`usage_box`; NULL hi: unbounded).
-- Exact for one relation with box bounds: cell z ranges over
-- [max(lo_z, R − Σ_{y≠z} hi_y), min(hi_z, R − Σ_{y≠z} lo_y)], R = Σ values. One hidden cell
-- is always pinned.
CREATE FUNCTION app_private.usage_hidden_safe(p_value integer[], p_lo integer[], p_hi integer[])
    RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = ''
    AS $$
DECLARE
    n        integer := coalesce(cardinality(p_value), 0);
    v_r      bigint := 0;
    v_sum_lo bigint := 0;
    v_sum_hi bigint := 0;
    v_open   integer := 0;
    v_lo     bigint;
    v_hi     bigint;
    i        integer;
BEGIN
    IF n = 0 THEN
        RETURN true;
    END IF;
    FOR i IN 1 .. n LOOP
        v_r := v_r + p_value[i];
        v_sum_lo := v_sum_lo + p_lo[i];
        IF p_hi[i] IS NULL THEN
            v_open := v_open + 1;
        ELSE
            v_sum_hi := v_sum_hi + p_hi[i];
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF v_open - (CASE WHEN p_hi[i] IS NULL THEN 1 ELSE 0 END) > 0 THEN
            v_lo := p_lo[i];
        ELSE
            v_lo := greatest(p_lo[i], v_r - (v_sum_hi - coalesce(p_hi[i], 0)));
        END IF;
        v_hi := v_r - (v_sum_lo - p_lo[i]);
        IF p_hi[i] IS NOT NULL THEN
            v_hi := least(v_hi, p_hi[i]);
        END IF;
        IF v_hi - v_lo < 1 THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_hidden_safe(integer[], integer[], integer[]) FROM PUBLIC;

-- The release decision of one month (rules 5 and 6 of the header), for a company or the
-- platform. Input: the month's cells in a fixed order (grouping, key), exactly one 'total';
-- p_force: measures (1 booked … 4 users) to hide whole (the platform's cross-company check).
-- Output: each cell's reason per measure (NULL: released). Deterministic: the same input
-- gives the same release.
CREATE FUNCTION app_private.usage_suppress(p_grouping text[], p_booked integer[], p_held integer[],
                                           p_cancelled integer[], p_users integer[],
                                           p_held_users integer[], p_cancelled_users integer[],
                                           p_population integer[], p_key text[], p_min integer,
                                           p_force boolean[])
    RETURNS TABLE (ord integer, booked_hidden text, held_hidden text, cancelled_hidden text,
                   users_hidden text)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = ''
    AS $$
DECLARE
    n         integer := coalesce(cardinality(p_grouping), 0);
    v         integer[];
    st        text[];
    v_total   integer;
    v_changed boolean;
    v_rounds  integer := 0;
    v_safe    boolean;
    v_zv      integer[];
    v_zl      integer[];
    v_zh      integer[];
    v_lo      integer;
    v_hi      integer;
    v_pick    integer;
    mi        integer;
    i         integer;
    g         text;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    v := array_fill(0, ARRAY[4, n]);
    st := array_fill(NULL::text, ARRAY[4, n]);
    FOR i IN 1 .. n LOOP
        v[1][i] := p_booked[i];
        v[2][i] := p_held[i];
        v[3][i] := p_cancelled[i];
        v[4][i] := p_users[i];
        IF p_grouping[i] = 'total' THEN
            v_total := i;
        END IF;
        -- Primary: the count, or the people behind it, below the cohort; for users, also the
        -- people of the group who did not book.
        IF p_booked[i] < p_min OR p_users[i] < p_min THEN
            st[1][i] := 'below_min_cohort';
        END IF;
        IF p_held[i] < p_min OR p_held_users[i] < p_min THEN
            st[2][i] := 'below_min_cohort';
        END IF;
        IF p_cancelled[i] < p_min OR p_cancelled_users[i] < p_min THEN
            st[3][i] := 'below_min_cohort';
        END IF;
        IF p_users[i] < p_min OR p_population[i] - p_users[i] < p_min THEN
            st[4][i] := 'below_min_cohort';
        END IF;
    END LOOP;
    IF v_total IS NULL THEN
        RAISE EXCEPTION 'usage_suppress needs the month total';
    END IF;
    FOR mi IN 1 .. 4 LOOP
        IF coalesce(p_force[mi], false) AND st[mi][v_total] IS NULL THEN
            st[mi][v_total] := 'complementary';
        END IF;
    END LOOP;

    LOOP
        v_changed := false;
        v_rounds := v_rounds + 1;
        -- Fail safe: the loop only ever hides, so it ends; should it not, hide everything.
        IF v_rounds > 8 * n + 16 THEN
            FOR mi IN 1 .. 4 LOOP
                FOR i IN 1 .. n LOOP
                    st[mi][i] := coalesce(st[mi][i], 'complementary');
                END LOOP;
            END LOOP;
            EXIT;
        END IF;
        -- a. A hidden `booked` hides the cell's parts.
        FOR i IN 1 .. n LOOP
            IF st[1][i] IS NOT NULL THEN
                FOR mi IN 2 .. 4 LOOP
                    IF st[mi][i] IS NULL THEN
                        st[mi][i] := 'complementary';
                        v_changed := true;
                    END IF;
                END LOOP;
            END IF;
        END LOOP;
        -- b. A hidden total hides the measure in every cell.
        FOR mi IN 1 .. 4 LOOP
            IF st[mi][v_total] IS NOT NULL THEN
                FOR i IN 1 .. n LOOP
                    IF st[mi][i] IS NULL THEN
                        st[mi][i] := 'complementary';
                        v_changed := true;
                    END IF;
                END LOOP;
            END IF;
        END LOOP;
        -- c0. A hidden part pinned by its own cell's released figures alone: hide the released
        --     sibling, else the cell's `booked`.
        FOR i IN 1 .. n LOOP
            FOR mi IN 2 .. 3 LOOP
                IF st[mi][i] IS NOT NULL AND st[1][i] IS NULL THEN
                    SELECT b.lo, b.hi INTO v_lo, v_hi
                    FROM app_private.usage_box(mi, st[mi][i], v[mi][i], p_min, v[1][i], st[1][i],
                                               v[5 - mi][i], st[5 - mi][i]) b;
                    IF v_hi IS NOT NULL AND v_hi - v_lo < 1 THEN
                        IF st[5 - mi][i] IS NULL THEN
                            st[5 - mi][i] := 'complementary';
                        ELSE
                            st[1][i] := 'complementary';
                        END IF;
                        v_changed := true;
                    END IF;
                END IF;
            END LOOP;
        END LOOP;
        CONTINUE WHEN v_changed;
        -- c. Each grouping's relation to the (released) total, per measure.
        FOR mi IN 1 .. 4 LOOP
            CONTINUE WHEN st[mi][v_total] IS NOT NULL;
            FOR g IN SELECT DISTINCT x FROM unnest(p_grouping) AS x WHERE x <> 'total' ORDER BY 1 LOOP
                LOOP
                    v_zv := '{}';
                    v_zl := '{}';
                    v_zh := '{}';
                    FOR i IN 1 .. n LOOP
                        CONTINUE WHEN p_grouping[i] <> g OR st[mi][i] IS NULL;
                        SELECT b.lo, b.hi INTO v_lo, v_hi
                        FROM app_private.usage_box(mi, st[mi][i], v[mi][i], p_min, v[1][i], st[1][i],
                                                   CASE WHEN mi IN (2, 3) THEN v[5 - mi][i] END,
                                                   CASE WHEN mi IN (2, 3) THEN st[5 - mi][i] END) b;
                        v_zv := v_zv || v[mi][i];
                        v_zl := v_zl || v_lo;
                        v_zh := v_zh || v_hi;
                    END LOOP;
                    v_safe := app_private.usage_hidden_safe(v_zv, v_zl, v_zh);
                    EXIT WHEN v_safe;
                    -- The next smallest released cell of the grouping (ties by key).
                    v_pick := NULL;
                    FOR i IN 1 .. n LOOP
                        CONTINUE WHEN p_grouping[i] <> g OR st[mi][i] IS NOT NULL;
                        IF v_pick IS NULL OR v[mi][i] < v[mi][v_pick]
                           OR (v[mi][i] = v[mi][v_pick] AND p_key[i] < p_key[v_pick]) THEN
                            v_pick := i;
                        END IF;
                    END LOOP;
                    IF v_pick IS NULL THEN
                        -- Hiding the whole grouping is not enough: hide the measure (rule b).
                        st[mi][v_total] := 'complementary';
                    ELSE
                        st[mi][v_pick] := 'complementary';
                    END IF;
                    v_changed := true;
                    EXIT WHEN v_pick IS NULL;
                END LOOP;
                EXIT WHEN st[mi][v_total] IS NOT NULL;
            END LOOP;
        END LOOP;
        EXIT WHEN NOT v_changed;
    END LOOP;

    RETURN QUERY
        SELECT j, st[1][j], st[2][j], st[3][j], st[4][j] FROM generate_series(1, n) AS j;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_suppress(text[], integer[], integer[], integer[], integer[], integer[], integer[], integer[], text[], integer, boolean[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Freezing (internal, not granted).

-- Decide the release of one frozen month (a company's, or tenant zero's: the platform's) from
-- its cells, and record it on them. Internal.
CREATE FUNCTION app_private.usage_release(p_tenant uuid, p_month date, p_min integer, p_force boolean[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH cells AS (
            SELECT c.*, row_number() OVER (ORDER BY c.grouping, c.group_key)::integer AS ord
            FROM public.usage_cells c WHERE c.tenant_id = p_tenant AND c.month = p_month
        ),
        arrays AS (
            SELECT array_agg(c.grouping ORDER BY c.ord) AS g, array_agg(c.booked ORDER BY c.ord) AS b,
                   array_agg(c.held ORDER BY c.ord) AS h, array_agg(c.cancelled ORDER BY c.ord) AS ca,
                   array_agg(c.users ORDER BY c.ord) AS u, array_agg(c.held_users ORDER BY c.ord) AS hu,
                   array_agg(c.cancelled_users ORDER BY c.ord) AS cu,
                   array_agg(c.population ORDER BY c.ord) AS pop, array_agg(c.group_key ORDER BY c.ord) AS k
            FROM cells c
        )
        SELECT c.grouping, c.group_key, s.booked_hidden, s.held_hidden, s.cancelled_hidden, s.users_hidden
        FROM arrays a
        CROSS JOIN LATERAL app_private.usage_suppress(a.g, a.b, a.h, a.ca, a.u, a.hu, a.cu, a.pop, a.k,
                                                      p_min, p_force) s
        JOIN cells c ON c.ord = s.ord
    LOOP
        UPDATE public.usage_cells c
        SET booked_hidden = r.booked_hidden, held_hidden = r.held_hidden,
            cancelled_hidden = r.cancelled_hidden, users_hidden = r.users_hidden
        WHERE c.tenant_id = p_tenant AND c.month = p_month
          AND c.grouping = r.grouping AND c.group_key = r.group_key;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_release(uuid, date, integer, boolean[]) FROM PUBLIC;

-- The consultations of one company whose start falls in [p_start, p_end), one row each, with
-- the keys of their cells (rule 4) and, for a held one, its minutes from its start and end
-- events. Internal. (No temporary table: the request role shares the session's temporary
-- schema and could plant one under the definer.)
CREATE FUNCTION app_private.usage_month_rows(p_tenant uuid, p_start timestamptz, p_end timestamptz)
    RETURNS TABLE (person uuid, practitioner uuid, department text, specialty text, kind text,
                   held boolean, cancelled boolean, minutes bigint)
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT c.employee_id, c.practitioner_id, coalesce(m.department, ''),
           coalesce(p.specialties[1], ''), c.kind, c.status = 'ended', c.status = 'cancelled',
           CASE WHEN c.status = 'ended' THEN coalesce(d.minutes, 0) ELSE 0 END
    FROM public.consultations c
    LEFT JOIN public.memberships m ON m.tenant_id = c.tenant_id AND m.user_id = c.employee_id
    LEFT JOIN public.practitioner_profiles p ON p.user_id = c.practitioner_id
    LEFT JOIN LATERAL (
        SELECT greatest(0, (extract(epoch FROM max(e.at) FILTER (WHERE e.kind = 'ended')
                                              - max(e.at) FILTER (WHERE e.kind = 'started')) / 60))::bigint AS minutes
        FROM public.consultation_events e
        WHERE e.tenant_id = c.tenant_id AND e.consultation_id = c.id) d ON true
    WHERE c.tenant_id = p_tenant AND c.starts_at >= p_start AND c.starts_at < p_end
$$;
REVOKE ALL ON FUNCTION app_private.usage_month_rows(uuid, timestamptz, timestamptz) FROM PUBLIC;

-- Freeze one company's month, once: its cells, the release decision, the practitioners'
-- months. Refuses a month that is not over (by the earlier of p_now and the database's clock).
CREATE FUNCTION app_private.usage_freeze(p_tenant uuid, p_month date, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    v_tz      text;
    v_min     integer;
    v_seats   integer;
    v_start   timestamptz;
    v_end     timestamptz;
    v_members integer;
    v_band    integer;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('serein usage freeze'),
                                             pg_catalog.hashtext(p_tenant::text || p_month::text));
    IF EXISTS (SELECT 1 FROM public.usage_months u WHERE u.tenant_id = p_tenant AND u.month = p_month) THEN
        RETURN;
    END IF;
    SELECT t.time_zone, t.min_cohort, t.seats INTO v_tz, v_min, v_seats
    FROM public.tenants t WHERE t.id = p_tenant;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such company' USING ERRCODE = '22023';
    END IF;
    v_start := p_month::timestamp AT TIME ZONE v_tz;
    v_end := (p_month + interval '1 month') AT TIME ZONE v_tz;
    IF p_month <> pg_catalog.date_trunc('month', p_month)::date
       OR v_end > least(p_now, pg_catalog.statement_timestamp()) THEN
        RAISE EXCEPTION 'month % is not closed', p_month USING ERRCODE = '22023';
    END IF;
    v_band := greatest(v_min, 10);
    -- Enrolled at the month's end (as member_summary counts them).
    SELECT count(*)::integer INTO v_members
    FROM public.memberships m
    WHERE m.tenant_id = p_tenant AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']
      AND m.enrolled_since < v_end AND (m.ended_at IS NULL OR m.ended_at >= v_end);
    INSERT INTO public.usage_months (tenant_id, month, min_cohort, members, band, seats, frozen_at)
    VALUES (p_tenant, p_month, v_min, v_members, v_band, v_seats, pg_catalog.statement_timestamp());

    -- Every cell of the month, empty ones included; keys independent of who booked.
    WITH keys (grouping, group_key) AS (
        SELECT 'total', ''
        UNION SELECT 'department', coalesce(m.department, '') FROM public.memberships m WHERE m.tenant_id = p_tenant
        UNION SELECT 'department', coalesce(i.department, '') FROM public.invitations i WHERE i.tenant_id = p_tenant
        UNION SELECT 'department', ''
        UNION SELECT 'specialty', coalesce(p.specialties[1], '')
              FROM public.memberships m JOIN public.practitioner_profiles p ON p.user_id = m.user_id
              WHERE m.tenant_id = p_tenant
        UNION SELECT 'specialty', x.specialty FROM app_private.usage_month_rows(p_tenant, v_start, v_end) x
        UNION SELECT 'kind', k FROM unnest(ARRAY['video', 'audio', 'chat', 'in_person']) AS k
    ),
    figures AS (
        SELECT CASE WHEN GROUPING(x.department) = 0 THEN 'department'
                    WHEN GROUPING(x.specialty) = 0 THEN 'specialty'
                    WHEN GROUPING(x.kind) = 0 THEN 'kind' ELSE 'total' END AS grouping,
               coalesce(x.department, x.specialty, x.kind, '') AS group_key,
               count(*)::integer AS booked,
               count(*) FILTER (WHERE x.held)::integer AS held,
               count(*) FILTER (WHERE x.cancelled)::integer AS cancelled,
               coalesce(sum(x.minutes), 0)::bigint AS minutes,
               count(DISTINCT x.person)::integer AS users,
               count(DISTINCT x.person) FILTER (WHERE x.held)::integer AS held_users,
               count(DISTINCT x.person) FILTER (WHERE x.cancelled)::integer AS cancelled_users
        FROM app_private.usage_month_rows(p_tenant, v_start, v_end) x
        GROUP BY GROUPING SETS ((), (x.department), (x.specialty), (x.kind))
    ),
    population AS (
        SELECT coalesce(m.department, '') AS department, count(*)::integer AS n
        FROM public.memberships m
        WHERE m.tenant_id = p_tenant AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']
          AND m.enrolled_since < v_end AND (m.ended_at IS NULL OR m.ended_at >= v_end)
        GROUP BY 1
    )
    INSERT INTO public.usage_cells (tenant_id, month, grouping, group_key, booked, held, cancelled,
                                    minutes, users, held_users, cancelled_users, population)
    SELECT p_tenant, p_month, k.grouping, k.group_key,
           coalesce(f.booked, 0), coalesce(f.held, 0), coalesce(f.cancelled, 0),
           coalesce(f.minutes, 0), coalesce(f.users, 0), coalesce(f.held_users, 0),
           coalesce(f.cancelled_users, 0),
           CASE WHEN k.grouping = 'department' THEN coalesce(pop.n, 0) ELSE v_members END
    FROM keys k
    LEFT JOIN figures f ON f.grouping = k.grouping AND f.group_key = k.group_key
    LEFT JOIN population pop ON k.grouping = 'department' AND pop.department = k.group_key;

    -- The release decision, jointly for the month.
    PERFORM app_private.usage_release(p_tenant, p_month, v_min, ARRAY[false, false, false, false]);

    -- The practitioners' months (rule 9).
    INSERT INTO public.usage_practitioner_months (tenant_id, month, practitioner_id, held, minutes)
    SELECT p_tenant, p_month, x.practitioner, count(*) FILTER (WHERE x.held)::integer,
           coalesce(sum(x.minutes), 0)::bigint
    FROM app_private.usage_month_rows(p_tenant, v_start, v_end) x
    GROUP BY x.practitioner
    HAVING count(*) FILTER (WHERE x.held) > 0;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_freeze(uuid, date, timestamptz) FROM PUBLIC;

-- Freeze the platform's month once, as tenant zero's: every company's month first, then the
-- sums (rule 8). Every read of the companies' cells below excludes tenant zero.
CREATE FUNCTION app_private.platform_usage_freeze(p_month date, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    v_zero   constant uuid := '00000000-0000-0000-0000-000000000000';
    v_min    integer;
    v_force  boolean[] := ARRAY[false, false, false, false];
    v_tenant uuid;
    v_unsafe boolean;
    mi       integer;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('serein usage freeze'),
                                             pg_catalog.hashtext(v_zero::text || p_month::text));
    IF EXISTS (SELECT 1 FROM public.usage_months u WHERE u.tenant_id = v_zero AND u.month = p_month) THEN
        RETURN;
    END IF;
    IF p_month <> pg_catalog.date_trunc('month', p_month)::date
       OR (p_month + interval '1 month 1 day') AT TIME ZONE 'UTC' > least(p_now, pg_catalog.statement_timestamp()) THEN
        RAISE EXCEPTION 'month % is not closed for the platform', p_month USING ERRCODE = '22023';
    END IF;
    FOR v_tenant IN
        SELECT t.id FROM public.tenants t
        WHERE t.id <> v_zero AND t.managed_by <> 'platform' AND t.status <> 'offboarded'
          AND pg_catalog.date_trunc('month', t.created_at AT TIME ZONE t.time_zone)::date <= p_month
        ORDER BY t.id
    LOOP
        PERFORM app_private.usage_freeze(v_tenant, p_month, p_now);
    END LOOP;
    -- The strictest cohort of the companies that had consultations that month, at least 5.
    SELECT greatest(5, coalesce(max(u.min_cohort), 5)) INTO v_min
    FROM public.usage_months u
    JOIN public.usage_cells c ON c.tenant_id = u.tenant_id AND c.month = u.month
                             AND c.grouping = 'total' AND c.booked > 0
    WHERE u.month = p_month AND u.tenant_id <> v_zero;
    -- A platform total that would pin a company's hidden total (overview) is hidden.
    FOR mi IN 1 .. 4 LOOP
        SELECT NOT app_private.usage_hidden_safe(
                   coalesce(array_agg(x.value) FILTER (WHERE x.hidden IS NOT NULL), '{}'),
                   coalesce(array_agg(x.lo) FILTER (WHERE x.hidden IS NOT NULL), '{}'),
                   coalesce(array_agg(x.hi) FILTER (WHERE x.hidden IS NOT NULL), '{}'))
          INTO v_unsafe
        FROM (
            SELECT CASE mi WHEN 1 THEN c.booked WHEN 2 THEN c.held WHEN 3 THEN c.cancelled ELSE c.users END AS value,
                   CASE mi WHEN 1 THEN c.booked_hidden WHEN 2 THEN c.held_hidden
                           WHEN 3 THEN c.cancelled_hidden ELSE c.users_hidden END AS hidden,
                   b.lo, b.hi
            FROM public.usage_cells c
            JOIN public.usage_months u ON u.tenant_id = c.tenant_id AND u.month = c.month
            CROSS JOIN LATERAL app_private.usage_box(
                mi,
                CASE mi WHEN 1 THEN c.booked_hidden WHEN 2 THEN c.held_hidden
                        WHEN 3 THEN c.cancelled_hidden ELSE c.users_hidden END,
                CASE mi WHEN 1 THEN c.booked WHEN 2 THEN c.held WHEN 3 THEN c.cancelled ELSE c.users END,
                u.min_cohort, c.booked, c.booked_hidden,
                CASE mi WHEN 2 THEN c.cancelled WHEN 3 THEN c.held END,
                CASE mi WHEN 2 THEN c.cancelled_hidden WHEN 3 THEN c.held_hidden END) b
            WHERE c.month = p_month AND c.grouping = 'total' AND c.tenant_id <> v_zero
        ) x;
        v_force[mi] := v_unsafe;
    END LOOP;
    INSERT INTO public.usage_months (tenant_id, month, min_cohort, members, band, seats, frozen_at)
    SELECT v_zero, p_month, v_min, coalesce(sum(u.members), 0), greatest(v_min, 10),
           coalesce(sum(u.seats), 0), pg_catalog.statement_timestamp()
    FROM public.usage_months u WHERE u.month = p_month AND u.tenant_id <> v_zero;
    INSERT INTO public.usage_cells (tenant_id, month, grouping, group_key, booked, held, cancelled,
                                    minutes, users, held_users, cancelled_users, population)
    SELECT v_zero, p_month, k.grouping, k.group_key,
           coalesce(sum(c.booked), 0), coalesce(sum(c.held), 0), coalesce(sum(c.cancelled), 0),
           coalesce(sum(c.minutes), 0), coalesce(sum(c.users), 0), coalesce(sum(c.held_users), 0),
           coalesce(sum(c.cancelled_users), 0), coalesce(sum(c.population), 0)
    FROM (
        SELECT 'total' AS grouping, '' AS group_key
        UNION SELECT 'kind', k FROM unnest(ARRAY['video', 'audio', 'chat', 'in_person']) AS k
        UNION SELECT 'specialty', s FROM unnest(array_append(app.practitioner_specialties(), '')) AS s
        UNION SELECT c.grouping, c.group_key FROM public.usage_cells c
              WHERE c.month = p_month AND c.grouping = 'specialty' AND c.tenant_id <> v_zero
    ) k
    LEFT JOIN public.usage_cells c ON c.month = p_month AND c.tenant_id <> v_zero
                                  AND c.grouping = k.grouping AND c.group_key = k.group_key
    GROUP BY k.grouping, k.group_key;
    PERFORM app_private.usage_release(v_zero, p_month, v_min, v_force);
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_usage_freeze(date, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- HR's doors (granted). The caller: the person PROVEN by the session guard in this transaction,
-- holding hr or tenant_admin in an active, not ended membership of the request's company — a
-- claimed role (`app.roles`) is no proof, nor is `app.user_id`.

CREATE FUNCTION app_private.usage_hr_tenant() RETURNS uuid
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_me     uuid := app_private.proven_user();
BEGIN
    IF v_tenant IS NULL OR v_tenant = '00000000-0000-0000-0000-000000000000'::uuid OR v_me IS NULL
       OR NOT EXISTS (SELECT 1 FROM public.memberships m
                      WHERE m.tenant_id = v_tenant AND m.user_id = v_me AND m.status = 'active'
                        AND m.ended_at IS NULL AND m.roles && ARRAY['hr', 'tenant_admin']) THEN
        RAISE EXCEPTION 'hr or tenant admin only' USING ERRCODE = '42501';
    END IF;
    RETURN v_tenant;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_hr_tenant() FROM PUBLIC;

-- The company's reportable months: from its creation month to the last closed one (NULL when
-- none has closed yet).
CREATE FUNCTION app_private.usage_window(p_now timestamptz)
    RETURNS TABLE (first_month date, last_closed date)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app_private.usage_hr_tenant();
BEGIN
    RETURN QUERY
        SELECT x.first_month, CASE WHEN x.last_closed >= x.first_month THEN x.last_closed END
        FROM (SELECT pg_catalog.date_trunc('month', t.created_at AT TIME ZONE t.time_zone)::date AS first_month,
                     (pg_catalog.date_trunc('month', least(p_now, pg_catalog.statement_timestamp())
                                                     AT TIME ZONE t.time_zone)
                      - interval '1 month')::date AS last_closed
              FROM public.tenants t WHERE t.id = v_tenant) x;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_window(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.usage_window(timestamptz) TO serein_app;

-- Freeze the closed months p_from … p_to (at most 24) of the request's company not yet frozen.
-- Internal: the caller has checked the person.
CREATE FUNCTION app_private.usage_freeze_range(p_tenant uuid, p_from date, p_to date, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    v_first date;
    v_month date;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to
       OR p_to >= p_from + interval '24 months' THEN
        RAISE EXCEPTION 'a range of 1 to 24 months' USING ERRCODE = '22023';
    END IF;
    SELECT pg_catalog.date_trunc('month', t.created_at AT TIME ZONE t.time_zone)::date INTO v_first
    FROM public.tenants t WHERE t.id = p_tenant;
    FOR v_month IN
        SELECT m::date FROM generate_series(greatest(p_from, v_first), p_to, interval '1 month') AS m
    LOOP
        PERFORM app_private.usage_freeze(p_tenant, v_month, p_now);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_freeze_range(uuid, date, date, timestamptz) FROM PUBLIC;

-- The released cells of frozen months (a hidden figure is NULL; minutes follow held), of one
-- tenant (a company, or tenant zero: the platform), or of every company when p_tenant is NULL.
-- Internal: the one place where a frozen cell becomes what a reader gets.
CREATE FUNCTION app_private.usage_released(p_tenant uuid, p_from date, p_to date, p_grouping text)
    RETURNS TABLE (tenant_id uuid, month date, min_cohort integer, seats integer, members integer,
                   group_key text, booked integer, held integer, cancelled integer, minutes bigint,
                   users integer, booked_hidden text, held_hidden text, cancelled_hidden text,
                   users_hidden text)
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT c.tenant_id, c.month, u.min_cohort, u.seats, u.members, c.group_key,
           CASE WHEN c.booked_hidden IS NULL THEN c.booked END,
           CASE WHEN c.held_hidden IS NULL THEN c.held END,
           CASE WHEN c.cancelled_hidden IS NULL THEN c.cancelled END,
           CASE WHEN c.held_hidden IS NULL THEN c.minutes END,
           CASE WHEN c.users_hidden IS NULL THEN c.users END,
           c.booked_hidden, c.held_hidden, c.cancelled_hidden, c.users_hidden
    FROM public.usage_cells c
    JOIN public.usage_months u ON u.tenant_id = c.tenant_id AND u.month = c.month
    WHERE (c.tenant_id = p_tenant
           OR (p_tenant IS NULL AND c.tenant_id <> '00000000-0000-0000-0000-000000000000'::uuid))
      AND c.month BETWEEN p_from AND p_to AND c.grouping = p_grouping
$$;
REVOKE ALL ON FUNCTION app_private.usage_released(uuid, date, date, text) FROM PUBLIC;

-- HR's report: the released cells of the months p_from … p_to of one grouping ('total',
-- 'department', 'specialty', 'kind'), frozen first where needed. A hidden figure is NULL with
-- its reason; minutes follow held.
CREATE FUNCTION app_private.usage_report(p_from date, p_to date, p_grouping text, p_now timestamptz)
    RETURNS TABLE (month date, group_key text, booked integer, held integer, cancelled integer,
                   minutes bigint, users integer, booked_hidden text, held_hidden text,
                   cancelled_hidden text, users_hidden text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app_private.usage_hr_tenant();
BEGIN
    IF p_grouping NOT IN ('total', 'department', 'specialty', 'kind') THEN
        RAISE EXCEPTION 'unknown grouping' USING ERRCODE = '22023';
    END IF;
    PERFORM app_private.usage_freeze_range(v_tenant, p_from, p_to, p_now);
    RETURN QUERY
        SELECT r.month, r.group_key, r.booked, r.held, r.cancelled, r.minutes, r.users,
               r.booked_hidden, r.held_hidden, r.cancelled_hidden, r.users_hidden
        FROM app_private.usage_released(v_tenant, p_from, p_to, p_grouping) r
        ORDER BY r.month, r.group_key;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_report(date, date, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.usage_report(date, date, text, timestamptz) TO serein_app;

-- HR's month-level figures: the cohort the month was released under, the banded enrolment
-- and its rate over the seats (rule 7).
CREATE FUNCTION app_private.usage_report_months(p_from date, p_to date, p_now timestamptz)
    RETURNS TABLE (month date, min_cohort integer, enrolled_members integer,
                   enrolment_rate double precision, enrolment_hidden text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app_private.usage_hr_tenant();
BEGIN
    PERFORM app_private.usage_freeze_range(v_tenant, p_from, p_to, p_now);
    RETURN QUERY
        SELECT u.month, u.min_cohort,
               NULLIF((u.members / u.band) * u.band, 0),
               CASE WHEN u.members >= u.band AND u.seats > 0
                    THEN round(((u.members / u.band) * u.band)::numeric / u.seats, 3)::double precision END,
               CASE WHEN u.members < u.band THEN 'below_min_cohort' END
        FROM public.usage_months u
        WHERE u.tenant_id = v_tenant AND u.month BETWEEN p_from AND p_to
        ORDER BY u.month;
END
$$;
REVOKE ALL ON FUNCTION app_private.usage_report_months(date, date, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.usage_report_months(date, date, timestamptz) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- The platform's doors (granted): a PROVEN platform admin on the platform host
-- (`app.is_platform_admin()`), else 42501.

CREATE FUNCTION app_private.platform_usage_range(p_from date, p_to date, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = ''
    AS $$
DECLARE
    v_month date;
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to
       OR p_to >= p_from + interval '24 months' THEN
        RAISE EXCEPTION 'a range of 1 to 24 months' USING ERRCODE = '22023';
    END IF;
    FOR v_month IN SELECT m::date FROM generate_series(p_from, p_to, interval '1 month') AS m LOOP
        PERFORM app_private.platform_usage_freeze(v_month, p_now);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_usage_range(date, date, timestamptz) FROM PUBLIC;

-- Freeze the platform's months p_from … p_to (and every company's): an export commits this
-- first, so that nothing leaves before its release is final.
CREATE FUNCTION app_private.platform_usage_prepare(p_from date, p_to date, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.platform_usage_range(p_from, p_to, p_now);
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_usage_prepare(date, date, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.platform_usage_prepare(date, date, timestamptz) TO serein_app;

-- The last month closed for the platform (every company's month over).
CREATE FUNCTION app_private.platform_usage_window(p_now timestamptz)
    RETURNS date
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app.is_platform_admin() THEN
        RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
    END IF;
    RETURN (pg_catalog.date_trunc('month', (least(p_now, pg_catalog.statement_timestamp()) AT TIME ZONE 'UTC')
                                           - interval '1 day')
            - interval '1 month')::date;
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_usage_window(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.platform_usage_window(timestamptz) TO serein_app;

-- Platform-wide released cells of one grouping ('total', 'specialty', 'kind').
CREATE FUNCTION app_private.platform_usage_report(p_from date, p_to date, p_grouping text,
                                                  p_now timestamptz)
    RETURNS TABLE (month date, min_cohort integer, group_key text, booked integer, held integer,
                   cancelled integer, minutes bigint, users integer, booked_hidden text,
                   held_hidden text, cancelled_hidden text, users_hidden text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.platform_usage_range(p_from, p_to, p_now);
    IF p_grouping NOT IN ('total', 'specialty', 'kind') THEN
        RAISE EXCEPTION 'unknown grouping' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT r.month, r.min_cohort, r.group_key, r.booked, r.held, r.cancelled, r.minutes,
               r.users, r.booked_hidden, r.held_hidden, r.cancelled_hidden, r.users_hidden
        FROM app_private.usage_released('00000000-0000-0000-0000-000000000000'::uuid, p_from, p_to,
                                        p_grouping) r
        ORDER BY r.month, r.group_key;
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_usage_report(date, date, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.platform_usage_report(date, date, text, timestamptz) TO serein_app;

-- Per company and month: seats, enrolled members at the month's end (the platform sees its
-- companies' seat use exactly, as it does live), and the company's frozen month total as HR
-- sees it (hidden where HR's is).
CREATE FUNCTION app_private.platform_tenant_overview(p_from date, p_to date, p_now timestamptz)
    RETURNS TABLE (month date, tenant_id uuid, slug text, name text, min_cohort integer,
                   seats integer, members integer, booked integer, held integer, cancelled integer,
                   minutes bigint, users integer, booked_hidden text, held_hidden text,
                   cancelled_hidden text, users_hidden text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.platform_usage_range(p_from, p_to, p_now);
    RETURN QUERY
        SELECT r.month, t.id, t.slug, t.name, r.min_cohort, r.seats, r.members, r.booked, r.held,
               r.cancelled, r.minutes, r.users, r.booked_hidden, r.held_hidden,
               r.cancelled_hidden, r.users_hidden
        FROM app_private.usage_released(NULL, p_from, p_to, 'total') r
        JOIN public.tenants t ON t.id = r.tenant_id
        ORDER BY r.month, t.slug;
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_tenant_overview(date, date, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.platform_tenant_overview(date, date, timestamptz) TO serein_app;

-- Practitioner activity (rule 9): per practitioner, month and company, consultations held and
-- their minutes. No employee, ever.
CREATE FUNCTION app_private.platform_practitioner_activity(p_from date, p_to date, p_now timestamptz)
    RETURNS TABLE (month date, practitioner_id uuid, practitioner_name text, tenant_slug text,
                   tenant_name text, held integer, minutes bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.platform_usage_range(p_from, p_to, p_now);
    RETURN QUERY
        SELECT a.month, a.practitioner_id, coalesce(u.display_name, ''), t.slug, t.name, a.held, a.minutes
        FROM public.usage_practitioner_months a
        JOIN public.tenants t ON t.id = a.tenant_id
        LEFT JOIN public.users u ON u.id = a.practitioner_id
        WHERE a.month BETWEEN p_from AND p_to
        ORDER BY a.month, coalesce(u.display_name, ''), a.practitioner_id, t.slug;
END
$$;
REVOKE ALL ON FUNCTION app_private.platform_practitioner_activity(date, date, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.platform_practitioner_activity(date, date, timestamptz) TO serein_app;
