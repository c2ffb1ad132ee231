-- Notification preferences and the unread digest (issue 13, item 4).
--
-- The matrix        `app_private.notification_options()` is the ONE list of what a person can
--                   be told and how: every kind × channel (`in_app`, `email`) with its default
--                   and whether it can be changed. Defaults: in-app on for every kind; e-mail on
--                   for the consultation notices and reminders and for the digest. Not offered
--                   (fixed off): a new message by e-mail (a message is never mailed; the digest
--                   counts unread ones) and the digest in-app (it is an e-mail by nature).
-- notification_preferences
--                   A person's choices in one company, one row per changed cell (absent: the
--                   default). The request role READS its own rows of the PROVEN person only
--                   (`app_private.proven_person()`, the session guard's proof in this
--                   transaction — a crafted `app.user_id` proves nothing) and writes none
--                   directly: `app_private.notification_preferences_set` stores the proven
--                   person's choices in the context company (no person argument), never deletes.
--                   A CHECK refuses a cell outside the matrix or one that cannot be changed.
-- Enforcement       ONE function, `app_private.notification_wanted(tenant, person, kind,
--                   channel)`, and two BEFORE INSERT triggers that use it, so every writer
--                   present and future obeys (the job worker's notices, `message_send`'s "new
--                   message", the digest): a notification row the person does not want is not
--                   stored (hence never announced over the WebSocket, whose trigger fires AFTER
--                   INSERT); an outbox row whose template is a kind of the matrix is not queued
--                   when its recipient turned that kind's e-mail off. Transactional e-mail
--                   (verification, password reset, lockout, invitations, welcome) has no kind in
--                   the matrix and is never subject to preferences. A kind outside the matrix
--                   is always delivered (a new kind must be added here to become optional).
-- notification_digests
--                   When a person was last sent the digest of unread notifications in a company
--                   (at most one per `DIGEST_EVERY_DAYS`). Written by the job worker's definers
--                   only; the request role has no privilege on it (closed policy, as `jobs`).
--
-- Every table here is a tenant table: tenant_id, RLS enabled and forced, keys led by tenant_id.

CREATE FUNCTION app_private.notification_options()
    RETURNS TABLE (kind text, channel text, default_enabled boolean, changeable boolean)
    LANGUAGE sql IMMUTABLE
    SET search_path = ''
    AS $$
    SELECT o.kind, o.channel, o.default_enabled, o.changeable
    FROM (VALUES
        ('consultation_requested',   'in_app', true,  true, 1),
        ('consultation_requested',   'email',  true,  true, 2),
        ('consultation_confirmed',   'in_app', true,  true, 3),
        ('consultation_confirmed',   'email',  true,  true, 4),
        ('consultation_cancelled',   'in_app', true,  true, 5),
        ('consultation_cancelled',   'email',  true,  true, 6),
        ('consultation_rescheduled', 'in_app', true,  true, 7),
        ('consultation_rescheduled', 'email',  true,  true, 8),
        ('consultation_reminder',    'in_app', true,  true, 9),
        ('consultation_reminder',    'email',  true,  true, 10),
        ('message_received',         'in_app', true,  true, 11),
        ('message_received',         'email',  false, false, 12),
        ('digest',                   'in_app', false, false, 13),
        ('digest',                   'email',  true,  true, 14)
    ) AS o(kind, channel, default_enabled, changeable, n)
    ORDER BY o.n
$$;
REVOKE ALL ON FUNCTION app_private.notification_options() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.notification_options() TO serein_app;

-- A cell a person may store a choice for (the table's CHECK).
CREATE FUNCTION app_private.notification_changeable(p_kind text, p_channel text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = ''
    AS $$
    SELECT coalesce((SELECT o.changeable FROM app_private.notification_options() o
                     WHERE o.kind = p_kind AND o.channel = p_channel), false)
$$;
REVOKE ALL ON FUNCTION app_private.notification_changeable(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.notification_changeable(text, text) TO serein_app;

CREATE TABLE notification_preferences (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL,
    kind        text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('in_app', 'email')),
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT notification_preferences_pkey PRIMARY KEY (tenant_id, user_id, kind, channel),
    CONSTRAINT notification_preferences_member_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT notification_preferences_changeable
        CHECK (app_private.notification_changeable(kind, channel))
);
ALTER TABLE notification_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_preferences_own_read ON notification_preferences
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND user_id = (SELECT app_private.proven_person()));
GRANT SELECT ON notification_preferences TO serein_app;

-- Store the PROVEN person's choices in the context company: one cell per (kind, channel, enabled)
-- triple of the arrays. Idempotent: a cell already holding the value is not touched (nor its
-- `updated_at`). Refused without a proven person and company; a cell outside the matrix or one
-- that cannot be changed breaks the CHECK (the caller validates first, for a useful answer).
-- Returns how many cells changed.
CREATE FUNCTION app_private.notification_preferences_set(p_kinds text[], p_channels text[],
                                                         p_enabled boolean[], p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_n integer;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RAISE EXCEPTION 'notification preferences need a proven person' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.notification_preferences AS p
           (tenant_id, user_id, kind, channel, enabled, updated_at)
    SELECT DISTINCT v_tenant, v_me, x.kind, x.channel, x.enabled, v_at
    FROM unnest(p_kinds, p_channels, p_enabled) AS x(kind, channel, enabled)
    ON CONFLICT (tenant_id, user_id, kind, channel)
    DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at
    WHERE p.enabled IS DISTINCT FROM EXCLUDED.enabled;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
REVOKE ALL ON FUNCTION app_private.notification_preferences_set(text[], text[], boolean[], timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.notification_preferences_set(text[], text[], boolean[], timestamptz)
    TO serein_app;

-- Does `p_user` want `p_kind` on `p_channel` in `p_tenant`? The stored choice for a changeable
-- cell, else the default; true for a kind outside the matrix. Not granted to anyone: it is the
-- triggers' (and definers') alone, so it is no oracle of another person's choices.
CREATE FUNCTION app_private.notification_wanted(p_tenant uuid, p_user uuid, p_kind text,
                                                p_channel text)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
    SELECT coalesce(
        (SELECT CASE WHEN o.changeable THEN coalesce(p.enabled, o.default_enabled)
                     ELSE o.default_enabled END
         FROM app_private.notification_options() o
         LEFT JOIN public.notification_preferences p
                ON p.tenant_id = p_tenant AND p.user_id = p_user
               AND p.kind = o.kind AND p.channel = o.channel
         WHERE o.kind = p_kind AND o.channel = p_channel),
        true)
$$;
REVOKE ALL ON FUNCTION app_private.notification_wanted(uuid, uuid, text, text) FROM PUBLIC;

-- In-app: an unwanted notification is not stored (nor announced: that trigger is AFTER INSERT).
CREATE FUNCTION app_private.notifications_filter() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF NOT app_private.notification_wanted(NEW.tenant_id, NEW.user_id, NEW.kind, 'in_app') THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.notifications_filter() FROM PUBLIC;
CREATE TRIGGER notifications_filter BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION app_private.notifications_filter();

-- E-mail: the outbox template names the kind (`notification_digest` is the digest). The
-- recipient is the person with that address (addresses are unique); transactional templates are
-- not in the matrix and pass untouched.
CREATE FUNCTION app_private.email_outbox_filter() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_kind text := CASE WHEN NEW.template = 'notification_digest' THEN 'digest'
                        ELSE NEW.template END;
    v_user uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM app_private.notification_options() o
                   WHERE o.kind = v_kind AND o.channel = 'email') THEN
        RETURN NEW;
    END IF;
    SELECT u.id INTO v_user FROM public.users u WHERE u.email = NEW.to_address;
    IF v_user IS NOT NULL
       AND NOT app_private.notification_wanted(NEW.tenant_id, v_user, v_kind, 'email') THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app_private.email_outbox_filter() FROM PUBLIC;
CREATE TRIGGER email_outbox_filter BEFORE INSERT ON email_outbox
    FOR EACH ROW EXECUTE FUNCTION app_private.email_outbox_filter();

-- The digest's e-mail template (widened from the current list, read from the catalogue).
DO $$
DECLARE
    v_values text[];
BEGIN
    SELECT array_agg(m[1] ORDER BY m[1]) INTO v_values
    FROM pg_constraint c,
         regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') AS m
    WHERE c.conrelid = 'public.email_outbox'::regclass AND c.conname = 'email_outbox_template_check';
    IF v_values IS NULL THEN
        RAISE EXCEPTION 'email_outbox_template_check not found';
    END IF;
    ALTER TABLE public.email_outbox DROP CONSTRAINT email_outbox_template_check;
    EXECUTE format('ALTER TABLE public.email_outbox ADD CONSTRAINT email_outbox_template_check '
                   'CHECK (template IN (%s))',
                   (SELECT string_agg(DISTINCT quote_literal(v), ', ')
                    FROM unnest(v_values || ARRAY['notification_digest']) AS v));
END $$;

-- ---------------------------------------------------------------------------------------------
-- The digest.

CREATE TABLE notification_digests (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL,
    sent_at     timestamptz NOT NULL,
    CONSTRAINT notification_digests_pkey PRIMARY KEY (tenant_id, user_id),
    CONSTRAINT notification_digests_member_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
ALTER TABLE notification_digests ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_digests FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_digests_closed ON notification_digests
    FOR ALL TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND false)
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND false);

-- The people due a digest (at most p_limit): an active person with an active membership who
--   - has unread notifications there, at least one of them new since their last digest (a
--     person is not reminded again and again of the same items);
--   - has not signed in there for p_inactive_days: the newest of their membership's start,
--     their sessions' starts (each login) and their refresh tokens' issues (each refresh of a
--     live session) is older;
--   - was not sent a digest there in the last p_every_days;
--   - wants the digest by e-mail.
-- Per person: their locale, the company's slug, and their unread counts per kind (kind order).
CREATE FUNCTION app_private.job_digest_due(p_now timestamptz, p_inactive_days integer,
                                           p_every_days integer, p_limit integer)
    RETURNS TABLE (tenant_id uuid, user_id uuid, locale text, tenant_slug text, kinds text[],
                   counts bigint[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    RETURN QUERY
        WITH unread AS (
            SELECT n.tenant_id, n.user_id, n.kind, count(*) AS n, max(n.created_at) AS newest
            FROM public.notifications n
            WHERE n.read_at IS NULL
            GROUP BY n.tenant_id, n.user_id, n.kind
        ), people AS (
            SELECT x.tenant_id, x.user_id, array_agg(x.kind ORDER BY x.kind) AS kinds,
                   array_agg(x.n ORDER BY x.kind) AS counts, max(x.newest) AS newest
            FROM unread x
            GROUP BY x.tenant_id, x.user_id
        )
        SELECT p.tenant_id, p.user_id, coalesce(u.locale, t.locale), t.slug, p.kinds, p.counts
        FROM people p
        JOIN public.memberships m ON m.tenant_id = p.tenant_id AND m.user_id = p.user_id
        JOIN public.users u ON u.id = p.user_id
        JOIN public.tenants t ON t.id = p.tenant_id
        LEFT JOIN public.notification_digests d
               ON d.tenant_id = p.tenant_id AND d.user_id = p.user_id
        WHERE m.status = 'active' AND u.status = 'active' AND t.status = 'active'
          AND (d.sent_at IS NULL
               OR (d.sent_at <= p_now - pg_catalog.make_interval(days => p_every_days)
                   AND p.newest > d.sent_at))
          AND GREATEST(
                m.created_at,
                (SELECT max(s.created_at) FROM public.sessions s
                 WHERE s.tenant_id = p.tenant_id AND s.user_id = p.user_id),
                (SELECT max(r.created_at) FROM public.refresh_tokens r
                 WHERE r.tenant_id = p.tenant_id AND r.user_id = p.user_id))
              <= p_now - pg_catalog.make_interval(days => p_inactive_days)
          AND app_private.notification_wanted(p.tenant_id, p.user_id, 'digest', 'email')
        ORDER BY p.tenant_id, p.user_id
        LIMIT p_limit;
END
$$;

-- Record the digest and queue its e-mail to the person (the address is looked up here); false
-- unless the person is due one now (the same rule as `job_digest_due`, checked again here, so
-- the worker can mail nobody else: not an arbitrary member, not one who came back or turned the
-- digest off meanwhile) and no other worker sent one within p_every_days. The rendered text is
-- the worker's; it carries counts and a link only.
CREATE FUNCTION app_private.job_digest_send(p_tenant uuid, p_user uuid, p_locale text,
                                            p_subject text, p_text text, p_html text,
                                            p_now timestamptz, p_inactive_days integer,
                                            p_every_days integer)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_to text;
BEGIN
    PERFORM app_private.job_door();
    SELECT u.email INTO v_to
    FROM public.users u
    JOIN public.memberships m ON m.user_id = u.id AND m.tenant_id = p_tenant
    JOIN public.tenants t ON t.id = p_tenant
    LEFT JOIN public.notification_digests d ON d.tenant_id = p_tenant AND d.user_id = p_user
    WHERE u.id = p_user AND u.status = 'active' AND m.status = 'active' AND t.status = 'active'
      AND EXISTS (SELECT 1 FROM public.notifications n
                  WHERE n.tenant_id = p_tenant AND n.user_id = p_user AND n.read_at IS NULL
                    AND (d.sent_at IS NULL OR n.created_at > d.sent_at))
      AND GREATEST(
            m.created_at,
            (SELECT max(s.created_at) FROM public.sessions s
             WHERE s.tenant_id = p_tenant AND s.user_id = p_user),
            (SELECT max(r.created_at) FROM public.refresh_tokens r
             WHERE r.tenant_id = p_tenant AND r.user_id = p_user))
          <= p_now - pg_catalog.make_interval(days => p_inactive_days)
      AND app_private.notification_wanted(p_tenant, p_user, 'digest', 'email');
    IF v_to IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO public.notification_digests AS d (tenant_id, user_id, sent_at)
    VALUES (p_tenant, p_user, p_now)
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET sent_at = EXCLUDED.sent_at
    WHERE d.sent_at <= p_now - pg_catalog.make_interval(days => p_every_days);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO public.email_outbox (id, tenant_id, to_address, locale, template, subject,
                                     body_text, body_html, created_at, next_attempt_at)
    VALUES (pg_catalog.gen_random_uuid(), p_tenant, v_to, p_locale, 'notification_digest',
            p_subject, p_text, p_html, p_now, p_now);
    RETURN true;
END
$$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.job_digest_due(timestamptz, integer, integer, integer)',
        'app_private.job_digest_send(uuid, uuid, text, text, text, text, timestamptz, integer, integer)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, serein_app', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_worker', f);
    END LOOP;
END $$;
