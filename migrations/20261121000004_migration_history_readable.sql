-- Readiness (`/health/ready`) checks that every migration the binary embeds has been applied.
-- It runs as the request role like everything else a request does, so that role may read the
-- migration history (versions and descriptions only; nothing personal).
GRANT SELECT ON _sqlx_migrations TO serein_app;
