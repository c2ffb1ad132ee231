-- Benchmark data: 1,000 tenants (t1..t1000) × 1,000 users/memberships each (1,000,000 of each).
--
-- Run as the superuser (bypasses RLS; session_replication_role = replica skips the FK triggers,
-- which is safe because every reference is built from the rows inserted here):
--   psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d serein_bench -f bench/seed.sql
--
-- Tenant ids are deterministic so that pgbench can rebuild them from n without a look-up:
--   id(t<n>) = '00000000-0000-4000-8000-' || (100000000000 + n)     (a valid v4-shaped UUID)
-- e.g. t1 → 00000000-0000-4000-8000-100000000001. User and membership ids are gen_random_uuid().
-- Re-running wipes and reloads tenants, users and memberships (bench database only!).
\set ON_ERROR_STOP on
\timing on

DO $$
BEGIN
    IF current_database() NOT LIKE '%bench%' THEN
        RAISE EXCEPTION 'refusing to seed database %: name must contain "bench"', current_database();
    END IF;
END
$$;

SET synchronous_commit = off;
SET session_replication_role = replica;   -- no FK triggers during the bulk load
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';

BEGIN;

TRUNCATE memberships, users, tenants CASCADE;

INSERT INTO tenants (id, slug, name, plan, status, locale, time_zone, allowance, min_cohort,
                     allowed_email_domains, web_origins, branding, managed_by)
SELECT ('00000000-0000-4000-8000-' || (100000000000 + n)::text)::uuid,
       't' || n,
       'Tenant ' || n || ' SA',
       (ARRAY['starter', 'standard', 'enterprise'])[1 + n % 3],
       'active',
       CASE WHEN n % 4 = 0 THEN 'fr' ELSE 'en' END,
       CASE WHEN n % 2 = 0 THEN 'Europe/Paris' ELSE 'UTC' END,
       6,
       5,
       CASE WHEN n % 5 = 0 THEN ARRAY['t' || n || '.bench.example'] ELSE '{}'::text[] END,
       ARRAY['https://t' || n || '.bench.example'],
       jsonb_build_object('primary_color', '#1f6feb', 'logo_url', 'https://cdn.bench.example/t' || n || '.svg'),
       'api'
FROM generate_series(1, 1000) AS n;

-- 1,000,000 users, user g belongs to tenant ((g - 1) / 1000) + 1.
CREATE TEMP TABLE seed_people ON COMMIT DROP AS
SELECT g, gen_random_uuid() AS user_id, gen_random_uuid() AS membership_id
FROM generate_series(1, 1000000) AS g;

INSERT INTO users (id, email, display_name, password_hash, email_verified_at, status, platform_roles)
SELECT user_id,
       'u' || g || '@t' || ((g - 1) / 1000 + 1) || '.bench.example',
       'User ' || g,
       NULL,
       now(),
       'active',
       '{}'::text[]
FROM seed_people;

INSERT INTO memberships (id, tenant_id, user_id, roles, status, department, enrolled_since)
SELECT membership_id,
       ('00000000-0000-4000-8000-' || (100000000000 + (g - 1) / 1000 + 1)::text)::uuid,
       user_id,
       CASE
           WHEN g % 1000 = 1 THEN ARRAY['tenant_admin']
           WHEN g % 1000 IN (2, 3) THEN ARRAY['hr']
           WHEN g % 50 = 4 THEN ARRAY['practitioner']
           ELSE ARRAY['employee']
       END,
       CASE WHEN g % 97 = 0 THEN 'disabled' ELSE 'active' END,
       (ARRAY['Engineering', 'Sales', 'Operations', 'Finance', 'People', NULL])[1 + g % 6],
       now()
FROM seed_people;

COMMIT;

RESET session_replication_role;
VACUUM (ANALYZE) tenants;
VACUUM (ANALYZE) users;
VACUUM (ANALYZE) memberships;

SELECT (SELECT count(*) FROM tenants) AS tenants,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM memberships) AS memberships;
