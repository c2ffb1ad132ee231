-- pgbench -M simple: the literal text the server sends. Line 1 is the server's first message
-- byte for byte (`BEGIN; SELECT set_config(... literal uuid ...)` as one simple Query, via
-- pgbench's `\;`); the SELECT differs in being unprepared (the server binds a prepared
-- statement), which costs Postgres a parse+plan per transaction: a conservative limit.
\set k 100000000000 + random(1, 1000)
BEGIN \; SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-:k', true), set_config('app.user_id', '', true), set_config('app.roles', '', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true);
SELECT slug, name, locale, time_zone, branding, cardinality(allowed_email_domains) > 0 AS "self_signup!" FROM tenants WHERE id = '00000000-0000-4000-8000-:k';
COMMIT;
