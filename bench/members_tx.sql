-- pgbench -M prepared: the transaction GET /api/v1/members?limit=20 runs for a tenant admin, as
-- 4 statements / 4 round trips (the context as DESIGN §2 writes it, with the guard). Tenant n
-- (random, 1..1000) and its admin's session i = 10000 + n (bench/seed_me.sql). The list SELECT
-- is the server's text with its parameters: $1 the tenant; $2..$5 (cursor, role, status,
-- search) are NULL for a first page without filters, which pgbench cannot bind, so each is
-- `(CASE WHEN :z = 0 THEN NULL END)::<type>`, a parameter expression that folds to NULL exactly
-- where the server's NULL parameter would (custom plans) and not otherwise (generic plans);
-- $6 is the fetch limit (20 + 1). The guard's secret comes from bench_secrets (see me_tx.sql).
\set n random(1, 1000)
\set k 100000000000 + :n
\set u 100000010000 + :n
\set i 10000 + :n
\set z 0
\set lim 21
BEGIN;
SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-' || :k, true), set_config('app.user_id', '00000000-0000-4000-a000-' || :u, true), set_config('app.roles', 'tenant_admin', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true), app_private.session_guard(('00000000-0000-4000-8000-' || :k)::uuid, ('00000000-0000-4000-a000-' || :u)::uuid, ('00000000-0000-4000-b000-' || :u)::uuid, (SELECT secret FROM bench_secrets WHERE i = :i), '{tenant_admin}', '2026-11-21T16:00:00.123456789Z');
SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at, m.department, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ('00000000-0000-4000-8000-' || :k)::uuid AND ((CASE WHEN :z = 0 THEN NULL END)::uuid IS NULL OR m.id > (CASE WHEN :z = 0 THEN NULL END)::uuid) AND ((CASE WHEN :z = 0 THEN NULL END)::text IS NULL OR (CASE WHEN :z = 0 THEN NULL END)::text = ANY (m.roles)) AND CASE (CASE WHEN :z = 0 THEN NULL END)::text WHEN 'active' THEN m.status = 'active' WHEN 'disabled' THEN m.status = 'disabled' AND m.ended_at IS NULL WHEN 'ended' THEN m.ended_at IS NOT NULL ELSE m.ended_at IS NULL END AND ((CASE WHEN :z = 0 THEN NULL END)::text IS NULL OR u.email ILIKE (CASE WHEN :z = 0 THEN NULL END)::text ESCAPE '\' OR u.display_name ILIKE (CASE WHEN :z = 0 THEN NULL END)::text ESCAPE '\') ORDER BY m.id LIMIT :lim;
COMMIT;
