-- Lists and search stay flat as a company grows (issue 10, item 8).
--
-- Measured before (bench/lists_probe.sh, 100,000 members against 1,000): a search of the
-- member list read every membership of the company and ran the `users_visible` policy on each
-- person (a correlated look-up per row) before testing `ILIKE '%…%'`, because no index serves
-- a substring match and, under row-level security, the planner may not use an index for a
-- condition whose operator is not LEAKPROOF (`~~*` is not, and only a superuser could mark it):
-- for the request role a search is a scan of every row the policy admits, by construction.
--
-- Rules of this migration:
-- * `pg_trgm` GIN indexes serve substring searches of e-mail and display name.
-- * The search runs where the index may be used: `app_private.member_search(pattern)`, a
--   SECURITY DEFINER that returns only the ids of memberships OF THE REQUEST'S COMPANY whose
--   person matches, and only to a tenant admin of a company — exactly the rows `users_visible`
--   and `memberships_read` already let that caller read (a tenant admin reads every membership
--   of the company and the identity of every member). Any other context gets no row, as the
--   policies would give it none. Who asks is never taken from an argument nor from `app.*`
--   alone: the person is `app_private.proven_user()` (proven by the session guard in this
--   transaction, bound to this company), and the tenant-admin role is read from that person's
--   own active membership, not from `app.roles`; the pattern only narrows. The caller then
--   reads the rows themselves under row-level security, as before.
-- * The definer also applies the list's filters, keyset and limit, so it hands back one page
--   of ids; planned per call (EXECUTE … USING), it picks the trigram indexes (rare terms) or
--   the company's memberships in id order until a page is full (common terms, short patterns).
--   Filtered lists without a search go through it too (`p_pattern` NULL): the same
--   conditions as parameters of a cached statement were estimated at a few rows and planned
--   as "read the whole company, then sort".
-- * `pg_trgm` is a trusted extension (PostgreSQL 13+): the migration owner creates it without
--   superuser, given CREATE on the database.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_display_name_trgm_idx ON users USING gin (display_name gin_trgm_ops);

-- One page of a filtered or searched member list: the ids of the memberships of the request's
-- company with the list's filters (`p_roles` overlap, `p_statuses`, ended or not), whose
-- person's e-mail or display name matches the ILIKE pattern `p_pattern` (escape `\`; NULL:
-- no text condition), after `p_after` in id order, at most `p_limit`. Tenant admins of a
-- company only; any other context gets no row. The arguments only narrow what a tenant admin
-- may already read. EXECUTE … USING plans each call with its values (a cached generic plan
-- cannot see the company's size or the limit, and sorted whole companies).
CREATE FUNCTION app_private.member_search(p_pattern text, p_roles text[], p_statuses text[],
                                          p_ended boolean, p_after uuid, p_limit integer)
    RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    ROWS 50
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user uuid := app_private.proven_user();
    v_filters constant text :=
        ' WHERE m.tenant_id = $1 AND m.id > $2'
        ' AND m.roles OPERATOR(pg_catalog.&&) $3 AND m.status OPERATOR(pg_catalog.=) ANY ($4)'
        ' AND (m.ended_at IS NOT NULL) = $5';
BEGIN
    IF v_tenant IS NULL OR v_user IS NULL
       OR v_tenant = '00000000-0000-0000-0000-000000000000'::uuid
       OR NOT (ARRAY['tenant_admin'] <@ app.current_roles())
       OR NOT EXISTS (SELECT 1 FROM public.memberships a
                      WHERE a.tenant_id = v_tenant AND a.user_id = v_user
                        AND a.status = 'active' AND a.ended_at IS NULL
                        AND 'tenant_admin' = ANY (a.roles)) THEN
        RETURN;
    END IF;
    IF p_pattern IS NULL THEN
        RETURN QUERY EXECUTE
            'SELECT m.id FROM public.memberships m' || v_filters
            || ' ORDER BY m.id LIMIT $6'
            USING v_tenant, p_after, p_roles, p_statuses, p_ended, p_limit;
    ELSE
        RETURN QUERY EXECUTE
            'SELECT m.id FROM public.memberships m JOIN public.users u ON u.id = m.user_id'
            || v_filters
            || ' AND (u.email OPERATOR(pg_catalog.~~*) pg_catalog.like_escape($6, ''\'')'
            || '      OR u.display_name OPERATOR(pg_catalog.~~*) pg_catalog.like_escape($6, ''\''))'
            || ' ORDER BY m.id LIMIT $7'
            USING v_tenant, p_after, p_roles, p_statuses, p_ended, p_pattern, p_limit;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.member_search(text, text[], text[], boolean, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.member_search(text, text[], text[], boolean, uuid, integer) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- The practitioner directory, ordered by (display_name, id). `practitioner_names()` returns
-- every practitioner of the company, so each page read and sorted all of them. This definer
-- returns ONE page of the same rows (id and display name of the active practitioners serving
-- the request's company, to a signed-in person of that company: the conditions of
-- `practitioner_names()`, made stricter — the reader must be proven by the session guard in
-- this transaction, `app.user_id` alone is not enough), with the directory's filters (which only narrow) and the
-- keyset, so the planner can walk `users_name_idx` in order and stop after a page, or read a
-- small company's practitioners and sort them, whichever is cheaper.
CREATE INDEX users_name_idx ON users (display_name, id);

CREATE FUNCTION app_private.practitioner_directory(p_specialties text[], p_language text,
                                                   p_after_name text, p_after_id uuid,
                                                   p_limit integer)
    RETURNS TABLE (id uuid, display_name text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    ROWS 50
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_tenant IS NULL OR app_private.proven_user() IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT u.id, u.display_name
         FROM public.users u
         JOIN public.memberships m ON m.user_id = u.id
         JOIN public.practitioner_profiles p ON p.user_id = u.id
         WHERE m.tenant_id = $1
           AND m.status = ''active'' AND ''practitioner'' OPERATOR(pg_catalog.=) ANY (m.roles)
           AND u.status = ''active''
           AND ($2 IS NULL OR p.specialties OPERATOR(pg_catalog.&&) $2)
           AND ($3 IS NULL OR $3 OPERATOR(pg_catalog.=) ANY (p.languages))
           AND (u.display_name, u.id) > ($4, $5)
         ORDER BY u.display_name, u.id
         LIMIT $6'
        USING v_tenant, p_specialties, p_language, p_after_name, p_after_id, p_limit;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_directory(text[], text, text, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_directory(text[], text, text, uuid, integer) TO serein_app;
