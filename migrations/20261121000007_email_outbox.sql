-- email_outbox: the transactional outbox of e-mail (DESIGN §1, §4).
--
-- A row is written by the request, in the SAME transaction as the change that causes the mail
-- (a reset token, a sign-up, an invitation): if that transaction rolls back, no mail exists; if
-- it commits, the mail will be sent (at least once). A worker (`src/mail/worker.rs`) sends it.
--
-- * The request role may only INSERT, only for its current tenant, and only a fresh row
--   (pending, no attempt, no lease). It cannot read, change or delete any row, its own
--   included: nothing in a request needs to read mail back, and the bodies carry single-use
--   links (reset, verification, invitation).
-- * The worker never needs a privileged connection: it claims due rows across tenants through
--   the small SECURITY DEFINER functions below, called from a `SystemTx` (request role, no
--   tenant). Each refuses to run inside a tenant context, so a request transaction cannot call
--   them to read another tenant's mail.
-- * Claiming leases a batch (`FOR UPDATE SKIP LOCKED`, so several workers never take the same
--   row) and counts the attempt at claim time: a worker that dies mid-send still spends an
--   attempt, and the row is picked up again when its lease expires. Sending happens outside any
--   database transaction; the outcome is then recorded under the lease id.
-- * Failures are retried with exponential backoff (base · 2^(attempts-1), capped); after the
--   configured number of attempts, or on a permanent SMTP refusal (5xx), the row is `dead`.
-- * Once a row is `sent` or `dead` its rendered bodies are purged (the constraint below makes
--   that a schema invariant); recipient, template, status and attempt metadata stay for
--   operations until `app_private.mail_prune` deletes rows past the retention period.
-- * `last_error` holds a short classification ("connect", "smtp 451", …), never the server's
--   free text (which can quote the recipient address).
CREATE TABLE email_outbox (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    to_address      text NOT NULL
                    CHECK (length(to_address) BETWEEN 3 AND 254 AND position('@' IN to_address) > 1),
    locale          text NOT NULL CHECK (locale IN ('en', 'fr')),
    template        text NOT NULL CHECK (template IN
                    ('verify_email', 'password_reset', 'account_locked', 'invitation', 'account_exists')),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
    body_text       text,
    body_html       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    lease_id        uuid,
    leased_until    timestamptz,
    sent_at         timestamptz,
    dead_at         timestamptz,
    last_error      text CHECK (length(last_error) <= 200),
    CONSTRAINT email_outbox_pkey PRIMARY KEY (tenant_id, id),
    -- A pending row has its body; a sent or dead one has none (purged).
    CONSTRAINT email_outbox_body_only_while_pending
        CHECK ((status = 'pending') = (body_text IS NOT NULL) AND (status = 'pending' OR body_html IS NULL)),
    CONSTRAINT email_outbox_lease_pair CHECK ((lease_id IS NULL) = (leased_until IS NULL)),
    CONSTRAINT email_outbox_sent_at CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT email_outbox_dead_at CHECK ((status = 'dead') = (dead_at IS NOT NULL))
);
-- Deliberately not led by tenant_id: the worker's due-queue scan crosses tenants by design.
-- Partial, so it holds only what is still to send.
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';
-- Erasure of a person's data and operator look-ups within a tenant.
CREATE INDEX email_outbox_recipient_idx ON email_outbox (tenant_id, to_address);
-- Retention pruning scans by age (crosses tenants, like the worker).
CREATE INDEX email_outbox_created_idx ON email_outbox (created_at);

ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_outbox FORCE ROW LEVEL SECURITY;

CREATE POLICY email_outbox_tenant_insert ON email_outbox
    FOR INSERT TO serein_app
    WITH CHECK (
        tenant_id = (SELECT app.current_tenant())
        AND status = 'pending' AND attempts = 0 AND lease_id IS NULL
        AND sent_at IS NULL AND dead_at IS NULL AND last_error IS NULL
    );

GRANT INSERT ON email_outbox TO serein_app;

-- ---------------------------------------------------------------------------------------------
-- Worker functions. Called from a SystemTx only (no tenant context); `p_now` is the worker's
-- injected clock.

-- Lease up to `p_limit` due rows for `p_lease_secs`, counting the attempt. Rows whose lease
-- expired after their last permitted attempt (the worker died mid-send) are declared dead first.
CREATE FUNCTION app_private.mail_claim(p_now timestamptz, p_limit integer, p_lease_secs integer,
                                       p_max_attempts integer)
    RETURNS TABLE (tenant_id uuid, id uuid, lease_id uuid, attempts integer, to_address text,
                   locale text, template text, subject text, body_text text, body_html text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
#variable_conflict use_column
DECLARE v_lease uuid := pg_catalog.gen_random_uuid();
BEGIN
    IF app.current_tenant() IS NOT NULL THEN
        RAISE EXCEPTION 'mail_claim runs only without a tenant context' USING ERRCODE = '42501';
    END IF;
    WITH spent AS (
        SELECT o.tenant_id, o.id FROM public.email_outbox o
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND o.attempts >= p_max_attempts
          AND (o.leased_until IS NULL OR o.leased_until <= p_now)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE public.email_outbox o
    SET status = 'dead', dead_at = p_now, body_text = NULL, body_html = NULL,
        lease_id = NULL, leased_until = NULL, last_error = 'lease expired on the last attempt'
    FROM spent WHERE o.tenant_id = spent.tenant_id AND o.id = spent.id;

    RETURN QUERY
    WITH due AS (
        SELECT o.tenant_id, o.id FROM public.email_outbox o
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND o.attempts < p_max_attempts
          AND (o.leased_until IS NULL OR o.leased_until <= p_now)
        ORDER BY o.next_attempt_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE public.email_outbox o
    SET attempts = o.attempts + 1, lease_id = v_lease,
        leased_until = p_now + make_interval(secs => p_lease_secs)
    FROM due WHERE o.tenant_id = due.tenant_id AND o.id = due.id
    RETURNING o.tenant_id, o.id, o.lease_id, o.attempts, o.to_address, o.locale, o.template,
              o.subject, o.body_text, o.body_html;
END
$$;

-- Record a delivery: the body is purged.
CREATE FUNCTION app_private.mail_mark_sent(p_tenant uuid, p_id uuid, p_lease uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    IF app.current_tenant() IS NOT NULL THEN
        RAISE EXCEPTION 'mail_mark_sent runs only without a tenant context' USING ERRCODE = '42501';
    END IF;
    UPDATE public.email_outbox
    SET status = 'sent', sent_at = p_now, body_text = NULL, body_html = NULL,
        lease_id = NULL, leased_until = NULL, last_error = NULL
    WHERE tenant_id = p_tenant AND id = p_id AND lease_id = p_lease AND status = 'pending';
    RETURN FOUND;
END
$$;

-- Record a failed attempt: retry at p_now + min(base · 2^(attempts-1), cap), or `dead` (body
-- purged) when the error is permanent or the attempts are spent. Returns the new state; no row
-- when the lease was lost.
CREATE FUNCTION app_private.mail_mark_failed(p_tenant uuid, p_id uuid, p_lease uuid,
                                             p_now timestamptz, p_error text, p_permanent boolean,
                                             p_max_attempts integer, p_base_secs integer,
                                             p_cap_secs integer)
    RETURNS TABLE (status text, attempts integer, next_attempt_at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
#variable_conflict use_column
BEGIN
    IF app.current_tenant() IS NOT NULL THEN
        RAISE EXCEPTION 'mail_mark_failed runs only without a tenant context' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    UPDATE public.email_outbox o
    SET status = CASE WHEN p_permanent OR o.attempts >= p_max_attempts THEN 'dead' ELSE 'pending' END,
        dead_at = CASE WHEN p_permanent OR o.attempts >= p_max_attempts THEN p_now END,
        body_text = CASE WHEN p_permanent OR o.attempts >= p_max_attempts THEN NULL ELSE o.body_text END,
        body_html = CASE WHEN p_permanent OR o.attempts >= p_max_attempts THEN NULL ELSE o.body_html END,
        next_attempt_at = CASE WHEN p_permanent OR o.attempts >= p_max_attempts THEN o.next_attempt_at
            ELSE p_now + make_interval(secs => least(p_cap_secs::double precision,
                     p_base_secs * power(2::double precision, least(greatest(o.attempts - 1, 0), 40))))
            END,
        lease_id = NULL, leased_until = NULL,
        last_error = left(p_error, 200)
    WHERE o.tenant_id = p_tenant AND o.id = p_id AND o.lease_id = p_lease AND o.status = 'pending'
    RETURNING o.status, o.attempts, o.next_attempt_at;
END
$$;

-- Retention: delete sent and dead rows created before `p_before` (at most `p_limit` per call).
CREATE FUNCTION app_private.mail_prune(p_before timestamptz, p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE n integer;
BEGIN
    IF app.current_tenant() IS NOT NULL THEN
        RAISE EXCEPTION 'mail_prune runs only without a tenant context' USING ERRCODE = '42501';
    END IF;
    WITH old AS (
        SELECT o.tenant_id, o.id FROM public.email_outbox o
        WHERE o.created_at < p_before AND o.status IN ('sent', 'dead')
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM public.email_outbox o USING old
    WHERE o.tenant_id = old.tenant_id AND o.id = old.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.mail_claim(timestamptz, integer, integer, integer)',
        'app_private.mail_mark_sent(uuid, uuid, uuid, timestamptz)',
        'app_private.mail_mark_failed(uuid, uuid, uuid, timestamptz, text, boolean, integer, integer, integer)',
        'app_private.mail_prune(timestamptz, integer)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_app', f);
    END LOOP;
END $$;
