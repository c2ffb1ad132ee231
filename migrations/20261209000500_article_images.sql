-- Article images follow their article (issue 13: content × files).
--
-- Migration 20261209000100_files made an `article_image` upload readable platform-wide once its
-- owner "published" it for an article id — any id: the files feature landed before the
-- articles table. Now that `articles` exists (20261209000200_content), the rule binds the two:
-- * `article_images_publish(article, files)` publishes only for an article that exists, is
--   PUBLISHED and is authored by the proven caller, who must hold the practitioner role in the
--   context company (proven membership, not `app.roles`); it also WITHDRAWS the caller's images
--   previously published for that article and no longer in the list (an edit that drops an
--   image makes it private again). Called by the content feature in the article's own write
--   transaction (`content::articles::images_follow`).
-- * `file_open`'s rule (d) serves an article image only while an article of its owner that
--   names it is published: an article unpublished, deleted, or gone with its author's account
--   (ON DELETE CASCADE, which no application hook sees) takes its images with it, whatever the
--   files row still says.
-- Every other rule of both functions is unchanged (the text below is the original's but for
-- the marked parts). `CREATE OR REPLACE` keeps the owner and the grants.

CREATE OR REPLACE FUNCTION app_private.article_images_publish(p_article uuid, p_files uuid[], p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_wanted integer;
    v_ok integer;
    v_n integer;
BEGIN
    IF v_me IS NULL OR p_article IS NULL OR p_files IS NULL THEN
        RETURN NULL;
    END IF;
    -- (new) a published article of the proven practitioner's own
    IF NOT app_private.proven_holds('practitioner')
       OR NOT EXISTS (SELECT 1 FROM public.articles a
                      WHERE a.id = p_article AND a.author_id = v_me AND a.status = 'published') THEN
        RETURN NULL;
    END IF;
    SELECT count(DISTINCT x) INTO v_wanted FROM pg_catalog.unnest(p_files) AS x;
    SELECT count(*) INTO v_ok FROM public.files f
    WHERE f.id = ANY (p_files) AND f.owner_id = v_me AND f.purpose = 'article_image'
      AND f.deleted_at IS NULL AND (f.article_id IS NULL OR f.article_id = p_article);
    IF v_ok <> v_wanted OR pg_catalog.array_position(p_files, NULL) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- (new) images the article no longer shows are withdrawn
    UPDATE public.files f SET article_id = NULL, published_at = NULL
    WHERE f.article_id = p_article AND f.owner_id = v_me AND NOT (f.id = ANY (p_files));
    UPDATE public.files f
    SET article_id = p_article,
        published_at = COALESCE(f.published_at, app_private.record_time(p_now))
    WHERE f.id = ANY (p_files) AND f.owner_id = v_me AND f.purpose = 'article_image'
      AND f.deleted_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

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
                              AND a.status = 'published')))
        LIMIT 1;
END
$$;
