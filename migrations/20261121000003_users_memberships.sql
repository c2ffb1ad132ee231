-- users (global identity) and memberships (a person's roles in one tenant).
--
-- A practitioner serving three companies is one user with three memberships. A user row is
-- visible to a request only if it is the actor's own row or the user has a membership in the
-- request's tenant; so tenant A can never enumerate people who only belong to tenant B.
-- Credentials (password_hash) are not granted to the app role at all: authentication reads them
-- through SECURITY DEFINER functions in app_private.
CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1),
    display_name      text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    password_hash     text,
    email_verified_at timestamptz,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- Platform-level roles (today only 'platform_admin'); tenant roles live on memberships.
    platform_roles    text[] NOT NULL DEFAULT '{}' CHECK (platform_roles <@ ARRAY['platform_admin']::text[]),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roles       text[] NOT NULL
                CHECK (cardinality(roles) > 0
                       AND roles <@ ARRAY['tenant_admin', 'hr', 'practitioner', 'employee']::text[]),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    department  text CHECK (department IS NULL OR length(department) BETWEEN 1 AND 120),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memberships_tenant_user_key UNIQUE (tenant_id, user_id),
    -- Lets child tables reference (tenant_id, id) so a row can never point into another tenant.
    CONSTRAINT memberships_tenant_id_key UNIQUE (tenant_id, id)
);
-- Deliberately not led by tenant_id: it serves the user look-ups that cross tenants by design
-- (the `users_visible` policy's EXISTS, one person's memberships at login, ON DELETE CASCADE).
CREATE INDEX memberships_user_idx ON memberships (user_id);

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;

CREATE POLICY memberships_tenant_read ON memberships
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()));

-- Creating a membership attaches a global identity to this tenant, and makes that person's
-- user row visible here. So beyond the tenant check, only a tenant admin may do it, or the
-- person themself (accepting an invitation, self-sign-up); any other actor cannot attach an
-- arbitrary user id to read its e-mail.
CREATE POLICY memberships_create ON memberships
    FOR INSERT TO serein_app
    WITH CHECK (
        tenant_id = (SELECT app.current_tenant())
        AND (ARRAY['tenant_admin'] <@ (SELECT app.current_roles())
             OR user_id = (SELECT app.current_user_id()))
    );

CREATE POLICY memberships_tenant_update ON memberships
    FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));

CREATE POLICY memberships_tenant_delete ON memberships
    FOR DELETE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()));

GRANT SELECT, INSERT, DELETE ON memberships TO serein_app;
-- A membership never changes tenant or person: only these columns are updatable.
GRANT UPDATE (roles, status, department, updated_at) ON memberships TO serein_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

CREATE POLICY users_visible ON users
    FOR SELECT TO serein_app
    USING (
        id = (SELECT app.current_user_id())
        OR EXISTS (
            SELECT 1 FROM memberships m
            WHERE m.user_id = users.id AND m.tenant_id = (SELECT app.current_tenant())
        )
    );

CREATE POLICY users_self_update ON users
    FOR UPDATE TO serein_app
    USING (id = (SELECT app.current_user_id()))
    WITH CHECK (id = (SELECT app.current_user_id()));

GRANT SELECT (id, email, display_name, email_verified_at, status, platform_roles, created_at, updated_at)
    ON users TO serein_app;
GRANT UPDATE (display_name, updated_at) ON users TO serein_app;
