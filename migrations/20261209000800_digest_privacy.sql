-- The digest names only what the person takes by e-mail (review of issue 13, item 4).
--
-- Threat closed: the weekly digest (migration 20261209000300) counted every unread kind by its
-- label — "session reminders: 1", "conversations with new messages: 2" — also for a person who
-- had switched those e-mails off, often precisely to keep therapy out of a work mailbox that the
-- employer's IT can read. Now a kind whose e-mail the person does not take is counted without
-- its label, as "other updates" (`message_received`, never e-mailed, always is).
-- Also: the outbox filter matches the recipient's address case-insensitively (addresses are
-- stored lower-case; a writer passing another case no longer slips past a switched-off kind).
-- `CREATE OR REPLACE` keeps owners and grants; everything else in both functions is unchanged.

CREATE OR REPLACE FUNCTION app_private.job_digest_due(p_now timestamptz, p_inactive_days integer,
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
            -- (changed) a kind the person does not take by e-mail is counted, unnamed, as
            -- 'other' (the template's "other updates")
            SELECT n.tenant_id, n.user_id,
                   CASE WHEN app_private.notification_wanted(n.tenant_id, n.user_id, n.kind, 'email')
                        THEN n.kind ELSE 'other' END AS kind,
                   count(*) AS n, max(n.created_at) AS newest
            FROM public.notifications n
            WHERE n.read_at IS NULL
            GROUP BY 1, 2, 3
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

CREATE OR REPLACE FUNCTION app_private.email_outbox_filter() RETURNS trigger
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
    SELECT u.id INTO v_user FROM public.users u WHERE u.email = pg_catalog.lower(NEW.to_address);
    IF v_user IS NOT NULL
       AND NOT app_private.notification_wanted(NEW.tenant_id, v_user, v_kind, 'email') THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
