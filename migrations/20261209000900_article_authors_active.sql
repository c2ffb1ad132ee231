-- A published article is shown only while its author practises (review of issue 13, item 5).
--
-- Threat closed: an article's visibility depended on its status alone. A practitioner whose
-- every assignment ended, or whose account was disabled (struck off, left, rogue), kept their
-- articles — text, links, images, and a display name of their choosing — in front of every
-- company's employees, and could no longer withdraw them (writes need an active practitioner
-- membership in the request's company).
-- Now a published article (and, through `file_open` rule d, its images) is shown to readers
-- only while its author is an active person with an active practitioner membership in an
-- active company; the author still sees their own. Reinstated, the articles come back as they
-- were. (A platform-admin takedown of one article is not built yet: stated in the issue note.)

-- Is p_author an active person practising in at least one active company? A definer: readers
-- may not see the author's memberships in other companies; the answer is one boolean.
CREATE FUNCTION app_private.article_author_active(p_author uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1
        FROM public.users u
        JOIN public.memberships m ON m.user_id = u.id
        JOIN public.tenants t ON t.id = m.tenant_id
        WHERE u.id = p_author AND u.status = 'active'
          AND m.status = 'active' AND m.ended_at IS NULL AND 'practitioner' = ANY (m.roles)
          AND t.status = 'active');
END
$$;
REVOKE ALL ON FUNCTION app_private.article_author_active(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.article_author_active(uuid) TO serein_app;

DROP POLICY articles_read ON articles;
CREATE POLICY articles_read ON articles
    FOR SELECT TO serein_app
    USING ((status = 'published' AND (SELECT app_private.proven_person()) IS NOT NULL
            AND app_private.article_author_active(author_id))
           OR author_id = (SELECT app_private.proven_person()));

-- `file_open` of migration 20261209000500, rule (d) now also asks that the author practises.
CREATE OR REPLACE FUNCTION app_private.file_open(p_id uuid)
    RETURNS TABLE (tenant_id uuid, id uuid, owner_id uuid, purpose text, content_type text,
                   size_bytes bigint, sha256 bytea, storage_key text, file_name text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR p_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT f.tenant_id, f.id, f.owner_id, f.purpose, f.content_type, f.size_bytes, f.sha256,
               f.storage_key, f.file_name
        FROM public.files f
        WHERE f.id = p_id AND f.deleted_at IS NULL
          AND (
            -- (a) one's own, in this company
            (f.tenant_id = v_tenant AND f.owner_id = v_me)
            -- (b) the current avatar of oneself or of an active member of this company
            OR (f.purpose = 'avatar'
                AND EXISTS (SELECT 1 FROM public.users u
                            WHERE u.id = f.owner_id AND u.avatar_file_id = f.id)
                AND (f.owner_id = v_me
                     OR EXISTS (SELECT 1 FROM public.memberships m
                                WHERE m.tenant_id = v_tenant AND m.user_id = f.owner_id
                                  AND m.status = 'active')))
            -- (c) an attachment of a message the person may read
            OR (f.purpose = 'attachment' AND f.tenant_id = v_tenant
                AND EXISTS (SELECT 1 FROM public.messages m
                            JOIN public.consultations c
                              ON c.tenant_id = m.tenant_id AND c.id = m.consultation_id
                            JOIN public.tenants t ON t.id = c.tenant_id
                            WHERE m.tenant_id = v_tenant AND m.attachment_id = f.id
                              AND v_me IN (c.employee_id, c.practitioner_id)
                              AND pg_catalog.now() >= c.created_at
                              AND pg_catalog.now() < c.ends_at
                                    + pg_catalog.make_interval(days => t.message_retention_days)))
            -- (d) an image of an article that is published now, by the image's owner
            OR (f.purpose = 'article_image' AND f.published_at IS NOT NULL
                AND EXISTS (SELECT 1 FROM public.articles a
                            WHERE a.id = f.article_id AND a.author_id = f.owner_id
                              AND a.status = 'published')
                AND app_private.article_author_active(f.owner_id)))
        LIMIT 1;
END
$$;
