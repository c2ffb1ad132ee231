-- Reminders and change notices as jobs, in-app notifications, public cancel links
-- (issue 11, items 5 and 8).
--
-- jobs                  A PostgreSQL queue (DESIGN §1). Rows are written by a trigger on
--                       `consultation_events`, in the same transaction as the move that causes
--                       them: a booking that rolls back leaves no reminder, one that commits
--                       always has its reminders. The request role has NO privilege on the
--                       table (no grant; a closed policy): it neither reads nor writes a job.
--                       Kinds: `reminder_24h`, `reminder_1h` (both participants, only while the
--                       consultation is confirmed and still starts when the job was planned
--                       for), `notice_requested` (the practitioner, while it still awaits
--                       confirmation), `notice_confirmed` (the employee, with a public cancel
--                       link; the practitioner too when the system confirmed it),
--                       `notice_cancelled` and `notice_rescheduled` (the participant who did
--                       not make the move).
-- worker door           The job worker runs as `serein_worker` (`db::WorkerTx`, migration
--                       20261204000005): EXECUTE on the `app_private.job_*` definers below and
--                       nothing else. A job is taken `FOR UPDATE SKIP LOCKED` and done in ONE
--                       transaction (it only writes rows: the mail it causes goes through the
--                       outbox, sent later by the mail worker), so a job's mail, notifications
--                       and link exist exactly when the job is `done`. A failure rolls back and
--                       is recorded in a new transaction: retried with exponential backoff, then
--                       `dead` after the configured attempts. Each definer refuses a tenant
--                       context and works only on a pending job, for that job's consultation's
--                       two participants: the worker cannot mail an arbitrary address.
-- notifications         In-app notifications, one row per person and event. The person reads
--                       their own rows and may set `read_at` (column grant), nothing else; rows
--                       are written by the worker's definer only. They carry ids and a time,
--                       never content or the other party's name.
-- consultation_cancel_links
--                       Single-use links e-mailed to the employee: `{id}.{secret}`, only the
--                       SHA-256 of the secret stored. `app_private.public_cancel` spends one
--                       without a session (the link is the credential), in the request's tenant
--                       only, while the consultation can still be cancelled and before its
--                       (current) start; the cancellation is the employee's, late rule included.
--                       The request role has no privilege on the table.
--
-- Every table here is a tenant table: tenant_id, RLS enabled and forced, uniques and indexes led
-- by tenant_id (the due-queue index excepted: the worker's scan crosses tenants by design).

CREATE TABLE jobs (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('reminder_24h', 'reminder_1h', 'notice_requested',
                                                 'notice_confirmed', 'notice_cancelled',
                                                 'notice_rescheduled')),
    consultation_id uuid NOT NULL,
    -- The start this job was planned for: a reminder whose consultation moved is skipped.
    for_starts_at   timestamptz NOT NULL,
    -- Who made the move (notices): the other participant is told. NULL: the system.
    actor_id        uuid,
    run_at          timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'done', 'skipped', 'cancelled', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- A short classification, never a rendered body or an address.
    last_error      text CHECK (length(last_error) <= 200),
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    CONSTRAINT jobs_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT jobs_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT jobs_finished CHECK ((status = 'pending') = (finished_at IS NULL))
);
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE status = 'pending';
-- Full, not partial: the consultations' cascade (a company's purge) looks every job up by it.
CREATE INDEX jobs_consultation_idx ON jobs (tenant_id, consultation_id);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE status <> 'pending';
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
-- No grant to serein_app: a request never touches the queue. The policy keeps the table
-- tenant-scoped and closed should a grant ever be added (no row is ever visible through it).
CREATE POLICY jobs_closed ON jobs
    FOR ALL TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND false)
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND false);

CREATE TABLE notifications (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    user_id         uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('consultation_requested', 'consultation_confirmed',
                                                 'consultation_cancelled', 'consultation_rescheduled',
                                                 'consultation_reminder')),
    consultation_id uuid,
    -- The consultation's start when the notification was made (a reminder's "in 1 hour").
    starts_at       timestamptz,
    created_at      timestamptz NOT NULL,
    read_at         timestamptz,
    CONSTRAINT notifications_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT notifications_member_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT notifications_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT notifications_read_after CHECK (read_at IS NULL OR read_at >= created_at)
);
-- Newest first per person (keyset on (created_at, id)).
CREATE INDEX notifications_person_idx ON notifications (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (tenant_id, user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_consultation_idx ON notifications (tenant_id, consultation_id);
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY notifications_own_read ON notifications
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND user_id = (SELECT app_private.proven_person()));
CREATE POLICY notifications_own_mark ON notifications
    FOR UPDATE TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND user_id = (SELECT app_private.proven_person()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant())
                AND user_id = (SELECT app_private.proven_person()));
GRANT SELECT ON notifications TO serein_app;
GRANT UPDATE (read_at) ON notifications TO serein_app;

CREATE TABLE consultation_cancel_links (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    token_hash      bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at      timestamptz NOT NULL,
    used_at         timestamptz,
    CONSTRAINT consultation_cancel_links_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT consultation_cancel_links_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX consultation_cancel_links_consultation_idx
    ON consultation_cancel_links (tenant_id, consultation_id);
ALTER TABLE consultation_cancel_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE consultation_cancel_links FORCE ROW LEVEL SECURITY;
-- No grant to serein_app: links are issued by the worker and spent by a definer. Closed policy
-- as for jobs.
CREATE POLICY consultation_cancel_links_closed ON consultation_cancel_links
    FOR ALL TO serein_app
    USING (tenant_id = (SELECT app.current_tenant()) AND false)
    WITH CHECK (tenant_id = (SELECT app.current_tenant()) AND false);

-- The new e-mails (widened from the current list, read from the catalogue, as before).
DO $$
DECLARE
    v_values text[];
    v_new text[] := ARRAY['consultation_requested', 'consultation_confirmed', 'consultation_cancelled',
                          'consultation_rescheduled', 'consultation_reminder'];
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
                    FROM unnest(v_values || v_new) AS v));
END $$;

-- ---------------------------------------------------------------------------------------------
-- Enqueueing: every consultation move plans its jobs, in the move's transaction.

CREATE FUNCTION app_private.consultation_jobs_plan() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    c record;
    v_hours integer;
BEGIN
    SELECT x.status, x.starts_at INTO c FROM public.consultations x
    WHERE x.tenant_id = NEW.tenant_id AND x.id = NEW.consultation_id;
    -- Whatever moved, reminders planned for another start or state are void.
    IF NEW.kind IN ('cancelled', 'rescheduled', 'started', 'ended', 'no_show') THEN
        UPDATE public.jobs j SET status = 'cancelled', finished_at = NEW.at
        WHERE j.tenant_id = NEW.tenant_id AND j.consultation_id = NEW.consultation_id
          AND j.status = 'pending' AND j.kind IN ('reminder_24h', 'reminder_1h');
    END IF;
    IF NEW.kind IN ('requested', 'rescheduled') THEN
        FOREACH v_hours IN ARRAY ARRAY[24, 1] LOOP
            IF c.starts_at - pg_catalog.make_interval(hours => v_hours) > NEW.at THEN
                INSERT INTO public.jobs (id, tenant_id, kind, consultation_id, for_starts_at,
                                         actor_id, run_at, created_at)
                VALUES (pg_catalog.gen_random_uuid(), NEW.tenant_id,
                        CASE v_hours WHEN 24 THEN 'reminder_24h' ELSE 'reminder_1h' END,
                        NEW.consultation_id, c.starts_at, NULL,
                        c.starts_at - pg_catalog.make_interval(hours => v_hours), NEW.at);
            END IF;
        END LOOP;
    END IF;
    IF NEW.kind IN ('requested', 'confirmed', 'cancelled', 'rescheduled') THEN
        INSERT INTO public.jobs (id, tenant_id, kind, consultation_id, for_starts_at, actor_id,
                                 run_at, created_at)
        VALUES (pg_catalog.gen_random_uuid(), NEW.tenant_id, 'notice_' || NEW.kind,
                NEW.consultation_id, c.starts_at, NEW.actor_id, NEW.at, NEW.at);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.consultation_jobs_plan() FROM PUBLIC;
CREATE TRIGGER consultation_events_plan_jobs
    AFTER INSERT ON consultation_events
    FOR EACH ROW EXECUTE FUNCTION app_private.consultation_jobs_plan();

-- ---------------------------------------------------------------------------------------------
-- The worker's definers (granted to serein_worker only). Each refuses a tenant context.

CREATE FUNCTION app_private.job_door() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NOT NULL THEN
        RAISE EXCEPTION 'job functions run only without a tenant context' USING ERRCODE = '42501';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_private.job_door() FROM PUBLIC;

-- Take the next due job, locked until the end of the caller's transaction (SKIP LOCKED: several
-- workers never take the same job). No row: nothing is due.
CREATE FUNCTION app_private.job_take(p_now timestamptz, p_max_attempts integer)
    RETURNS TABLE (tenant_id uuid, id uuid, kind text, consultation_id uuid,
                   for_starts_at timestamptz, actor_id uuid, attempts integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    RETURN QUERY
        SELECT j.tenant_id, j.id, j.kind, j.consultation_id, j.for_starts_at, j.actor_id, j.attempts
        FROM public.jobs j
        WHERE j.status = 'pending' AND j.run_at <= p_now AND j.attempts < p_max_attempts
        ORDER BY j.run_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
END
$$;

-- What a job needs to know of its consultation and its company (one row), or nothing when the
-- job is not pending.
CREATE FUNCTION app_private.job_consultation(p_tenant uuid, p_job uuid)
    RETURNS TABLE (status text, kind text, starts_at timestamptz, ends_at timestamptz,
                   employee_id uuid, practitioner_id uuid, tenant_name text, tenant_slug text,
                   tenant_time_zone text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    RETURN QUERY
        SELECT c.status, c.kind, c.starts_at, c.ends_at, c.employee_id, c.practitioner_id,
               t.name, t.slug, t.time_zone
        FROM public.jobs j
        JOIN public.consultations c ON c.tenant_id = j.tenant_id AND c.id = j.consultation_id
        JOIN public.tenants t ON t.id = j.tenant_id
        WHERE j.tenant_id = p_tenant AND j.id = p_job AND j.status = 'pending';
END
$$;

-- The job's two participants who can still be reached here: an active person with an active
-- membership in the job's company. Their address leaves the database only for rendering
-- nothing: the worker names a participant, `job_mail` looks the address up itself.
CREATE FUNCTION app_private.job_participants(p_tenant uuid, p_job uuid)
    RETURNS TABLE (user_id uuid, as_practitioner boolean, locale text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    RETURN QUERY
        SELECT u.id, u.id = c.practitioner_id, coalesce(u.locale, t.locale)
        FROM public.jobs j
        JOIN public.consultations c ON c.tenant_id = j.tenant_id AND c.id = j.consultation_id
        JOIN public.tenants t ON t.id = j.tenant_id
        JOIN public.users u ON u.id IN (c.employee_id, c.practitioner_id)
        JOIN public.memberships m ON m.tenant_id = j.tenant_id AND m.user_id = u.id
        WHERE j.tenant_id = p_tenant AND j.id = p_job AND j.status = 'pending'
          AND u.status = 'active' AND m.status = 'active'
        ORDER BY u.id = c.practitioner_id;
END
$$;

-- Queue an e-mail to one of the job's participants (the address is looked up here). False when
-- the person is not a reachable participant of a pending job.
CREATE FUNCTION app_private.job_mail(p_tenant uuid, p_job uuid, p_user uuid, p_locale text,
                                     p_template text, p_subject text, p_text text, p_html text,
                                     p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_to text;
BEGIN
    PERFORM app_private.job_door();
    SELECT u.email INTO v_to
    FROM app_private.job_participants(p_tenant, p_job) p
    JOIN public.users u ON u.id = p.user_id
    WHERE p.user_id = p_user;
    IF v_to IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO public.email_outbox (id, tenant_id, to_address, locale, template, subject,
                                     body_text, body_html, created_at, next_attempt_at)
    VALUES (pg_catalog.gen_random_uuid(), p_tenant, v_to, p_locale, p_template, p_subject,
            p_text, p_html, p_now, p_now);
    RETURN true;
END
$$;

-- Store an in-app notification for one of the job's participants. False as above.
CREATE FUNCTION app_private.job_notify(p_tenant uuid, p_job uuid, p_user uuid, p_kind text,
                                       p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    IF NOT EXISTS (SELECT 1 FROM app_private.job_participants(p_tenant, p_job) p
                   WHERE p.user_id = p_user) THEN
        RETURN false;
    END IF;
    INSERT INTO public.notifications (id, tenant_id, user_id, kind, consultation_id, starts_at,
                                      created_at)
    SELECT pg_catalog.gen_random_uuid(), p_tenant, p_user, p_kind, c.id, c.starts_at, p_now
    FROM public.jobs j
    JOIN public.consultations c ON c.tenant_id = j.tenant_id AND c.id = j.consultation_id
    WHERE j.tenant_id = p_tenant AND j.id = p_job;
    RETURN true;
END
$$;

-- Issue a cancel link for the job's consultation (a confirmation or a reschedule notice, while
-- the consultation can still be cancelled). False otherwise.
CREATE FUNCTION app_private.job_cancel_link(p_tenant uuid, p_job uuid, p_link uuid, p_hash bytea,
                                            p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    INSERT INTO public.consultation_cancel_links (id, tenant_id, consultation_id, token_hash,
                                                  created_at)
    SELECT p_link, j.tenant_id, j.consultation_id, p_hash, p_now
    FROM public.jobs j
    JOIN public.consultations c ON c.tenant_id = j.tenant_id AND c.id = j.consultation_id
    WHERE j.tenant_id = p_tenant AND j.id = p_job AND j.status = 'pending'
      AND j.kind IN ('notice_confirmed', 'notice_rescheduled')
      AND c.status IN ('requested', 'confirmed') AND c.starts_at > p_now;
    RETURN FOUND;
END
$$;

-- Close a job: 'done' (it did its work) or 'skipped' (nothing to do any more).
CREATE FUNCTION app_private.job_finish(p_tenant uuid, p_job uuid, p_status text, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    IF p_status NOT IN ('done', 'skipped') THEN
        RAISE EXCEPTION 'a job finishes as done or skipped' USING ERRCODE = '22023';
    END IF;
    UPDATE public.jobs j SET status = p_status, finished_at = p_now, last_error = NULL
    WHERE j.tenant_id = p_tenant AND j.id = p_job AND j.status = 'pending';
    RETURN FOUND;
END
$$;

-- Record a failed attempt (its transaction rolled back): retry at p_now + min(base ·
-- 2^(attempts-1), cap), or `dead` once the attempts are spent. Returns the new status.
CREATE FUNCTION app_private.job_failed(p_tenant uuid, p_job uuid, p_now timestamptz, p_error text,
                                       p_max_attempts integer, p_base_secs integer,
                                       p_cap_secs integer)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_status text;
BEGIN
    PERFORM app_private.job_door();
    UPDATE public.jobs j
    SET attempts = j.attempts + 1,
        last_error = pg_catalog.left(p_error, 200),
        status = CASE WHEN j.attempts + 1 >= p_max_attempts THEN 'dead' ELSE 'pending' END,
        finished_at = CASE WHEN j.attempts + 1 >= p_max_attempts THEN p_now END,
        run_at = p_now + pg_catalog.make_interval(secs => LEAST(
            p_cap_secs::double precision,
            p_base_secs * power(2::double precision, LEAST(j.attempts, 30))))
    WHERE j.tenant_id = p_tenant AND j.id = p_job AND j.status = 'pending'
    RETURNING j.status INTO v_status;
    RETURN v_status;
END
$$;

-- Delete finished jobs older than p_before, and cancel links spent or dead (their consultation
-- started) before it (at most p_limit of each). Returns how many rows.
CREATE FUNCTION app_private.job_prune(p_before timestamptz, p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_n integer;
    v_links integer;
BEGIN
    PERFORM app_private.job_door();
    WITH old AS (
        SELECT j.tenant_id, j.id FROM public.jobs j
        WHERE j.status <> 'pending' AND j.finished_at < p_before
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM public.jobs j USING old WHERE j.tenant_id = old.tenant_id AND j.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    WITH old AS (
        SELECT k.tenant_id, k.id FROM public.consultation_cancel_links k
        JOIN public.consultations c ON c.tenant_id = k.tenant_id AND c.id = k.consultation_id
        WHERE k.used_at < p_before OR c.starts_at < p_before
        LIMIT p_limit
        FOR UPDATE OF k SKIP LOCKED
    )
    DELETE FROM public.consultation_cancel_links k USING old
    WHERE k.tenant_id = old.tenant_id AND k.id = old.id;
    GET DIAGNOSTICS v_links = ROW_COUNT;
    RETURN v_n + v_links;
END
$$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.job_take(timestamptz, integer)',
        'app_private.job_consultation(uuid, uuid)',
        'app_private.job_participants(uuid, uuid)',
        'app_private.job_mail(uuid, uuid, uuid, text, text, text, text, text, timestamptz)',
        'app_private.job_notify(uuid, uuid, uuid, text, timestamptz)',
        'app_private.job_cancel_link(uuid, uuid, uuid, bytea, timestamptz)',
        'app_private.job_finish(uuid, uuid, text, timestamptz)',
        'app_private.job_failed(uuid, uuid, timestamptz, text, integer, integer, integer)',
        'app_private.job_prune(timestamptz, integer)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, serein_app', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_worker', f);
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The public cancel link: no session; the link is the credential, in the request's company.
-- Outcomes: 'cancelled' (with whether the late rule made it count against the allowance), or
-- 'gone' for an unknown, foreign, spent or expired link and for a consultation that can no
-- longer be cancelled (one answer: a link says nothing about why it is dead).
-- The caller's `p_now` (the server's injected clock) is never earlier than the database's own:
-- a crafted past time cannot cancel a consultation that already started, nor dodge the late
-- rule.
CREATE FUNCTION app_private.public_cancel(p_link uuid, p_hash bytea, p_now timestamptz)
    RETURNS TABLE (outcome text, starts_at timestamptz, counts_against_allowance boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant();
    l record;
    c record;
    v_late integer;
    v_counts boolean;
    v_now timestamptz := GREATEST(p_now, pg_catalog.now());
BEGIN
    IF v_tenant IS NULL OR p_link IS NULL OR p_hash IS NULL THEN
        RETURN QUERY SELECT 'gone'::text, NULL::timestamptz, NULL::boolean;
        RETURN;
    END IF;
    SELECT k.consultation_id, k.used_at INTO l FROM public.consultation_cancel_links k
    WHERE k.tenant_id = v_tenant AND k.id = p_link AND k.token_hash = p_hash
    FOR UPDATE;
    IF NOT FOUND OR l.used_at IS NOT NULL THEN
        RETURN QUERY SELECT 'gone'::text, NULL::timestamptz, NULL::boolean;
        RETURN;
    END IF;
    SELECT x.* INTO c FROM public.consultations x
    WHERE x.tenant_id = v_tenant AND x.id = l.consultation_id
    FOR NO KEY UPDATE;
    IF NOT FOUND OR c.status NOT IN ('requested', 'confirmed') OR v_now >= c.starts_at THEN
        RETURN QUERY SELECT 'gone'::text, NULL::timestamptz, NULL::boolean;
        RETURN;
    END IF;
    SELECT t.late_cancel_hours INTO v_late FROM public.tenants t WHERE t.id = v_tenant;
    v_counts := c.starts_at - v_now < pg_catalog.make_interval(hours => v_late);
    UPDATE public.consultations x
    SET status = 'cancelled', cancelled_by = c.employee_id, cancel_reason = 'other',
        counts_against_allowance = v_counts, sequence = x.sequence + 1, updated_at = v_now
    WHERE x.tenant_id = v_tenant AND x.id = c.id;
    INSERT INTO public.consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
    VALUES (pg_catalog.gen_random_uuid(), v_tenant, c.id, 'cancelled', c.employee_id, v_now);
    UPDATE public.consultation_cancel_links k SET used_at = v_now
    WHERE k.tenant_id = v_tenant AND k.id = p_link;
    RETURN QUERY SELECT 'cancelled'::text, c.starts_at, v_counts;
END
$$;
REVOKE ALL ON FUNCTION app_private.public_cancel(uuid, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.public_cancel(uuid, bytea, timestamptz) TO serein_app;
