-- Content (issue 13, item 5): practitioners' articles (platform-wide) and company news (per
-- tenant). Markdown is rendered and sanitised by the server (src/content/markdown.rs, ammonia)
-- at write time; both the source and the sanitised HTML are stored.
--
-- articles — GLOBAL (no tenant_id), like practitioner_profiles: a published article is read in
-- every company. Who reaches which row (policies on the PROVEN person, the session guard's
-- proof in this transaction; a crafted `app.user_id` or `app.roles` proves nothing):
--   - SELECT: a published article, by any request with a company context and a proven person
--     (no context, no proof → nothing); a draft only by its author.
--   - No direct write grant: create, edit (optimistic `version`) and delete go through the
--     definers below, which take the author from the proof and demand that the proven person
--     holds the practitioner role in an active membership of the context company (the role is
--     read from `memberships`, never from `app.roles`). Edits and deletes reach the proven
--     author's own articles only.
--   - The author's display name is copied from `users` at each write (readers in companies
--     the author does not serve cannot read the author's identity row, and need not).
--
-- news — TENANT table: RLS enabled and forced, keys and indexes lead with tenant_id.
--   - SELECT: published news of the context company, by any proven person there; drafts by
--     the company's proven HR or tenant admins.
--   - Writes through definers demanding a proven `hr` or `tenant_admin` membership.
--
-- Full-text search: each row carries its language (`en`|`fr`) and a stored generated tsvector
-- built with that language's configuration (title A > summary B > body C; news: title A >
-- body B), GIN-indexed. The server queries each language with its own configuration.
--
-- Residual trust, stated: `body_html` is rendered by the server; a proven practitioner (or HR
-- member) running SQL as the request role could store HTML the renderer would not produce.
-- The server therefore sanitises `body_html` again on every read (ammonia, same allow list),
-- so such a row is neutralised before it reaches another reader.

-- Tags as stored: 1–40 characters, lower case, no white space or commas.
CREATE FUNCTION app.valid_content_tags(p text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = ''
    AS $$ SELECT coalesce(bool_and(c ~ '^[^[:space:],]{1,40}$' AND c = pg_catalog.lower(c)), true)
          FROM pg_catalog.unnest(p) AS c $$;
GRANT EXECUTE ON FUNCTION app.valid_content_tags(text[]) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Articles. Global on purpose (no tenant_id): a published article is read in every company, its
-- author is one person across companies (see the header); forced RLS and explicit attacks below.
CREATE TABLE articles (
    id              uuid PRIMARY KEY,
    author_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    author_name     text NOT NULL CHECK (length(author_name) <= 200),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    summary         text NOT NULL DEFAULT '' CHECK (length(summary) <= 500),
    body_markdown   text NOT NULL CHECK (length(body_markdown) <= 100000),
    body_html       text NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}'
                    CHECK (cardinality(tags) <= 10 AND app.valid_content_tags(tags)),
    language        text NOT NULL CHECK (language IN ('en', 'fr')),
    status          text NOT NULL CHECK (status IN ('draft', 'published')),
    published_at    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- The list order: publication time, or creation time for a draft.
    listed_at       timestamptz GENERATED ALWAYS AS (COALESCE(published_at, created_at)) STORED,
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(CASE language WHEN 'fr' THEN 'french'::regconfig
                                            ELSE 'english'::regconfig END, title), 'A')
        || setweight(to_tsvector(CASE language WHEN 'fr' THEN 'french'::regconfig
                                               ELSE 'english'::regconfig END, summary), 'B')
        || setweight(to_tsvector(CASE language WHEN 'fr' THEN 'french'::regconfig
                                               ELSE 'english'::regconfig END, body_markdown), 'C')
    ) STORED,
    CONSTRAINT articles_published_at_check CHECK ((status = 'published') = (published_at IS NOT NULL))
);
CREATE INDEX articles_published_idx ON articles (listed_at DESC, id DESC) WHERE status = 'published';
CREATE INDEX articles_author_idx ON articles (author_id, listed_at DESC, id DESC);
CREATE INDEX articles_search_idx ON articles USING gin (search);
CREATE INDEX articles_tags_idx ON articles USING gin (tags);
ALTER TABLE articles ENABLE ROW LEVEL SECURITY;
ALTER TABLE articles FORCE ROW LEVEL SECURITY;
CREATE POLICY articles_read ON articles
    FOR SELECT TO serein_app
    USING ((status = 'published' AND (SELECT app_private.proven_person()) IS NOT NULL)
           OR author_id = (SELECT app_private.proven_person()));
GRANT SELECT ON articles TO serein_app;

-- Does the PROVEN person hold the practitioner role in the context company?
CREATE FUNCTION app_private.content_author_may() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$ SELECT app_private.proven_person() IS NOT NULL AND app_private.proven_holds('practitioner') $$;
REVOKE ALL ON FUNCTION app_private.content_author_may() FROM PUBLIC;

-- Write a new article as the PROVEN practitioner; a NULL language is the author's account
-- locale. Outcomes: 'created', 'forbidden'.
CREATE FUNCTION app_private.article_create(p_id uuid, p_title text, p_summary text,
                                           p_body_markdown text, p_body_html text, p_tags text[],
                                           p_language text, p_status text, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_at timestamptz := app_private.record_time(p_now);
BEGIN
    IF v_me IS NULL OR NOT app_private.content_author_may() THEN
        RETURN 'forbidden';
    END IF;
    INSERT INTO public.articles (id, author_id, author_name, title, summary, body_markdown,
                                 body_html, tags, language, status, published_at, created_at,
                                 updated_at, version)
    SELECT p_id, v_me, u.display_name, p_title, p_summary, p_body_markdown, p_body_html,
           p_tags, COALESCE(p_language, u.locale), p_status,
           CASE WHEN p_status = 'published' THEN v_at END, v_at, v_at, 1
    FROM public.users u WHERE u.id = v_me;
    RETURN 'created';
END
$$;
REVOKE ALL ON FUNCTION app_private.article_create(uuid, text, text, text, text, text[], text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.article_create(uuid, text, text, text, text, text[], text, text, timestamptz) TO serein_app;

-- Replace an article of the PROVEN practitioner's own, from version p_version (its status
-- included: publishing and unpublishing are edits). A first publication stamps `published_at`;
-- going back to draft clears it. Outcomes: 'updated', 'not_found', 'conflict', 'forbidden';
-- `was_published` tells whether the article was published before.
CREATE FUNCTION app_private.article_update(p_id uuid, p_version integer, p_title text,
                                           p_summary text, p_body_markdown text, p_body_html text,
                                           p_tags text[], p_language text, p_status text,
                                           p_now timestamptz)
    RETURNS TABLE (outcome text, was_published boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_at timestamptz := app_private.record_time(p_now);
    v_row record;
BEGIN
    IF v_me IS NULL OR NOT app_private.content_author_may() THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::boolean;
        RETURN;
    END IF;
    SELECT a.version, a.status, a.published_at INTO v_row FROM public.articles a
    WHERE a.id = p_id AND a.author_id = v_me
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::boolean;
        RETURN;
    END IF;
    IF v_row.version <> p_version THEN
        RETURN QUERY SELECT 'conflict'::text, v_row.status = 'published';
        RETURN;
    END IF;
    UPDATE public.articles a
    SET author_name = (SELECT u.display_name FROM public.users u WHERE u.id = v_me),
        title = p_title, summary = p_summary, body_markdown = p_body_markdown,
        body_html = p_body_html, tags = p_tags, language = COALESCE(p_language, a.language),
        status = p_status,
        published_at = CASE WHEN p_status = 'published'
                            THEN COALESCE(v_row.published_at, GREATEST(v_at, a.created_at)) END,
        updated_at = GREATEST(v_at, a.created_at), version = a.version + 1
    WHERE a.id = p_id;
    RETURN QUERY SELECT 'updated'::text, v_row.status = 'published';
END
$$;
REVOKE ALL ON FUNCTION app_private.article_update(uuid, integer, text, text, text, text, text[], text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.article_update(uuid, integer, text, text, text, text, text[], text, text, timestamptz) TO serein_app;

-- Delete an article of the PROVEN practitioner's own. Outcomes: 'deleted', 'not_found',
-- 'forbidden'; `was_published` as above.
CREATE FUNCTION app_private.article_delete(p_id uuid)
    RETURNS TABLE (outcome text, was_published boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_status text;
BEGIN
    IF v_me IS NULL OR NOT app_private.content_author_may() THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::boolean;
        RETURN;
    END IF;
    DELETE FROM public.articles a WHERE a.id = p_id AND a.author_id = v_me
    RETURNING a.status INTO v_status;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::boolean;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'deleted'::text, v_status = 'published';
END
$$;
REVOKE ALL ON FUNCTION app_private.article_delete(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.article_delete(uuid) TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Company news.
CREATE TABLE news (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    -- The HR member who wrote it last (no foreign key: news is the company's voice and
    -- outlives its writer's membership).
    author_id       uuid NOT NULL,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body_markdown   text NOT NULL CHECK (length(body_markdown) <= 20000),
    body_html       text NOT NULL,
    language        text NOT NULL CHECK (language IN ('en', 'fr')),
    status          text NOT NULL CHECK (status IN ('draft', 'published')),
    pinned          boolean NOT NULL DEFAULT false,
    published_at    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    listed_at       timestamptz GENERATED ALWAYS AS (COALESCE(published_at, created_at)) STORED,
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(CASE language WHEN 'fr' THEN 'french'::regconfig
                                            ELSE 'english'::regconfig END, title), 'A')
        || setweight(to_tsvector(CASE language WHEN 'fr' THEN 'french'::regconfig
                                               ELSE 'english'::regconfig END, body_markdown), 'B')
    ) STORED,
    CONSTRAINT news_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT news_published_at_check CHECK ((status = 'published') = (published_at IS NOT NULL))
);
CREATE INDEX news_list_idx ON news (tenant_id, pinned DESC, listed_at DESC, id DESC);
-- Search within one company: btree_gin (migration 20261206000001) lets the GIN index lead
-- with tenant_id.
CREATE INDEX news_search_idx ON news USING gin (tenant_id, search);
ALTER TABLE news ENABLE ROW LEVEL SECURITY;
ALTER TABLE news FORCE ROW LEVEL SECURITY;
CREATE POLICY news_read ON news
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND ((status = 'published' AND (SELECT app_private.proven_person()) IS NOT NULL)
                OR (SELECT app_private.proven_holds('hr'))
                OR (SELECT app_private.proven_holds('tenant_admin'))));
GRANT SELECT ON news TO serein_app;

-- Does the PROVEN person hold hr or tenant_admin in the context company?
CREATE FUNCTION app_private.news_writer_may() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$ SELECT app_private.proven_person() IS NOT NULL
             AND (app_private.proven_holds('hr') OR app_private.proven_holds('tenant_admin')) $$;
REVOKE ALL ON FUNCTION app_private.news_writer_may() FROM PUBLIC;

-- Write news in the context company as its PROVEN HR. A NULL language is the company's
-- locale. Outcomes: 'created', 'forbidden'.
CREATE FUNCTION app_private.news_create(p_id uuid, p_title text, p_body_markdown text,
                                        p_body_html text, p_language text, p_status text,
                                        p_pinned boolean, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR NOT app_private.news_writer_may() THEN
        RETURN 'forbidden';
    END IF;
    INSERT INTO public.news (id, tenant_id, author_id, title, body_markdown, body_html, language,
                             status, pinned, published_at, created_at, updated_at, version)
    SELECT p_id, v_tenant, v_me, p_title, p_body_markdown, p_body_html,
           COALESCE(p_language, t.locale), p_status, COALESCE(p_pinned, false),
           CASE WHEN p_status = 'published' THEN v_at END, v_at, v_at, 1
    FROM public.tenants t WHERE t.id = v_tenant;
    RETURN 'created';
END
$$;
REVOKE ALL ON FUNCTION app_private.news_create(uuid, text, text, text, text, text, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.news_create(uuid, text, text, text, text, text, boolean, timestamptz) TO serein_app;

-- Replace news of the context company from version p_version, as its PROVEN HR. Outcomes:
-- 'updated', 'not_found', 'conflict', 'forbidden'.
CREATE FUNCTION app_private.news_update(p_id uuid, p_version integer, p_title text,
                                        p_body_markdown text, p_body_html text, p_language text,
                                        p_status text, p_pinned boolean, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_row record;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR NOT app_private.news_writer_may() THEN
        RETURN 'forbidden';
    END IF;
    SELECT n.version, n.published_at INTO v_row FROM public.news n
    WHERE n.tenant_id = v_tenant AND n.id = p_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF v_row.version <> p_version THEN
        RETURN 'conflict';
    END IF;
    UPDATE public.news n
    SET author_id = v_me, title = p_title, body_markdown = p_body_markdown,
        body_html = p_body_html, language = COALESCE(p_language, n.language), status = p_status,
        pinned = COALESCE(p_pinned, n.pinned),
        published_at = CASE WHEN p_status = 'published'
                            THEN COALESCE(v_row.published_at, GREATEST(v_at, n.created_at)) END,
        updated_at = GREATEST(v_at, n.created_at), version = n.version + 1
    WHERE n.tenant_id = v_tenant AND n.id = p_id;
    RETURN 'updated';
END
$$;
REVOKE ALL ON FUNCTION app_private.news_update(uuid, integer, text, text, text, text, text, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.news_update(uuid, integer, text, text, text, text, text, boolean, timestamptz) TO serein_app;

-- Delete news of the context company as its PROVEN HR. Outcomes: 'deleted', 'not_found',
-- 'forbidden'.
CREATE FUNCTION app_private.news_delete(p_id uuid)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR NOT app_private.news_writer_may() THEN
        RETURN 'forbidden';
    END IF;
    DELETE FROM public.news n WHERE n.tenant_id = v_tenant AND n.id = p_id;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    RETURN 'deleted';
END
$$;
REVOKE ALL ON FUNCTION app_private.news_delete(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.news_delete(uuid) TO serein_app;
