-- pgbench: as profile_tx.sql, but BEGIN and the set_config travel in ONE round trip, as the
-- server sends them (3 round trips in all). `BEGIN \; SELECT ...` (a compound command) cannot
-- be used with -M prepared ("cannot insert multiple commands into a prepared statement"), so
-- the two statements are pipelined instead: one flush, one Sync, one wait.
\set k 100000000000 + random(1, 1000)
\startpipeline
BEGIN;
SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-' || :k, true), set_config('app.user_id', '', true), set_config('app.roles', '', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true);
\endpipeline
SELECT slug, name, locale, time_zone, branding, cardinality(allowed_email_domains) > 0 AS "self_signup!" FROM tenants WHERE id = ('00000000-0000-4000-8000-' || :k)::uuid;
COMMIT;
