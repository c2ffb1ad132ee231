-- Counters (issue 11, item 10): exact, computed from the consultations themselves (no counter
-- table to drift, no refresh lag).
--
-- * An employee's own counters read their own consultations under row-level security (they are
--   a participant): no definer.
-- * A practitioner's counters cross the companies they serve, which row-level security of one
--   request's company cannot show: this definer answers the proven practitioner about their
--   OWN consultations only — per month and company, counts and minutes, never who.

CREATE FUNCTION app_private.practitioner_counters(p_from timestamptz, p_to timestamptz)
    RETURNS TABLE (month date, tenant_slug text, tenant_name text, held bigint,
                   minutes bigint, no_shows bigint, cancelled bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_user();
BEGIN
    IF v_me IS NULL OR p_to <= p_from OR p_to > p_from + interval '3 years' THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT pg_catalog.date_trunc('month', c.starts_at AT TIME ZONE 'UTC')::date,
               t.slug, t.name,
               count(*) FILTER (WHERE c.status = 'ended'),
               coalesce(sum(d.minutes) FILTER (WHERE c.status = 'ended'), 0)::bigint,
               count(*) FILTER (WHERE c.status = 'no_show'),
               count(*) FILTER (WHERE c.status = 'cancelled')
        FROM public.consultations c
        JOIN public.tenants t ON t.id = c.tenant_id
        LEFT JOIN LATERAL (
            SELECT (extract(epoch FROM max(e.at) FILTER (WHERE e.kind = 'ended')
                                     - max(e.at) FILTER (WHERE e.kind = 'started')) / 60)::bigint AS minutes
            FROM public.consultation_events e
            WHERE e.tenant_id = c.tenant_id AND e.consultation_id = c.id) d ON true
        WHERE c.practitioner_id = v_me AND c.starts_at >= p_from AND c.starts_at < p_to
        GROUP BY 1, 2, 3
        ORDER BY 1, 2;
END
$$;
REVOKE ALL ON FUNCTION app_private.practitioner_counters(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.practitioner_counters(timestamptz, timestamptz) TO serein_app;
