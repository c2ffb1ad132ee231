-- Lists at scale (issue 10, item 8): one company of 1,000 members and one of 100,000, each
-- with as many pending invitations, two practitioner-heavy companies (1,000 and 100,000
-- active practitioners) and 100 filler companies of 1,000 members, so that nothing is alone
-- in its table and a plan that scans across tenants shows.
--
-- Run as the superuser on a database migrated with migrations/*.sql (bench/lists_probe.sh does
-- it all):   psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d serein_lists_bench -f bench/lists_seed.sql
--
-- Tenant ids are fixed: s1k = …0001, s100k = …0002, p1k = …0003, p100k = …0004, fillers …1xxx.
-- Membership and invitation ids are time-ordered (UUIDv7-shaped: created order = id order),
-- as the application makes them. Names are drawn from 40 first × 40 last names, so a first
-- name matches 1/40 of a company and a full e-mail matches one person.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

DO $$
BEGIN
    IF current_database() NOT LIKE '%bench%' THEN
        RAISE EXCEPTION 'refusing to seed database %: name must contain "bench"', current_database();
    END IF;
END
$$;

SET synchronous_commit = off;
SET session_replication_role = replica;   -- no FK or guard triggers during the bulk load
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';

BEGIN;
TRUNCATE invitations, practitioner_profiles, memberships, users, tenants CASCADE;

-- A UUIDv7-shaped id from a sequence number: 48-bit "time" then random bits.
CREATE FUNCTION pg_temp.v7(n bigint) RETURNS uuid LANGUAGE sql AS $$
    SELECT (lpad(to_hex(1700000000000 + n), 12, '0') || '7' || substr(md5(n::text), 1, 3)
            || '8' || substr(md5(n::text), 4, 15))::uuid
$$;

CREATE TEMP TABLE co (n int, id uuid, slug text, members int, practitioners int) ON COMMIT DROP;
INSERT INTO co VALUES
    (1, '00000000-0000-4000-8000-000000000001', 's1k', 1000, 0),
    (2, '00000000-0000-4000-8000-000000000002', 's100k', 100000, 0),
    (3, '00000000-0000-4000-8000-000000000003', 'p1k', 10, 1000),
    (4, '00000000-0000-4000-8000-000000000004', 'p100k', 10, 100000);
INSERT INTO co
SELECT 1000 + k, ('00000000-0000-4000-8000-00000000' || (1000 + k))::uuid, 'f' || k, 1000, 0
FROM generate_series(1, 100) k;

INSERT INTO tenants (id, slug, name, plan, status, seats, managed_by)
SELECT id, slug, 'Company ' || slug, 'enterprise', 'active', 1000000, 'api' FROM co;

CREATE TEMP TABLE firsts AS
SELECT row_number() OVER () - 1 AS i, f FROM unnest(ARRAY[
    'Alice','Bruno','Chloe','David','Emma','Farid','Gaelle','Hugo','Ines','Jules',
    'Karim','Lea','Marc','Nora','Oscar','Paula','Quentin','Rose','Samir','Theo',
    'Ursula','Victor','Wendy','Xavier','Yasmine','Zoe','Adrien','Benoit','Camille','Diane',
    'Elise','Fabien','Gilles','Helene','Ivan','Jeanne','Kevin','Lucie','Mathis','Nadia']) f;
CREATE TEMP TABLE lasts AS
SELECT row_number() OVER () - 1 AS i, l FROM unnest(ARRAY[
    'Martin','Bernard','Dubois','Thomas','Robert','Richard','Petit','Durand','Leroy','Moreau',
    'Simon','Laurent','Lefebvre','Michel','Garcia','David','Bertrand','Roux','Vincent','Fournier',
    'Morel','Girard','Andre','Lefevre','Mercier','Dupont','Lambert','Bonnet','Francois','Martinez',
    'Legrand','Garnier','Faure','Rousseau','Blanc','Guerin','Muller','Henry','Roussel','Nicolas']) l;

-- Company people: one user and one membership each; the first of each company is its admin.
CREATE TEMP TABLE people ON COMMIT DROP AS
SELECT co.n AS co, co.id AS tenant_id, co.slug, g, row_number() OVER (ORDER BY co.n, g) AS seq,
       gen_random_uuid() AS user_id
FROM co, generate_series(1, co.members) g;

INSERT INTO users (id, email, display_name, status, email_verified_at)
SELECT p.user_id, lower(f.f || '.' || l.l || '.' || p.g) || '@' || p.slug || '.example',
       f.f || ' ' || l.l, 'active', now()
FROM people p
JOIN firsts f ON f.i = p.g % 40
JOIN lasts l ON l.i = (p.g / 40) % 40;

INSERT INTO memberships (id, tenant_id, user_id, roles, status, department, created_at,
                         updated_at, enrolled_since, ended_at)
SELECT pg_temp.v7(p.seq), p.tenant_id, p.user_id,
       CASE WHEN p.g = 1 THEN ARRAY['tenant_admin'] WHEN p.g % 50 = 2 THEN ARRAY['hr']
            ELSE ARRAY['employee'] END,
       CASE WHEN p.g % 97 = 0 OR p.g % 89 = 0 THEN 'disabled' ELSE 'active' END,
       (ARRAY['Engineering', 'Sales', 'Operations', 'Finance', 'People', NULL])[1 + p.g % 6],
       now(), now(), now(),
       CASE WHEN p.g % 89 = 0 THEN now() END
FROM people p;

-- Practitioners: 100,000 identities with profiles; p100k has them all, p1k the first 1,000.
CREATE TEMP TABLE pracs ON COMMIT DROP AS
SELECT g, gen_random_uuid() AS user_id FROM generate_series(1, 100000) g;
INSERT INTO users (id, email, display_name, status, email_verified_at)
SELECT p.user_id, 'dr.' || lower(l.l) || '.' || p.g || '@practice.example',
       'Dr ' || f.f || ' ' || l.l, 'active', now()
FROM pracs p
JOIN firsts f ON f.i = p.g % 40
JOIN lasts l ON l.i = (p.g / 40) % 40;
INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, verified_at,
                                   created_at, updated_at)
SELECT user_id,
       CASE g % 4 WHEN 0 THEN ARRAY['anxiety'] WHEN 1 THEN ARRAY['stress', 'sleep']
                  WHEN 2 THEN ARRAY['burnout'] ELSE ARRAY['grief'] END,
       CASE g % 3 WHEN 0 THEN ARRAY['en'] WHEN 1 THEN ARRAY['fr'] ELSE ARRAY['en', 'fr'] END,
       (ARRAY['Helps with stress at work and sleep.', 'Cognitive behavioural therapy for anxiety.',
              'Coach for burnout and return to work.', 'Listens through grief and loss.'])[1 + g % 4],
       CASE WHEN g % 3 = 0 THEN NULL ELSE now() END,
       now(), now()
FROM pracs;
INSERT INTO memberships (id, tenant_id, user_id, roles, status, created_at, updated_at,
                         enrolled_since)
SELECT pg_temp.v7(1000000 + c.n * 200000 + p.g), c.id, p.user_id, ARRAY['practitioner'],
       'active', now(), now(), now()
FROM co c JOIN pracs p ON p.g <= c.practitioners
WHERE c.practitioners > 0;

-- Pending invitations: as many as members in s1k and s100k (and in every filler).
INSERT INTO invitations (id, tenant_id, email, roles, token_hash, created_at, updated_at,
                         expires_at)
SELECT pg_temp.v7(5000000 + p.seq), p.tenant_id,
       'invitee.' || p.g || '@' || p.slug || '.example', ARRAY['employee'],
       sha256(p.seq::text::bytea), now(), now(), now() + interval '7 days'
FROM people p;
COMMIT;

RESET session_replication_role;
VACUUM (ANALYZE) tenants, users, memberships, invitations, practitioner_profiles;
SELECT t.slug, count(*) AS memberships
FROM memberships m JOIN tenants t ON t.id = m.tenant_id
WHERE t.slug IN ('s1k', 's100k', 'p1k', 'p100k') GROUP BY 1 ORDER BY 2;
