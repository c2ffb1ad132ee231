-- Calendar feeds (issue 11, item 7): a secret, revocable `.ics` address per person and company,
-- opened by calendar apps without a session.
--
-- * The token is `{feed id}.{256 random bits}`; only its SHA-256 is stored. One live feed per
--   person and company: rotating revokes the previous address at once.
-- * The request role writes no feed itself (definers below, for the person proven by the
--   session guard), and reads only its own.
-- * The anonymous read goes through `calendar_feed_events`, which answers only for a live feed
--   of the request's company whose hash matches — and then only times, kinds, statuses and
--   sequence numbers of that person's consultations: never who the other party is, never a
--   word about care (calendars are synced to third parties).

CREATE TABLE calendar_feeds (
    id         uuid NOT NULL,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT calendar_feeds_pkey PRIMARY KEY (id),
    CONSTRAINT calendar_feeds_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT calendar_feeds_member_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX calendar_feeds_live_idx ON calendar_feeds (tenant_id, user_id)
    WHERE revoked_at IS NULL;
ALTER TABLE calendar_feeds ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_feeds FORCE ROW LEVEL SECURITY;
CREATE POLICY calendar_feeds_own ON calendar_feeds
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND user_id = (SELECT app_private.proven_person()));
GRANT SELECT ON calendar_feeds TO serein_app;

-- A new feed for the proven person here (the previous one, if any, is revoked).
CREATE FUNCTION app_private.calendar_feed_rotate(p_id uuid, p_hash bytea, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
BEGIN
    UPDATE public.calendar_feeds f SET revoked_at = p_now
    WHERE f.tenant_id = a.v_tenant AND f.user_id = a.v_user AND f.revoked_at IS NULL;
    INSERT INTO public.calendar_feeds (id, tenant_id, user_id, token_hash, created_at)
    VALUES (p_id, a.v_tenant, a.v_user, p_hash, p_now);
END
$$;
REVOKE ALL ON FUNCTION app_private.calendar_feed_rotate(uuid, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.calendar_feed_rotate(uuid, bytea, timestamptz) TO serein_app;

-- Revoke the proven person's feed here: whether there was one.
CREATE FUNCTION app_private.calendar_feed_revoke(p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    a record := app_private.booking_actor();
BEGIN
    UPDATE public.calendar_feeds f SET revoked_at = p_now
    WHERE f.tenant_id = a.v_tenant AND f.user_id = a.v_user AND f.revoked_at IS NULL;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION app_private.calendar_feed_revoke(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.calendar_feed_revoke(timestamptz) TO serein_app;

-- The events of a live feed of the request's company (anonymous: the token is the
-- credential): the feed owner's consultations from 30 days back to a year ahead. No row for an
-- unknown, revoked or foreign feed, or a hash that does not match.
CREATE FUNCTION app_private.calendar_feed_events(p_id uuid, p_hash bytea)
    RETURNS TABLE (id uuid, kind text, status text, starts_at timestamptz, ends_at timestamptz,
                   sequence integer, updated_at timestamptz, as_practitioner boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    v_user uuid;
BEGIN
    SELECT f.user_id INTO v_user FROM public.calendar_feeds f
    WHERE f.id = p_id AND f.tenant_id = v_tenant AND f.revoked_at IS NULL
      AND f.token_hash = p_hash;
    IF v_user IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT c.id, c.kind, c.status, c.starts_at, c.ends_at, c.sequence, c.updated_at,
               c.practitioner_id = v_user
        FROM public.consultations c
        WHERE c.tenant_id = v_tenant AND v_user IN (c.employee_id, c.practitioner_id)
          AND c.starts_at >= pg_catalog.now() - interval '30 days'
          AND c.starts_at < pg_catalog.now() + interval '366 days'
        ORDER BY c.starts_at, c.id;
END
$$;
REVOKE ALL ON FUNCTION app_private.calendar_feed_events(uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.calendar_feed_events(uuid, bytea) TO serein_app;

-- Is this a live feed of the request's company (the token's hash matches)?
CREATE FUNCTION app_private.calendar_feed_live(p_id uuid, p_hash bytea)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
    SELECT EXISTS (SELECT 1 FROM public.calendar_feeds f
                   WHERE f.id = p_id AND f.tenant_id = app.current_tenant()
                     AND f.revoked_at IS NULL AND f.token_hash = p_hash)
$$;
REVOKE ALL ON FUNCTION app_private.calendar_feed_live(uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.calendar_feed_live(uuid, bytea) TO serein_app;
