-- Reviews (issue 11, item 9): one per ended consultation, by its employee: a rating of 1–5 and
-- an optional comment, sealed by the API (AES-256-GCM under the company's tenant-level key,
-- AAD `v1|tenant|consultation_reviews|comment|{id}`; the database only ever holds ciphertext).
--
-- Who reads and writes what:
-- * `consultation_reviews` is a TENANT table (forced RLS). The request role writes no row
--   itself (no INSERT, UPDATE or DELETE grant: a review is final):
--   `app_private.review_consultation` writes one for the person PROVEN by the session guard in
--   this transaction, in the request's company, only when that person is the employee of the
--   consultation and it has `ended`; the employee, the practitioner and the company are taken
--   from the consultation and the context, never from an argument. One review per
--   consultation: UNIQUE (tenant_id, consultation_id).
-- * A row is read by its AUTHOR only. The practitioner sees no individual review, not even
--   the rating: one rating tied to one consultation is one identifiable person's opinion of
--   them. Comments are for the platform's quality process, not for the practitioner. HR and
--   tenant admins read nothing (DESIGN §2, §7).
-- * What anyone else gets is an aggregate, through `app_private.practitioner_ratings`: for the
--   practitioners serving the request's company, the number of reviews and their mean, over
--   reviews from EVERY company the practitioner serves (the practitioner is one person across
--   companies; a company's own handful of reviews would rarely reach a cohort), and only when
--   that number reaches the company's `min_cohort`. Never who, never which company, never a
--   single review.
--
-- Differencing, stated:
-- * Released in steps: the aggregate covers the first ⌊n / 5⌋ × 5 reviews of the practitioner
--   (in order of writing), so between any two answers — in any company, at any time — the
--   released set grows by whole batches of five. Without steps the practitioner (who knows whom
--   they just saw) could read one employee's rating back from the change of their own average
--   after that session. The step is one platform constant (5, the default `min_cohort`), not
--   the company's `min_cohort`: a practitioner serving two companies with different cohorts
--   could otherwise subtract one company's view from the other's. A company whose `min_cohort`
--   is not a multiple of five shows the aggregate from the first step at or above it (7 → 10).
-- * What remains, and is accepted: an employee sees the average move when their own review
--   joins a released batch (they know their own rating); a batch whose ratings are all equal
--   shows that every one of them gave that rating (as any aggregate does); a review that
--   disappears (its consultation deleted with a membership) shifts the batches once.
-- * The matching engine's rating component reads the same released figures, so a match score
--   cannot reveal what the directory hides.
--
-- Index: `consultation_reviews_practitioner_idx` deliberately does NOT lead with tenant_id (the
-- rule for tenant tables): the aggregate is per practitioner across companies, as the busy-time
-- exclusion of consultations is. It is not unique, so its existence says nothing to anyone.

CREATE TABLE consultation_reviews (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    -- Both copied from the consultation by `review_consultation`, the only writer.
    employee_id     uuid NOT NULL,
    practitioner_id uuid NOT NULL,
    rating          smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- Sealed blob: header (17 bytes) + at least one byte + tag (16); at most 2,000 characters
    -- of UTF-8 (8,000 bytes) inside.
    comment         bytea CHECK (comment IS NULL OR octet_length(comment) BETWEEN 34 AND 8033),
    created_at      timestamptz NOT NULL,
    CONSTRAINT consultation_reviews_pkey PRIMARY KEY (id),
    CONSTRAINT consultation_reviews_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT consultation_reviews_consultation_key UNIQUE (tenant_id, consultation_id),
    CONSTRAINT consultation_reviews_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX consultation_reviews_employee_idx
    ON consultation_reviews (tenant_id, employee_id, created_at, id);
CREATE INDEX consultation_reviews_practitioner_idx
    ON consultation_reviews (practitioner_id, created_at, id) INCLUDE (rating);

ALTER TABLE consultation_reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE consultation_reviews FORCE ROW LEVEL SECURITY;

CREATE POLICY consultation_reviews_author_read ON consultation_reviews
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND employee_id = (SELECT app_private.proven_person()));
GRANT SELECT ON consultation_reviews TO serein_app;

-- Review a consultation as the proven person of this transaction: 'created', or 'not_found'
-- (no such consultation here, or the caller is not its employee — the same answer),
-- 'not_reviewable' (not ended) or 'review_exists'. `p_comment` is the sealed blob (the API
-- seals; the database never sees the text). No context proof: 42501.
CREATE FUNCTION app_private.review_consultation(p_id uuid, p_consultation uuid, p_rating smallint,
                                                p_comment bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
    c record;
BEGIN
    SELECT x.employee_id, x.practitioner_id, x.status INTO c
    FROM public.consultations x
    WHERE x.tenant_id = a.v_tenant AND x.id = p_consultation;
    IF NOT FOUND OR c.employee_id <> a.v_user THEN
        RETURN 'not_found';
    END IF;
    -- `ended` is final: no transition leaves it, so no lock is needed to keep it so.
    IF c.status <> 'ended' THEN
        RETURN 'not_reviewable';
    END IF;
    INSERT INTO public.consultation_reviews (id, tenant_id, consultation_id, employee_id,
                                             practitioner_id, rating, comment, created_at)
    VALUES (p_id, a.v_tenant, p_consultation, a.v_user, c.practitioner_id, p_rating, p_comment,
            p_now)
    ON CONFLICT ON CONSTRAINT consultation_reviews_consultation_key DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'review_exists';
    END IF;
    RETURN 'created';
END
$$;
REVOKE ALL ON FUNCTION app_private.review_consultation(uuid, uuid, smallint, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.review_consultation(uuid, uuid, smallint, bytea, timestamptz) TO serein_app;

-- The released rating of each of p_practitioners that serves the request's company (an active
-- practitioner membership here): (practitioner, number of reviews released, their mean), from
-- every company's reviews, released in steps of five (see the header) and only when the
-- released number reaches this company's `min_cohort`; no row otherwise. Answers a person
-- proven in this transaction only (42501 for anyone else: no tenant, a claimed `app.user_id`).
CREATE FUNCTION app_private.practitioner_ratings(p_practitioners uuid[])
    RETURNS TABLE (practitioner_id uuid, review_count bigint, rating_mean double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_min integer;
BEGIN
    IF app_private.proven_user() IS NULL OR v_tenant IS NULL THEN
        RAISE EXCEPTION 'ratings need a session checked in this transaction' USING ERRCODE = '42501';
    END IF;
    SELECT t.min_cohort INTO v_min FROM public.tenants t WHERE t.id = v_tenant;
    IF v_min IS NULL OR p_practitioners IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        WITH served AS (
            SELECT DISTINCT m.user_id
            FROM public.memberships m
            WHERE m.tenant_id = v_tenant AND m.user_id = ANY (p_practitioners)
              AND m.status = 'active' AND 'practitioner' = ANY (m.roles)
        ), numbered AS (
            SELECT r.practitioner_id, r.rating,
                   pg_catalog.row_number() OVER (PARTITION BY r.practitioner_id
                                                 ORDER BY r.created_at, r.id) AS n,
                   pg_catalog.count(*) OVER (PARTITION BY r.practitioner_id) AS total
            FROM public.consultation_reviews r
            WHERE r.practitioner_id IN (SELECT s.user_id FROM served s)
        )
        SELECT x.practitioner_id, pg_catalog.count(*),
               pg_catalog.avg(x.rating)::double precision
        FROM numbered x
        WHERE x.n <= x.total - x.total % 5
        GROUP BY x.practitioner_id
        HAVING pg_catalog.count(*) >= v_min;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_ratings(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_ratings(uuid[]) TO serein_app;
