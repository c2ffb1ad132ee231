-- Bench data for the realtime gateway (issue 12, item 8), into a FRESH migrated database
-- (bench/ws.sh drops, recreates and migrates serein_bench_ws, then runs this as the superuser):
--   psql -X -v ON_ERROR_STOP=1 -v n_emp=10000 -v k=100 -d serein_bench_ws -f bench/ws_seed.sql
--
-- One company, w1 (host w1.localhost), Europe/Paris, message_retention_days 30 (the default).
-- Deterministic ids (hex digits only):
--   tenant          00000000-0000-4000-8000-000000000001
--   employee i      00000000-0000-4000-a000-<i, 12 digits>     i = 1..n_emp, one live session
--                   00000000-0000-4000-b000-<i> each (group e, tokens_e.txt line i): the
--                   sockets held in measurement a; employees 1..k are also the fan-out
--                   receivers of measurement b.
--   practitioner 0  00000000-0000-4000-c000-000000000000      (group p, tokens_p.txt): the
--                   fan-out sender; one confirmed chat consultation with each employee 1..k
--                   (employee j at now + j hours, 50 minutes: no double booking), booked a day
--                   ago, so every room is open (from booking until 30 days after the end).
--   practitioner 1  00000000-0000-4000-c000-000000000001      (group q, tokens_q.txt)
--   employee H      00000000-0000-4000-d000-000000000001      (group h, tokens_h.txt): the
--                   history measurement. Two consultations with practitioner 1: "hist" (ended
--                   an hour ago, still inside the window; bench/ws.sh posts its messages through
--                   the API, so they are sealed by the server) and "empty" (in 3 days, no
--                   message); 25 notifications (the unsealed list of the same shape).
--   sessions of the practitioners and of H: 00000000-0000-4000-e000-<n>.
-- bench_ws_sessions lists every session for the token minting; bench_ws_rooms lists the
-- fan-out rooms in receiver order.
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
VALUES (pg_temp.bid('00000000-0000-4000-8000-', 1), 'w1', 'Realtime bench SA', 'enterprise',
        'active', 'en', 'Europe/Paris', 100, 1000000, 'api');

-- Everyone: (i, grp, user id, session id, roles).
CREATE TEMP TABLE people ON COMMIT DROP AS
SELECT i, 'e' AS grp, pg_temp.bid('00000000-0000-4000-a000-', i) AS user_id,
       pg_temp.bid('00000000-0000-4000-b000-', i) AS session_id, 'employee' AS roles
FROM generate_series(1, :n_emp) AS i
UNION ALL
SELECT :n_emp + 1 + p, CASE p WHEN 0 THEN 'p' ELSE 'q' END,
       pg_temp.bid('00000000-0000-4000-c000-', p), pg_temp.bid('00000000-0000-4000-e000-', p),
       'practitioner'
FROM generate_series(0, 1) AS p
UNION ALL
SELECT :n_emp + 3, 'h', pg_temp.bid('00000000-0000-4000-d000-', 1),
       pg_temp.bid('00000000-0000-4000-e000-', 100), 'employee';

INSERT INTO users (id, email, display_name, email_verified_at, status)
SELECT user_id, grp || i || '@w1.ws.example', 'Person ' || i, now(), 'active'
FROM people;

INSERT INTO memberships (id, tenant_id, user_id, roles, status, created_at, updated_at, enrolled_since)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-8000-', 1), user_id, ARRAY[roles],
       'active', now(), now(), now()
FROM people;

-- secret_hash is set by the driver (the session secrets derive from the run's master key).
INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
SELECT session_id, pg_temp.bid('00000000-0000-4000-8000-', 1), user_id, now(),
       '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z'
FROM people;

-- What the driver mints tokens from (`tid`, not `tenant_id`: the server's start-up self-check
-- demands forced RLS of every table with a tenant_id column).
CREATE TABLE bench_ws_sessions AS
SELECT i, grp, 'w1' AS slug, pg_temp.bid('00000000-0000-4000-8000-', 1) AS tid, user_id,
       session_id, roles
FROM people;

-- Fan-out rooms: practitioner 0 with employees 1..k.
INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status, starts_at,
                           ends_at, room, counts_against_allowance, created_at, updated_at)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-8000-', 1),
       pg_temp.bid('00000000-0000-4000-a000-', j), pg_temp.bid('00000000-0000-4000-c000-', 0),
       'chat', 'confirmed', date_trunc('hour', now()) + make_interval(hours => j),
       date_trunc('hour', now()) + make_interval(hours => j, mins => 50), md5(j::text || 'ws'),
       true, now() - interval '1 day', now() - interval '1 day'
FROM generate_series(1, :k) AS j;

CREATE TABLE bench_ws_rooms AS
SELECT j, c.id AS consultation_id
FROM generate_series(1, :k) AS j
JOIN consultations c ON c.employee_id = pg_temp.bid('00000000-0000-4000-a000-', j)
                    AND c.practitioner_id = pg_temp.bid('00000000-0000-4000-c000-', 0);

-- H's two consultations with practitioner 1.
INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status, starts_at,
                           ends_at, room, counts_against_allowance, created_at, updated_at)
VALUES
    ('00000000-0000-4000-f000-000000000001', pg_temp.bid('00000000-0000-4000-8000-', 1),
     pg_temp.bid('00000000-0000-4000-d000-', 1), pg_temp.bid('00000000-0000-4000-c000-', 1),
     'chat', 'ended', now() - interval '2 hours', now() - interval '70 minutes',
     md5('hist'), true, now() - interval '3 days', now() - interval '70 minutes'),
    ('00000000-0000-4000-f000-000000000002', pg_temp.bid('00000000-0000-4000-8000-', 1),
     pg_temp.bid('00000000-0000-4000-d000-', 1), pg_temp.bid('00000000-0000-4000-c000-', 1),
     'chat', 'confirmed', now() + interval '3 days', now() + interval '3 days 50 minutes',
     md5('empty'), true, now() - interval '1 day', now() - interval '1 day');

-- H's notifications: 25, the unsealed list of the same shape as a history page.
INSERT INTO notifications (id, tenant_id, user_id, kind, consultation_id, starts_at, created_at)
SELECT gen_random_uuid(), pg_temp.bid('00000000-0000-4000-8000-', 1),
       pg_temp.bid('00000000-0000-4000-d000-', 1), 'consultation_reminder',
       '00000000-0000-4000-f000-000000000001', now() - interval '2 hours',
       now() - make_interval(mins => n)
FROM generate_series(1, 25) AS n;

COMMIT;

VACUUM (ANALYZE) tenants, users, memberships, sessions, consultations, notifications,
    bench_ws_sessions, bench_ws_rooms;

SELECT (SELECT count(*) FROM bench_ws_sessions) AS sessions,
       (SELECT count(*) FROM bench_ws_rooms) AS fanout_rooms,
       (SELECT count(*) FROM consultations) AS consultations,
       (SELECT count(*) FROM notifications) AS notifications;
