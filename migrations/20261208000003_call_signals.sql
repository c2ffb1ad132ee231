-- Audio/video call signaling over the realtime socket (issue 12, item 4): offer, answer, ICE
-- candidates and hang-up, relayed only between a consultation's two participants while its
-- call is open, across server instances.
--
-- Rules:
-- - A signal is written only by `app_private.call_signal_send`, as the PROVEN person (session
--   guard's proof), on a video or audio consultation of theirs that is confirmed or started,
--   from 10 minutes before its start until 15 minutes after its end — by the database's clock
--   (the same window as the Jitsi token, `consultations::video`). The recipient is the other
--   participant, taken from the consultation, never from an argument.
-- - Read by its sender and its recipient only (policy on the proven person); nobody updates or
--   deletes one through the request role. Signals are short-lived: the job worker deletes them
--   an hour after they were sent (`app_private.call_signals_prune`, serein_worker only).
-- - The payload (SDP or ICE candidate: they carry network addresses) is sealed by the caller
--   under the employee's subject key, AAD `v1|tenant|call_signals|payload|{id}`.
-- - Live delivery: `pg_notify('serein_realtime', …)` with ids only (tenant, consultation,
--   recipient, signal id); the recipient's server re-reads the row under the recipient's own
--   context.
CREATE TABLE call_signals (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    sender_id       uuid NOT NULL,
    recipient_id    uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('offer', 'answer', 'ice', 'hangup')),
    payload         bytea,
    created_at      timestamptz NOT NULL,
    CONSTRAINT call_signals_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT call_signals_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX call_signals_age_idx ON call_signals (tenant_id, created_at);
ALTER TABLE call_signals ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_signals FORCE ROW LEVEL SECURITY;
CREATE POLICY call_signals_ends_read ON call_signals
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND (SELECT app_private.proven_person()) IN (sender_id, recipient_id));
GRANT SELECT ON call_signals TO serein_app;

-- Outcomes: 'sent', 'not_found' (not a participant here), 'closed' (not a call consultation,
-- not confirmed or started, or outside its window).
CREATE FUNCTION app_private.call_signal_send(p_id uuid, p_consultation uuid, p_kind text,
                                             p_payload bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_c record;
    v_other uuid;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN 'not_found';
    END IF;
    SELECT c.employee_id, c.practitioner_id, c.kind, c.status, c.starts_at, c.ends_at INTO v_c
    FROM public.consultations c
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation
      AND v_me IN (c.employee_id, c.practitioner_id);
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF v_c.kind NOT IN ('video', 'audio') OR v_c.status NOT IN ('confirmed', 'started')
       OR pg_catalog.now() < v_c.starts_at - interval '10 minutes'
       OR pg_catalog.now() >= v_c.ends_at + interval '15 minutes' THEN
        RETURN 'closed';
    END IF;
    v_other := CASE WHEN v_me = v_c.employee_id THEN v_c.practitioner_id ELSE v_c.employee_id END;
    INSERT INTO public.call_signals (id, tenant_id, consultation_id, sender_id, recipient_id,
                                     kind, payload, created_at)
    VALUES (p_id, v_tenant, p_consultation, v_me, v_other, p_kind, p_payload,
            GREATEST(p_now, pg_catalog.now()));
    PERFORM pg_catalog.pg_notify('serein_realtime', pg_catalog.json_build_object(
        'k', 'call', 't', v_tenant, 'c', p_consultation, 'u', v_other, 'id', p_id)::text);
    RETURN 'sent';
END
$$;
REVOKE ALL ON FUNCTION app_private.call_signal_send(uuid, uuid, text, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.call_signal_send(uuid, uuid, text, bytea, timestamptz) TO serein_app;

CREATE FUNCTION app_private.call_signals_prune(p_now timestamptz, p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM app_private.job_door();
    WITH old AS (
        SELECT s.tenant_id, s.id FROM public.call_signals s
        WHERE s.created_at < LEAST(p_now, pg_catalog.now()) - interval '1 hour'
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM public.call_signals s USING old WHERE s.tenant_id = old.tenant_id AND s.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
REVOKE ALL ON FUNCTION app_private.call_signals_prune(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.call_signals_prune(timestamptz, integer) TO serein_worker;
