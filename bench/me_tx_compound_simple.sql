-- pgbench -M simple: the literal text GET /api/v1/auth/me sends. Line 1 is the server's first
-- message (`BEGIN; SET LOCAL …; SELECT app_private.session_guard(…)` as one simple Query, via
-- pgbench's `\;`) but for the guard's secret (read from bench_secrets, see me_tx.sql) and its
-- "now" (a fixed literal here); the SELECT differs in being unprepared (the server binds a
-- prepared statement), which costs PostgreSQL a parse+plan per transaction: a conservative
-- limit. bench/run.sh MODE=me checks this file against the captured statements before measuring.
\set i random(1, 10000)
\set k 100000000000 + (:i - 1) / 10 + 1
\set u 100000000000 + :i
BEGIN \; SET LOCAL role 'serein_app' \; SET LOCAL app.tenant_id = '00000000-0000-4000-8000-:k' \; SET LOCAL app.user_id = '00000000-0000-4000-a000-:u' \; SET LOCAL app.roles = 'employee' \; SET LOCAL statement_timeout = 15000 \; SET LOCAL idle_in_transaction_session_timeout = 60000 \; SELECT app_private.session_guard('00000000-0000-4000-8000-:k', '00000000-0000-4000-a000-:u', '00000000-0000-4000-b000-:u', (SELECT secret FROM bench_secrets WHERE i = :i), '{employee}', '2026-11-21T16:00:00.123456789Z');
SELECT u.email, u.display_name, u.locale, u.email_verified_at IS NOT NULL AS "verified!", coalesce(app_private.own_totp_enabled(), false) AS "totp!", m.department AS "department?", m.status AS "status?" FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = '00000000-0000-4000-8000-:k' WHERE u.id = '00000000-0000-4000-a000-:u';
COMMIT;
