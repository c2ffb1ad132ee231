-- pgbench: the transaction GET /api/v1/tenant/profile runs, as 4 statements / 4 round trips.
-- pgbench -M prepared turns every :k into a bind parameter and cannot substitute inside a
-- quoted literal, so the tenant uuid literal the server sends is rebuilt from k in SQL:
-- tenant t<n> has id '00000000-0000-4000-8000-' || (100000000000 + n) (see bench/seed.sql).
\set k 100000000000 + random(1, 1000)
BEGIN;
SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-' || :k, true), set_config('app.user_id', '', true), set_config('app.roles', '', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true);
SELECT slug, name, locale, time_zone, branding, cardinality(allowed_email_domains) > 0 AS "self_signup!" FROM tenants WHERE id = ('00000000-0000-4000-8000-' || :k)::uuid;
COMMIT;
