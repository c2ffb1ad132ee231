-- Bench data for the authenticated paths (run AFTER bench/seed.sql, as the superuser):
--   psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d serein_bench -f bench/seed_me.sql
--
-- 1. Sessions for GET /api/v1/auth/me: 10 extra employees per tenant (10,000 in all, each with
--    an active `employee` membership) and one live session each (far-future expiry). The ids
--    are deterministic so that bench/mint_tokens.py and the pgbench scripts rebuild them from
--    one integer i in 1..10000 without a look-up (tenant n = (i - 1) / 10 + 1):
--      tenant  00000000-0000-4000-8000-<100000000000 + n>   (as in seed.sql)
--      user    00000000-0000-4000-a000-<100000000000 + i>   (me<i>@t<n>.bench.example)
--      session 00000000-0000-4000-b000-<100000000000 + i>
--    Sessions i in 10001..11000 are one tenant admin per tenant (tenant n = i - 10000, role
--    `tenant_admin`, TOTP enabled: the guard lets admin roles act only with TOTP on), for
--    GET /api/v1/members (bench/run.sh MODE=members); same id scheme.
-- 2. The platform tenant row (migration 0005 inserts it; seed.sql's TRUNCATE … CASCADE removes it).
-- 3. `bench_secrets (i, secret)`, filled per run by bench/run.sh: the guard demands each session's
--    secret (HKDF of the server's master key and the session id); run.sh derives them for the
--    run's master key with bench/mint_tokens.py --secrets, stores sha256(secret) in
--    sessions.secret_hash, and the pgbench twins read the secret from this table (by primary
--    key, inside the context statement, since pgbench cannot compute it).
--
-- Password hashes for the login benchmark are set separately (bench/run.sh MODE=login), from a
-- hash the server itself made.
-- Re-running replaces these rows (bench database only!).
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

INSERT INTO tenants (id, slug, name, plan, managed_by)
VALUES ('00000000-0000-0000-0000-000000000000', 'platform', 'Serein platform', 'enterprise', 'platform')
ON CONFLICT (id) DO NOTHING;

DELETE FROM sessions WHERE id::text LIKE '00000000-0000-4000-b000-%';
DELETE FROM memberships WHERE user_id::text LIKE '00000000-0000-4000-a000-%';
DELETE FROM users WHERE id::text LIKE '00000000-0000-4000-a000-%';

CREATE TEMP TABLE seed_me ON COMMIT DROP AS
SELECT i, n,
       ('00000000-0000-4000-8000-' || (100000000000 + n)::text)::uuid AS tenant_id,
       ('00000000-0000-4000-a000-' || (100000000000 + i)::text)::uuid AS user_id,
       ('00000000-0000-4000-b000-' || (100000000000 + i)::text)::uuid AS session_id,
       CASE WHEN i > 10000 THEN 'tenant_admin' ELSE 'employee' END AS role
FROM generate_series(1, 11000) AS i,
     LATERAL (SELECT CASE WHEN i > 10000 THEN i - 10000 ELSE (i - 1) / 10 + 1 END AS n) t;

INSERT INTO users (id, email, display_name, password_hash, email_verified_at, status, platform_roles,
                   totp_enabled_at)
SELECT user_id, 'me' || i || '@t' || n || '.bench.example', 'Session user ' || i, NULL, now(),
       'active', '{}'::text[], CASE WHEN role = 'tenant_admin' THEN now() END
FROM seed_me;

INSERT INTO memberships (id, tenant_id, user_id, roles, status, department, enrolled_since)
SELECT gen_random_uuid(), tenant_id, user_id, ARRAY[role], 'active',
       (ARRAY['Engineering', 'Sales', 'Operations', 'Finance', 'People', NULL])[1 + i % 6], now()
FROM seed_me;

INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
SELECT session_id, tenant_id, user_id, now(), '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z'
FROM seed_me;

CREATE TABLE IF NOT EXISTS bench_secrets (i int PRIMARY KEY, secret bytea NOT NULL);
GRANT SELECT ON bench_secrets TO serein_app;

COMMIT;

VACUUM (ANALYZE) users;
VACUUM (ANALYZE) memberships;
VACUUM (ANALYZE) sessions;

SELECT (SELECT count(*) FROM sessions WHERE id::text LIKE '00000000-0000-4000-b000-%') AS bench_sessions,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM memberships) AS memberships;
