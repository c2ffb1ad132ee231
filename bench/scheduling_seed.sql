-- Bench data for scheduling (issue 11, item 13), into a FRESH migrated database
-- (bench/scheduling.sh drops, recreates and migrates serein_bench_sched, then runs this as the
-- superuser):
--   psql -X -v ON_ERROR_STOP=1 -v anchor='2026-12-07T00:00:00Z' -d serein_bench_sched \
--        -f bench/scheduling_seed.sql
-- `anchor` (a UTC midnight, in the future) starts the 62-day range of the slots measurement.
--
-- Companies t1..t5 (hosts t<n>.localhost), Europe/Paris, allowance 100 (the column's maximum)
-- per employee and year.
--
-- Deterministic ids (hex digits only, so that the driver rebuilds them from an integer):
--   tenant        00000000-0000-4000-8000-<n, 12 digits>            n = 1..5
--   employee i    00000000-0000-4000-a000-<i, 12 digits>            i = 1..1250
--   session i     00000000-0000-4000-b000-<i, 12 digits>            (one live session each)
--   practitioner  00000000-0000-4000-c000-<p, 12 digits>            p = 0..101
--
-- Employees, by measurement:
--   i =    1..50    group a: 10 per company t1..t5 (tenant (i - 1) % 5 + 1). They hold the
--                   500 bookings of practitioner 0 and read its slots (tokens_a.txt).
--   i =   51..1050  group b: e = i - 51 = 0..999, company t1 when e is even, t2 when odd
--                   (tokens_b.txt, line e + 1): booking throughput.
--   i = 1051..1250  group c: c = i - 1051 = 0..199, t1 when c is even, t2 when odd
--                   (tokens_c.txt, line c + 1): contention on one slot.
-- Practitioners (auto-confirm, profile, schedule in Europe/Paris, in every listed directory):
--   p = 0           serves t1..t5; 20 weekly rules (below); 500 active bookings in
--                   [anchor, anchor + 62 days) from group a (all five companies), plus 300
--                   ended ones before the anchor and 100 cancelled ones inside the range.
--   p = 1..100      serve t1 and t2; open 24/7 (one 00:00-24:00 rule per weekday, 15-minute
--                   sessions back to back, no notice, 365-day horizon): throughput.
--   p = 101         serves t1 and t2; 24/7 like p 1..100, 60-minute sessions: contention.
\set ON_ERROR_STOP on

DO $$
BEGIN
    IF current_database() NOT LIKE '%bench%' THEN
        RAISE EXCEPTION 'refusing to seed database %: name must contain "bench"', current_database();
    END IF;
END
$$;

SET synchronous_commit = off;

BEGIN;

CREATE FUNCTION pg_temp.bid(prefix text, n bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE AS $$ SELECT (prefix || lpad(n::text, 12, '0'))::uuid $$;

INSERT INTO tenants (id, slug, name, plan, status, locale, time_zone, allowance, seats, managed_by)
SELECT pg_temp.bid('00000000-0000-4000-8000-', n), 't' || n, 'Sched bench ' || n || ' SA',
       'enterprise', 'active', 'en', 'Europe/Paris', 100, 5000, 'api'
FROM generate_series(1, 5) AS n;

CREATE TEMP TABLE emp ON COMMIT DROP AS
SELECT i,
       CASE WHEN i <= 50 THEN 'a' WHEN i <= 1050 THEN 'b' ELSE 'c' END AS grp,
       CASE WHEN i <= 50 THEN (i - 1) % 5 + 1
            WHEN i <= 1050 THEN 1 + (i - 51) % 2
            ELSE 1 + (i - 1051) % 2 END AS n
FROM generate_series(1, 1250) AS i;

INSERT INTO users (id, email, display_name, email_verified_at, status)
SELECT pg_temp.bid('00000000-0000-4000-a000-', i), 'e' || i || '@t' || n || '.sched.example',
       'Employee ' || i, now(), 'active'
FROM emp;

INSERT INTO memberships (id, tenant_id, user_id, roles, status, created_at, updated_at, enrolled_since)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-8000-', n),
       pg_temp.bid('00000000-0000-4000-a000-', i), ARRAY['employee'], 'active', now(), now(), now()
FROM emp;

-- secret_hash is set by the driver (the session secrets derive from the run's master key).
INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
SELECT pg_temp.bid('00000000-0000-4000-b000-', i), pg_temp.bid('00000000-0000-4000-8000-', n),
       pg_temp.bid('00000000-0000-4000-a000-', i), now(), '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z'
FROM emp;

-- What the driver mints tokens from: one row per session (`tid`, not `tenant_id`: the server's
-- start-up self-check demands forced RLS of every table with a tenant_id column).
CREATE TABLE bench_sched_sessions AS
SELECT i, grp, 't' || n AS slug, pg_temp.bid('00000000-0000-4000-8000-', n) AS tid,
       pg_temp.bid('00000000-0000-4000-a000-', i) AS user_id,
       pg_temp.bid('00000000-0000-4000-b000-', i) AS session_id
FROM emp;

-- Practitioners: identity, profile, schedule, memberships (the directory triggers fill
-- practitioner_directory_entries from these).
INSERT INTO users (id, email, display_name, email_verified_at, status)
SELECT pg_temp.bid('00000000-0000-4000-c000-', p), 'dr' || p || '@practice.example',
       'Dr Bench ' || p, now(), 'active'
FROM generate_series(0, 101) AS p;
INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, verified_at, created_at, updated_at)
SELECT pg_temp.bid('00000000-0000-4000-c000-', p), ARRAY['stress', 'sleep'], ARRAY['en', 'fr'],
       'Helps with stress at work and sleep.', now(), now(), now()
FROM generate_series(0, 101) AS p;
INSERT INTO practitioner_schedules (user_id, time_zone, auto_confirm, created_at, updated_at)
SELECT pg_temp.bid('00000000-0000-4000-c000-', p), 'Europe/Paris', true, now(), now()
FROM generate_series(0, 101) AS p;
INSERT INTO memberships (id, tenant_id, user_id, roles, status, created_at, updated_at, enrolled_since)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-8000-', n),
       pg_temp.bid('00000000-0000-4000-c000-', p), ARRAY['practitioner'], 'active', now(), now(), now()
FROM generate_series(0, 101) AS p, generate_series(1, 5) AS n
WHERE p = 0 OR n <= 2;

-- Practitioner 0: 20 weekly rules, Europe/Paris, varied lengths, steps, buffers, notice.
INSERT INTO availability_rules (id, practitioner_id, weekday, start_time, end_time, lengths,
                                step_minutes, buffer_before, buffer_after, min_notice_minutes,
                                horizon_days, kinds, created_at, updated_at)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-c000-', 0), r.weekday, r.s::time, r.e::time,
       r.lengths::smallint[], r.step, r.bb, r.ba, r.notice, r.horizon, r.kinds::text[], now(), now()
FROM (
    -- Monday to Friday: morning, afternoon, evening (15 rules)
    SELECT d AS weekday, '08:00' AS s, '12:00' AS e, '{50}' AS lengths, NULL::smallint AS step,
           0::smallint AS bb, 10::smallint AS ba, 720 AS notice, 90::smallint AS horizon,
           '{video,audio}' AS kinds
    FROM generate_series(1, 5) AS d
    UNION ALL
    SELECT d, '13:00', '17:00', '{30,60}', 30, 5, 5, 1440, 90, '{video,audio,chat}'
    FROM generate_series(1, 5) AS d
    UNION ALL
    SELECT d, '18:00', '20:00', '{45,90}', 15, 0, 15, 240, 60, '{video}'
    FROM generate_series(1, 5) AS d
    -- Tuesday and Thursday late: short chat sessions (2 rules)
    UNION ALL
    SELECT d, '20:30', '22:00', '{15,30}', 15, 0, 0, 120, 30, '{chat}'
    FROM unnest(ARRAY[2, 4]) AS d
    -- Saturday: in person in the morning, video in the afternoon; Sunday: a short morning (3)
    UNION ALL SELECT 6, '09:00', '12:00', '{60}', NULL, 0, 0, 1440, 90, '{in_person,video}'
    UNION ALL SELECT 6, '14:00', '18:00', '{50}', 60, 10, 0, 1440, 90, '{video}'
    UNION ALL SELECT 7, '10:00', '13:00', '{30}', NULL, 0, 0, 2880, 45, '{chat,audio}'
) r;

-- Practitioners 1..101: 24/7.
INSERT INTO availability_rules (id, practitioner_id, weekday, start_time, end_time, lengths,
                                step_minutes, buffer_before, buffer_after, min_notice_minutes,
                                horizon_days, kinds, created_at, updated_at)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-c000-', p), d, '00:00', '23:59:59.999999',
       CASE WHEN p = 101 THEN ARRAY[60]::smallint[] ELSE ARRAY[15]::smallint[] END,
       NULL, 0, 0, 0, 365, ARRAY['video', 'audio', 'chat'], now(), now()
FROM generate_series(1, 101) AS p, generate_series(1, 7) AS d;

-- Practitioner 0's bookings. Candidates: every local hour 08..11, 13..16, 18..19 of each day of
-- the range (Paris time, 50 minutes: they never overlap one another), 500 of them chosen by a
-- fixed hash, booked by the 50 employees of group a in turn (five companies). Then 100
-- cancelled ones on other candidates (not busy), and 300 ended ones in the 62 days before.
CREATE TEMP TABLE cand ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY md5(t::text)) AS k, t
FROM (
    SELECT ((day + make_interval(hours => h))::timestamp AT TIME ZONE 'Europe/Paris') AS t
    FROM generate_series(((:'anchor')::timestamptz AT TIME ZONE 'Europe/Paris')::date,
                         ((:'anchor')::timestamptz AT TIME ZONE 'Europe/Paris')::date + 62, interval '1 day') AS day,
         unnest(ARRAY[8, 9, 10, 11, 13, 14, 15, 16, 18, 19]) AS h
) c
WHERE t >= (:'anchor')::timestamptz AND t + interval '50 minutes' <= (:'anchor')::timestamptz + interval '62 days';

DO $$
BEGIN
    IF (SELECT count(*) FROM cand) < 600 THEN
        RAISE EXCEPTION 'only % candidate hours in the range', (SELECT count(*) FROM cand);
    END IF;
END
$$;

INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status, starts_at,
                           ends_at, room, cancelled_by, cancel_reason, counts_against_allowance,
                           created_at, updated_at)
SELECT gen_random_uuid(), e.tid, e.user_id, pg_temp.bid('00000000-0000-4000-c000-', 0),
       (ARRAY['video', 'audio', 'chat'])[1 + b.k % 3],
       CASE WHEN b.k > 500 THEN 'cancelled' WHEN b.k % 10 = 0 THEN 'requested' ELSE 'confirmed' END,
       b.t, b.t + interval '50 minutes', md5(b.k::text || 'room'),
       CASE WHEN b.k > 500 THEN e.user_id END, CASE WHEN b.k > 500 THEN 'unwell' END,
       b.k <= 500, now(), now()
FROM cand b
JOIN bench_sched_sessions e ON e.i = 1 + (b.k - 1) % 50
WHERE b.k <= 600;

INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status, starts_at,
                           ends_at, room, created_at, updated_at)
SELECT gen_random_uuid(), e.tid, e.user_id, pg_temp.bid('00000000-0000-4000-c000-', 0),
       'video', 'ended', b.t - interval '62 days', b.t - interval '62 days' + interval '50 minutes',
       md5(b.k::text || 'past'), now(), now()
FROM cand b
JOIN bench_sched_sessions e ON e.i = 1 + (b.k - 1) % 50
WHERE b.k > 600 AND b.k <= 900;

COMMIT;

VACUUM (ANALYZE) tenants, users, memberships, sessions, practitioner_profiles, practitioner_schedules,
    availability_rules, consultations, practitioner_directory_entries, bench_sched_sessions;

SELECT (SELECT count(*) FROM bench_sched_sessions) AS sessions,
       (SELECT count(*) FROM practitioner_directory_entries) AS directory_entries,
       (SELECT count(*) FROM availability_rules
        WHERE practitioner_id = '00000000-0000-4000-c000-000000000000') AS p0_rules,
       (SELECT count(*) FROM consultations
        WHERE practitioner_id = '00000000-0000-4000-c000-000000000000'
          AND status IN ('requested', 'confirmed', 'started')
          AND period && tstzrange((:'anchor')::timestamptz, (:'anchor')::timestamptz + interval '62 days')) AS p0_active_in_range,
       (SELECT count(DISTINCT tenant_id) FROM consultations
        WHERE practitioner_id = '00000000-0000-4000-c000-000000000000') AS p0_booking_companies;
