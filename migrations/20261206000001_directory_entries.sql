-- The practitioner directory stays flat as a company grows (issue 10, item 8, second part).
--
-- Measured before (bench/lists_probe.sh, a company served by 100,000 practitioners against one
-- served by 1,000, as a proven tenant admin): the first page by name read and sorted every
-- practitioner of the company (the name lives in `users`, the company in `memberships`, the
-- filters in `practitioner_profiles`: no single index orders one company's practitioners by
-- name), and a text search computed `to_tsvector` and `ts_rank` of name and bio for every
-- practitioner of the company (≈ 1 s at 100k, 100× the small company).
--
-- Rules of this migration:
-- * `practitioner_directory_entries` holds one row per ACTIVE practitioner membership of an
--   ACTIVE person with a profile — exactly the rows the directory shows — with the name, the
--   filters and the two search documents stored beside the company: one index gives a
--   company's practitioners in name order, two GIN indexes (company, document) serve a search.
-- * Nobody writes it but the triggers below: they recompute a person's entries whenever their
--   membership (roles, status), identity (name, status) or profile (specialties, languages,
--   bio) changes. The triggers are SECURITY DEFINER because the request role changes names
--   and profiles but has no grant on this table; they take no caller identity, only the
--   changed row, and write nothing but the recomputed entries of that row's person.
-- * The request role has NO grant on the table: the directory reads it through the definers
--   `practitioner_directory` (replaced, same signature) and `practitioner_search` (new), which
--   answer only a person proven by the session guard in this transaction, bound to the
--   request's company, and return ids, names and tiers only; the caller then reads the
--   profiles themselves under row-level security, as before. The table still has a
--   tenant-checking policy and forced RLS (the catalogue test requires both of every tenant
--   table), should a grant ever be added.
-- * A text search no longer ranks by `ts_rank` (which needs every match scored before the
--   first page can be cut): it answers the practitioners whose NAME matches first, then those
--   whose bio matches, each tier in name order. Both tiers are keyset walks the planner serves
--   from the name index (common terms: a page is full after a few rows) or the GIN index (rare
--   terms: few rows to sort), planned per call with the query's own values.
-- * `practitioner_names()` now also demands the proven person (it demanded `app.user_id`
--   only): the same rule as every other definer of people.
-- * `btree_gin` is a trusted extension (PostgreSQL 13+), like `pg_trgm`.

CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;

CREATE TABLE practitioner_directory_entries (
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    display_name text NOT NULL,
    specialties  text[] NOT NULL,
    languages    text[] NOT NULL,
    -- to_tsvector('simple', display_name): the first tier of a search.
    name_doc     tsvector NOT NULL,
    -- to_tsvector('simple', display_name || ' ' || bio): what a search matches.
    document     tsvector NOT NULL,
    CONSTRAINT practitioner_directory_entries_pkey PRIMARY KEY (tenant_id, user_id),
    CONSTRAINT practitioner_directory_entries_membership_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX practitioner_directory_entries_name_idx
    ON practitioner_directory_entries (tenant_id, display_name, user_id);
CREATE INDEX practitioner_directory_entries_document_idx
    ON practitioner_directory_entries USING gin (tenant_id, document);
CREATE INDEX practitioner_directory_entries_name_doc_idx
    ON practitioner_directory_entries USING gin (tenant_id, name_doc);

ALTER TABLE practitioner_directory_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE practitioner_directory_entries FORCE ROW LEVEL SECURITY;
-- Not granted to serein_app (read through the definers below); the policy keeps the table
-- tenant-scoped should a grant ever be added.
CREATE POLICY practitioner_directory_entries_tenant ON practitioner_directory_entries
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()));
REVOKE ALL ON practitioner_directory_entries FROM PUBLIC;

-- Recompute one person's entry in one company from the source rows. Internal (not granted):
-- called by the trigger functions below, which run as the owner.
CREATE FUNCTION app_private.directory_refresh(p_tenant uuid, p_user uuid) RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    DELETE FROM public.practitioner_directory_entries
    WHERE tenant_id = p_tenant AND user_id = p_user;
    INSERT INTO public.practitioner_directory_entries
        (tenant_id, user_id, display_name, specialties, languages, name_doc, document)
    SELECT m.tenant_id, m.user_id, u.display_name, p.specialties, p.languages,
           pg_catalog.to_tsvector('pg_catalog.simple'::regconfig, u.display_name),
           pg_catalog.to_tsvector('pg_catalog.simple'::regconfig, u.display_name || ' ' || p.bio)
    FROM public.memberships m
    JOIN public.users u ON u.id = m.user_id
    JOIN public.practitioner_profiles p ON p.user_id = m.user_id
    WHERE m.tenant_id = p_tenant AND m.user_id = p_user
      AND m.status = 'active' AND 'practitioner' = ANY (m.roles)
      AND u.status = 'active';
END
$$;
REVOKE ALL ON FUNCTION app_private.directory_refresh(uuid, uuid) FROM PUBLIC;

-- Every company of one person (a name, status or profile change).
CREATE FUNCTION app_private.directory_refresh_person(p_user uuid) RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid;
BEGIN
    FOR v_tenant IN SELECT m.tenant_id FROM public.memberships m WHERE m.user_id = p_user LOOP
        PERFORM app_private.directory_refresh(v_tenant, p_user);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION app_private.directory_refresh_person(uuid) FROM PUBLIC;

CREATE FUNCTION app_private.directory_on_membership() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.tenant_id, OLD.user_id) IS DISTINCT FROM (NEW.tenant_id, NEW.user_id) THEN
        PERFORM app_private.directory_refresh(OLD.tenant_id, OLD.user_id);
    END IF;
    PERFORM app_private.directory_refresh(NEW.tenant_id, NEW.user_id);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.directory_on_membership() FROM PUBLIC;

CREATE FUNCTION app_private.directory_on_person() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    -- users: the row's id; practitioner_profiles: its user_id (the deleted row's on DELETE).
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM app_private.directory_refresh_person(NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM app_private.directory_refresh_person(OLD.user_id);
    ELSE
        PERFORM app_private.directory_refresh_person(NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.directory_on_person() FROM PUBLIC;

-- Employees' memberships (the vast majority, and bulk imports) cost no directory work.
CREATE TRIGGER memberships_directory_insert AFTER INSERT ON memberships
    FOR EACH ROW WHEN ('practitioner' = ANY (NEW.roles))
    EXECUTE FUNCTION app_private.directory_on_membership();
CREATE TRIGGER memberships_directory_update AFTER UPDATE OF roles, status, tenant_id, user_id
    ON memberships
    FOR EACH ROW WHEN ('practitioner' = ANY (OLD.roles) OR 'practitioner' = ANY (NEW.roles))
    EXECUTE FUNCTION app_private.directory_on_membership();
CREATE TRIGGER users_directory AFTER UPDATE OF display_name, status ON users
    FOR EACH ROW WHEN ((OLD.display_name, OLD.status) IS DISTINCT FROM (NEW.display_name, NEW.status))
    EXECUTE FUNCTION app_private.directory_on_person();
CREATE TRIGGER practitioner_profiles_directory
    AFTER INSERT OR DELETE OR UPDATE OF specialties, languages, bio ON practitioner_profiles
    FOR EACH ROW EXECUTE FUNCTION app_private.directory_on_person();

-- The entries of the practitioners already there.
INSERT INTO practitioner_directory_entries
    (tenant_id, user_id, display_name, specialties, languages, name_doc, document)
SELECT m.tenant_id, m.user_id, u.display_name, p.specialties, p.languages,
       to_tsvector('simple', u.display_name),
       to_tsvector('simple', u.display_name || ' ' || p.bio)
FROM memberships m
JOIN users u ON u.id = m.user_id
JOIN practitioner_profiles p ON p.user_id = m.user_id
WHERE m.status = 'active' AND 'practitioner' = ANY (m.roles) AND u.status = 'active';

-- ---------------------------------------------------------------------------------------------
-- One page of the directory by name: the same contract as before (ids and names of the active
-- practitioners serving the request's company, to the person proven in this transaction; the
-- filters and keyset only narrow), now one index walk of the company's entries.
CREATE OR REPLACE FUNCTION app_private.practitioner_directory(p_specialties text[], p_language text,
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
        'SELECT e.user_id, e.display_name
         FROM public.practitioner_directory_entries e
         WHERE e.tenant_id = $1
           AND ($2 IS NULL OR e.specialties OPERATOR(pg_catalog.&&) $2)
           AND ($3 IS NULL OR $3 OPERATOR(pg_catalog.=) ANY (e.languages))
           AND (e.display_name, e.user_id) > ($4, $5)
         ORDER BY e.display_name, e.user_id
         LIMIT $6'
        USING v_tenant, p_specialties, p_language, p_after_name, p_after_id, p_limit;
END
$$;

-- One page of a text search (`websearch_to_tsquery('simple', p_query)` over name and bio):
-- tier 1, the practitioners whose name matches, then tier 2, those whose bio matches and name
-- does not; in name order within a tier. The keyset is (tier, name, id): p_after_tier 0 starts
-- at the beginning. Same readers and same rows as `practitioner_directory`.
--
-- Two plans per tier, chosen by counting the tier's matches in the company up to 500: under
-- 500, the matches are read once through a GIN index and sorted (a few hundred rows at most);
-- from 500, the company's entries are walked in name order until the page is full (such a
-- term fills it after a few rows). Left to itself the planner guessed the frequency of a term
-- it has no statistics for (0.5 %), and walked 100,000 entries for a term that matched none.
CREATE FUNCTION app_private.practitioner_search(p_query text, p_specialties text[],
                                                p_language text, p_after_tier integer,
                                                p_after_name text, p_after_id uuid,
                                                p_limit integer)
    RETURNS TABLE (id uuid, display_name text, tier integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    ROWS 50
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_query tsquery;
    v_tier integer;
    v_match text;
    v_hits bigint;
    v_found bigint := 0;
    v_step bigint;
BEGIN
    IF v_tenant IS NULL OR app_private.proven_user() IS NULL OR p_limit < 1
       OR p_after_tier NOT IN (0, 1, 2) THEN
        RETURN;
    END IF;
    v_query := pg_catalog.websearch_to_tsquery('pg_catalog.simple'::regconfig, p_query);
    FOR v_tier IN 1 .. 2 LOOP
        CONTINUE WHEN v_tier < p_after_tier;
        EXIT WHEN v_found >= p_limit;
        -- The name is part of the document: a query without negation that matches the name
        -- matches the document, and tier 1 is the name condition alone (the planner multiplies
        -- the frequencies of two conditions as if independent: it guessed 73 rows for 2,519).
        v_match := CASE
            WHEN v_tier = 2 THEN 'e.document OPERATOR(pg_catalog.@@) $2 AND NOT e.name_doc OPERATOR(pg_catalog.@@) $2'
            WHEN pg_catalog.strpos(v_query::text, '!') > 0 THEN 'e.document OPERATOR(pg_catalog.@@) $2 AND e.name_doc OPERATOR(pg_catalog.@@) $2'
            ELSE 'e.name_doc OPERATOR(pg_catalog.@@) $2' END;
        EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM public.practitioner_directory_entries e
                                       WHERE e.tenant_id = $1 AND ' || v_match || ' LIMIT 500) s'
            INTO v_hits USING v_tenant, v_query;
        CONTINUE WHEN v_hits = 0;
        RETURN QUERY EXECUTE
            CASE WHEN v_hits < 500 THEN
                'WITH e AS MATERIALIZED (
                     SELECT e.user_id, e.display_name, e.specialties, e.languages
                     FROM public.practitioner_directory_entries e
                     WHERE e.tenant_id = $1 AND ' || v_match || ')
                 SELECT e.user_id, e.display_name, $7 FROM e WHERE true'
            ELSE
                'SELECT e.user_id, e.display_name, $7
                 FROM public.practitioner_directory_entries e
                 WHERE e.tenant_id = $1 AND ' || v_match
            END
            || ' AND ($3 IS NULL OR e.specialties OPERATOR(pg_catalog.&&) $3)
                 AND ($4 IS NULL OR $4 OPERATOR(pg_catalog.=) ANY (e.languages))
                 AND (e.display_name, e.user_id) > ($5, $6)
                 ORDER BY e.display_name, e.user_id
                 LIMIT $8'
            USING v_tenant, v_query, p_specialties, p_language,
                  CASE WHEN p_after_tier = v_tier THEN p_after_name ELSE '' END,
                  CASE WHEN p_after_tier = v_tier THEN p_after_id
                       ELSE '00000000-0000-0000-0000-000000000000'::uuid END,
                  v_tier, (p_limit - v_found)::integer;
        GET DIAGNOSTICS v_step = ROW_COUNT;
        v_found := v_found + v_step;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_search(text, text[], text, integer, text, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_search(text, text[], text, integer, text, uuid, integer) TO serein_app;

-- The directory's names for one practitioner or the matching candidates: the proven person
-- only, as every other definer of people.
CREATE OR REPLACE FUNCTION app_private.practitioner_names()
    RETURNS TABLE (id uuid, display_name text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT e.user_id, e.display_name
        FROM public.practitioner_directory_entries e
        WHERE e.tenant_id = app.current_tenant()
          AND app_private.proven_user() IS NOT NULL
    $$;

-- ---------------------------------------------------------------------------------------------
-- Member search of one or two characters (measured before: 149 ms at 100k members against
-- 3 ms at 1k, 50×). No trigram lies inside so short a term, so no index can serve "contains";
-- a scan of the company is the only way to answer it. Such a term now matches the START of a
-- word of the name or e-mail (after the start of the text or one of ' ', '-', '''', '.', '@',
-- '_', '+'), which is what a person typing the first letters of a name expects and what the
-- trigram indexes serve (a word start is indexed as the padded trigrams '  a' and ' ab').
-- Terms of three characters or more, and short terms without a letter or digit, keep the
-- substring match. Same signature, same readers, same guard: only the text condition of a
-- short pattern changes.
CREATE OR REPLACE FUNCTION app_private.member_search(p_pattern text, p_roles text[], p_statuses text[],
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
    v_starts text[];
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
    -- A short term without a letter or digit ('%', '_', '.') starts no word: it keeps the
    -- substring match (a scan of the company: such a search is rare and still bounded by
    -- the statement timeout).
    ELSIF p_pattern ~ '^%([^%_\\]|\\.){1,2}%$' AND p_pattern ~ '[[:alnum:]]' THEN
        -- '%ab%' (escapes kept): 'ab%' and '%<separator>ab%'.
        SELECT pg_catalog.array_agg(s.prefix || pg_catalog.substr(p_pattern, 2))
        INTO v_starts
        FROM pg_catalog.unnest(ARRAY['', '% ', '%-', '%''', '%.', '%@', '%\_', '%+']) AS s(prefix);
        RETURN QUERY EXECUTE
            'SELECT m.id FROM public.memberships m JOIN public.users u ON u.id = m.user_id'
            || v_filters
            || ' AND (u.email OPERATOR(pg_catalog.~~*) ANY ($6)'
            || '      OR u.display_name OPERATOR(pg_catalog.~~*) ANY ($6))'
            || ' ORDER BY m.id LIMIT $7'
            USING v_tenant, p_after, p_roles, p_statuses, p_ended, v_starts, p_limit;
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

-- ---------------------------------------------------------------------------------------------
-- The practitioner-membership guard refused every update of a practitioner's membership by
-- the request role, even one that changes nothing (`SET roles = roles`, as the catalogue's
-- isolation matrix runs on every row of a company, now that every company of its seed has a
-- practitioner). It refuses every CHANGE, as its message says; a write that leaves the row as
-- it was is not one.
CREATE OR REPLACE FUNCTION app_private.memberships_guard_roles() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.is_table_owner(TG_RELID)
       AND ('practitioner' = ANY (NEW.roles) OR 'practitioner' = ANY (OLD.roles))
       AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'the practitioner role is assigned by the platform'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
