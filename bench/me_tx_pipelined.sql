-- pgbench -M prepared: as me_tx.sql, but BEGIN and the context statement (set_config +
-- session_guard) travel in ONE round trip, as the server sends them (3 round trips in all).
\set i random(1, 10000)
\set k 100000000000 + (:i - 1) / 10 + 1
\set u 100000000000 + :i
\startpipeline
BEGIN;
SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-' || :k, true), set_config('app.user_id', '00000000-0000-4000-a000-' || :u, true), set_config('app.roles', 'employee', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true), app_private.session_guard(('00000000-0000-4000-8000-' || :k)::uuid, ('00000000-0000-4000-a000-' || :u)::uuid, ('00000000-0000-4000-b000-' || :u)::uuid, (SELECT secret FROM bench_secrets WHERE i = :i), '{employee}', '2026-11-21T16:00:00.123456789Z');
\endpipeline
SELECT u.email, u.display_name, u.locale, u.email_verified_at IS NOT NULL AS "verified!", coalesce(app_private.own_totp_enabled(), false) AS "totp!", m.department AS "department?", m.status AS "status?" FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = ('00000000-0000-4000-8000-' || :k)::uuid WHERE u.id = ('00000000-0000-4000-a000-' || :u)::uuid;
COMMIT;
