-- tenants: the companies. A global table (no tenant_id): a tenant sees its own row only.
--
-- The slug is the DNS label of the tenant host ({slug}.{BASE_DOMAIN}); it is unique platform-wide by
-- nature. `managed_by` records where the desired state lives: 'file' rows are owned by
-- `serein tenants apply tenants/` (which suspends file-managed tenants whose file disappeared),
-- 'api' rows by the platform API; apply never touches 'api' rows.
CREATE TABLE tenants (
    id                    uuid PRIMARY KEY,
    slug                  text NOT NULL UNIQUE
                          CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan                  text NOT NULL CHECK (plan IN ('starter', 'standard', 'enterprise')),
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    locale                text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'fr')),
    time_zone             text NOT NULL DEFAULT 'UTC',
    -- Consultations per employee per calendar year (enforced by scheduling).
    allowance             integer NOT NULL DEFAULT 6 CHECK (allowance BETWEEN 0 AND 100),
    -- Smallest cell an HR report may show (DESIGN §7).
    min_cohort            integer NOT NULL DEFAULT 5 CHECK (min_cohort BETWEEN 3 AND 1000),
    allowed_email_domains text[] NOT NULL DEFAULT '{}',
    web_origins           text[] NOT NULL DEFAULT '{}',
    branding              jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(branding) = 'object'),
    managed_by            text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('file', 'api')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;

-- A request sees the row of its own tenant and nothing else.
CREATE POLICY tenants_self_read ON tenants
    FOR SELECT TO serein_app
    USING (id = (SELECT app.current_tenant()));

GRANT SELECT ON tenants TO serein_app;

-- Host resolution happens before any tenant context exists, so it goes through this definer
-- function: it answers for one slug, returns only what routing needs, and nothing else. It runs
-- as the role that ran the migrations (the owner: serein_owner, BYPASSRLS, in production; the
-- superuser of DATABASE_URL in development), which is why it must stay this small.
CREATE OR REPLACE FUNCTION app_private.resolve_tenant(p_slug text)
    RETURNS TABLE (id uuid, status text, web_origins text[])
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT t.id, t.status, t.web_origins FROM public.tenants t WHERE t.slug = p_slug
    $$;
REVOKE ALL ON FUNCTION app_private.resolve_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.resolve_tenant(text) TO serein_app;
