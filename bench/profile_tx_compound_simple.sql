-- pgbench -M simple: the literal text the server sends. Line 1 is the server's first message
-- byte for byte (`BEGIN; SET LOCAL role …; SET LOCAL app.tenant_id = '<uuid>'; …` as one simple
-- Query, via pgbench's `\;`); the SELECT differs in being unprepared (the server binds a prepared
-- statement), which costs Postgres a parse+plan per transaction: a conservative limit.
\set k 100000000000 + random(1, 1000)
BEGIN \; SET LOCAL role 'serein_app' \; SET LOCAL app.tenant_id = '00000000-0000-4000-8000-:k' \; SET LOCAL app.user_id = '' \; SET LOCAL app.roles = '' \; SET LOCAL statement_timeout = 15000 \; SET LOCAL idle_in_transaction_session_timeout = 60000;
SELECT slug, name, locale, time_zone, branding, cardinality(allowed_email_domains) > 0 AS "self_signup!" FROM tenants WHERE id = '00000000-0000-4000-8000-:k';
COMMIT;
