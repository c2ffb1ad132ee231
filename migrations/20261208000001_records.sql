-- Confidential records (issue 12, items 1–3): clinical notes and their versions, the private
-- journal, consultation messages and read marks; the practitioner's use of the employee's
-- subject key for messages; the company's message retention window.
--
-- Every content column here holds only AES-256-GCM blobs (src/crypto/sealed.rs) whose AAD is
-- `v1|{tenant}|{table}|{column}|{row id}`: a blob copied to another row, column, table or
-- company does not open. For messages the row id is bound with the consultation and the sender,
-- for note versions with the note and the version number (`Aad::bound_row`), so re-attributing
-- or renumbering a row breaks it too. Keys (src/crypto/keyring.rs):
--   - clinical notes: the company's CLINICAL key (legal retention outlives the employee's
--     erasure; destroyed at offboarding);
--   - journal entries and messages: the EMPLOYEE's subject key (crypto-shredded with that
--     person's erasure in the company).
--
-- Who reaches which row (policies on the PROVEN person, `app_private.proven_person()`: the
-- session guard's proof in this transaction — a crafted `app.user_id` proves nothing). The
-- request role READS these tables under their policies; it creates nothing directly: every
-- write that creates a row or moves a version goes through an `app_private` definer below,
-- which takes the person from the proof and checks the rest in the same statement (so a row
-- can never be planted under someone else's name, even by a handler bug):
--   - clinical_notes, clinical_note_versions: the author practitioner only, for every command
--     the request role holds. A note is written on a consultation of which the author is the
--     practitioner, once it is confirmed (confirmed, started, ended, no_show); its employee is
--     the consultation's. Nobody else — not the employee, another practitioner of the company,
--     HR, tenant or platform admins — has a policy that lets them see a row.
--   - journal_entries: the owner only.
--   - messages: the two participants of the consultation, from booking until the company's
--     `message_retention_days` after the consultation's end; written only through the definer
--     `app_private.message_send` (per-consultation sequence numbers without gaps, the
--     recipient's notification, the live-delivery signal), which takes the sender from the proof.
--   - message_reads: a participant writes their own read mark; both participants read both.
--
-- Edits keep history: a note's content lives only in `clinical_note_versions` (insert-only for
-- the request role); an edit adds version n+1 and moves the note's `current_version` from n
-- (optimistic: a stale edit changes nothing). Deleting a note marks it deleted; superseded
-- versions and deleted notes are pruned by the job worker once the clinical retention period
-- (server setting `CLINICAL_RETENTION_DAYS`) has passed since they stopped being current
-- (`app_private.records_prune`, serein_worker only). Messages past their window are pruned there
-- too. Journal entries are the owner's to delete outright.
--
-- Chosen: a conversation is open from booking, whatever the consultation's status (a requested
-- one lets the employee introduce themself; a cancelled one lets the two rearrange), until the
-- window after its planned end. Sequence numbers come from `consultations.message_seq` under the
-- consultation's row lock: gap-free, in commit order, never reused.
--
-- Residual trust, stated: (1) the practitioner's door to the employee's subject key opens the
-- one key that also seals the employee's journal; what keeps the journal from the practitioner
-- is the journal's owner-only policy (their requests never read its rows), not a separate key.
-- (2) A subject key's first version is created by whoever first needs it (the subject, or their
-- practitioner's first message); a proven practitioner running SQL as the request role could
-- plant a garbage version 1 for a patient who has none yet, which denies (never discloses)
-- that patient's journal and messages until an operator replaces it.
--
-- Live delivery: `message_send` issues `pg_notify('serein_realtime', …)` carrying ids only
-- (tenant, consultation, sequence number); a receiving server re-reads the row under its own
-- client's context and policies. Notifications are delivered at COMMIT only.

-- ---------------------------------------------------------------------------------------------
-- The company's message window (a company policy, set by its tenant admins or its file).
ALTER TABLE tenants
    ADD COLUMN message_retention_days integer NOT NULL DEFAULT 30
        CONSTRAINT tenants_message_retention_days_range CHECK (message_retention_days BETWEEN 0 AND 365);
GRANT INSERT (message_retention_days), UPDATE (message_retention_days) ON tenants TO serein_app;

-- Does the PROVEN person hold p_role in an active membership of the context company? (Not
-- `app.roles`, which the request role can set to anything after the guard.)
CREATE FUNCTION app_private.proven_holds(p_role text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM public.memberships m
        WHERE m.tenant_id = app.current_tenant() AND m.user_id = app_private.proven_person()
          AND m.status = 'active' AND p_role = ANY (m.roles));
END
$$;
REVOKE ALL ON FUNCTION app_private.proven_holds(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.proven_holds(text) TO serein_app;

-- Company settings are changed by a PROVEN tenant admin of that company. The policy of
-- migration 20261121000008 read the role from `app.roles` (claimable without a session); with
-- the message window among the settings (lowering it deletes conversations at the next prune),
-- the role now comes from the membership of the person the session guard proved.
DROP POLICY tenants_admin_update ON tenants;
CREATE POLICY tenants_admin_update ON tenants
    FOR UPDATE TO serein_app
    USING (id = (SELECT app.current_tenant()) AND managed_by = 'api'
           AND (SELECT app_private.proven_holds('tenant_admin')))
    WITH CHECK (id = (SELECT app.current_tenant()) AND managed_by = 'api');

-- The last message sequence number issued in a consultation: numbers are never reused, even
-- after the messages are pruned (a client's cursor and the read marks stay meaningful).
ALTER TABLE consultations ADD COLUMN message_seq bigint NOT NULL DEFAULT 0
    CONSTRAINT consultations_message_seq_check CHECK (message_seq >= 0);

-- The time a definer records: the application's clock (tests move it), but never before the
-- database's (a back-dated version or deletion would be pruned before its retention ends) and
-- at most a day after it.
CREATE FUNCTION app_private.record_time(p_now timestamptz) RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT LEAST(GREATEST(COALESCE(p_now, pg_catalog.now()), pg_catalog.now()),
                 pg_catalog.now() + interval '1 day')
$$;
REVOKE ALL ON FUNCTION app_private.record_time(timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Clinical notes.
CREATE TABLE clinical_notes (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    author_id       uuid NOT NULL,
    employee_id     uuid NOT NULL,
    current_version integer NOT NULL CHECK (current_version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    CONSTRAINT clinical_notes_pkey PRIMARY KEY (tenant_id, id),
    -- Legal retention: a consultation with notes is not deleted by accident (the offboarding
    -- purge deletes children first).
    CONSTRAINT clinical_notes_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX clinical_notes_consultation_idx
    ON clinical_notes (tenant_id, consultation_id, created_at DESC, id DESC);
CREATE INDEX clinical_notes_employee_idx
    ON clinical_notes (tenant_id, author_id, employee_id, created_at DESC, id DESC);
ALTER TABLE clinical_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical_notes FORCE ROW LEVEL SECURITY;

CREATE TABLE clinical_note_versions (
    -- The row id bound into the content's AAD.
    id          uuid NOT NULL,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    note_id     uuid NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    author_id   uuid NOT NULL,
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT clinical_note_versions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT clinical_note_versions_version_key UNIQUE (tenant_id, note_id, version),
    CONSTRAINT clinical_note_versions_note_fkey FOREIGN KEY (tenant_id, note_id)
        REFERENCES clinical_notes (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE clinical_note_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical_note_versions FORCE ROW LEVEL SECURITY;

CREATE POLICY clinical_notes_author_read ON clinical_notes
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND author_id = (SELECT app_private.proven_person()));
CREATE POLICY clinical_note_versions_author_read ON clinical_note_versions
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND author_id = (SELECT app_private.proven_person()));
-- Read-only for the request role: notes are created, edited and deleted by the definers below,
-- and a version, once written, never changes.
GRANT SELECT ON clinical_notes, clinical_note_versions TO serein_app;

-- Write a note (version 1) as the PROVEN person on a consultation of which they are the
-- practitioner, once confirmed. Outcomes: 'created', 'not_found' (not their consultation here),
-- 'not_confirmed'. The content was sealed by the caller with the AAD of p_version_row.
CREATE FUNCTION app_private.note_create(p_note uuid, p_consultation uuid, p_version_row uuid,
                                        p_content bytea, p_now timestamptz)
    RETURNS TABLE (outcome text, at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_c record;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT c.employee_id, c.status INTO v_c FROM public.consultations c
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation AND c.practitioner_id = v_me;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_c.status NOT IN ('confirmed', 'started', 'ended', 'no_show') THEN
        RETURN QUERY SELECT 'not_confirmed'::text, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO public.clinical_notes (id, tenant_id, consultation_id, author_id, employee_id,
                                       current_version, created_at, updated_at)
    VALUES (p_note, v_tenant, p_consultation, v_me, v_c.employee_id, 1, v_at, v_at);
    INSERT INTO public.clinical_note_versions (id, tenant_id, note_id, version, author_id, content, created_at)
    VALUES (p_version_row, v_tenant, p_note, 1, v_me, p_content, v_at);
    RETURN QUERY SELECT 'created'::text, v_at;
END
$$;

-- Edit a live note of the PROVEN person's from version p_from: version p_from + 1 is added and
-- becomes current. Outcomes: 'edited', 'not_found', 'conflict' (not at p_from any more).
CREATE FUNCTION app_private.note_edit(p_note uuid, p_from integer, p_version_row uuid,
                                      p_content bytea, p_now timestamptz)
    RETURNS TABLE (outcome text, at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_current integer;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT n.current_version INTO v_current FROM public.clinical_notes n
    WHERE n.tenant_id = v_tenant AND n.id = p_note AND n.author_id = v_me AND n.deleted_at IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_current <> p_from THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO public.clinical_note_versions (id, tenant_id, note_id, version, author_id, content, created_at)
    VALUES (p_version_row, v_tenant, p_note, p_from + 1, v_me, p_content, v_at);
    UPDATE public.clinical_notes SET current_version = p_from + 1, updated_at = v_at
    WHERE tenant_id = v_tenant AND id = p_note;
    RETURN QUERY SELECT 'edited'::text, v_at;
END
$$;

-- Delete a live note of the PROVEN person's (it leaves every list; pruned after retention).
CREATE FUNCTION app_private.note_delete(p_note uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
BEGIN
    IF v_me IS NULL THEN
        RETURN false;
    END IF;
    UPDATE public.clinical_notes SET deleted_at = app_private.record_time(p_now),
                                     updated_at = app_private.record_time(p_now)
    WHERE tenant_id = app.current_tenant() AND id = p_note AND author_id = v_me
      AND deleted_at IS NULL;
    RETURN FOUND;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The private journal.
CREATE TABLE journal_entries (
    id          uuid NOT NULL,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    owner_id    uuid NOT NULL,
    -- Sealed JSON: text, mood, tags (all health data: none is stored in the clear, so filters
    -- on mood and tag are applied after opening, within the owner's own entries).
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT journal_entries_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT journal_entries_owner_fkey FOREIGN KEY (tenant_id, owner_id)
        REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX journal_entries_owner_idx
    ON journal_entries (tenant_id, owner_id, created_at DESC, id DESC);
ALTER TABLE journal_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY journal_entries_owner ON journal_entries
    FOR ALL TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND owner_id = (SELECT app_private.proven_person()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant())
                AND owner_id = (SELECT app_private.proven_person()));
GRANT SELECT, DELETE ON journal_entries TO serein_app;
GRANT UPDATE (content, updated_at) ON journal_entries TO serein_app;

-- Write an entry of the PROVEN person's own (a member of the context company); the time it
-- recorded, or NULL when nobody is proven.
CREATE FUNCTION app_private.journal_create(p_id uuid, p_content bytea, p_now timestamptz)
    RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_at timestamptz := app_private.record_time(p_now);
BEGIN
    IF v_me IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.journal_entries (id, tenant_id, owner_id, content, created_at, updated_at)
    VALUES (p_id, app.current_tenant(), v_me, p_content, v_at, v_at);
    RETURN v_at;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Messages.
CREATE TABLE messages (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    -- 1, 2, 3 … per consultation, without gaps, in commit order (the send definer holds the
    -- consultation's row lock): a client resumes after the last number it saw.
    seq             bigint NOT NULL CHECK (seq >= 1),
    sender_id       uuid NOT NULL,
    body            bytea NOT NULL,
    -- A file (issue 13) the sender owns; refused by the application until files exist.
    attachment_id   uuid,
    -- The sender's own id for the message (retries of one send create one message).
    client_ref      text CHECK (client_ref ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at      timestamptz NOT NULL,
    CONSTRAINT messages_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT messages_seq_key UNIQUE (tenant_id, consultation_id, seq),
    CONSTRAINT messages_client_ref_key UNIQUE (tenant_id, consultation_id, sender_id, client_ref),
    CONSTRAINT messages_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
-- The consultation subquery runs under the consultations policy (its two participants).
-- Inline (no per-row function call): the proof stays an initplan of the consultations policy.
CREATE POLICY messages_participants_read ON messages
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND EXISTS (SELECT 1 FROM consultations c JOIN tenants t ON t.id = c.tenant_id
                       WHERE c.tenant_id = messages.tenant_id AND c.id = messages.consultation_id
                         AND now() >= c.created_at
                         AND now() < c.ends_at + make_interval(days => t.message_retention_days)));
GRANT SELECT ON messages TO serein_app;

CREATE TABLE message_reads (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    consultation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    last_read_seq   bigint NOT NULL CHECK (last_read_seq >= 0),
    read_at         timestamptz NOT NULL,
    CONSTRAINT message_reads_pkey PRIMARY KEY (tenant_id, consultation_id, user_id),
    CONSTRAINT message_reads_consultation_fkey FOREIGN KEY (tenant_id, consultation_id)
        REFERENCES consultations (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE message_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY message_reads_participants_read ON message_reads
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND EXISTS (SELECT 1 FROM consultations c
                       WHERE c.tenant_id = message_reads.tenant_id
                         AND c.id = message_reads.consultation_id));
GRANT SELECT ON message_reads TO serein_app;

-- A new message is a notification to the other participant (one unread per consultation).
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('consultation_requested', 'consultation_confirmed', 'consultation_cancelled',
                    'consultation_rescheduled', 'consultation_reminder', 'message_received'));

-- Send a message as the PROVEN person on a consultation of theirs, inside its window.
-- Outcomes: 'sent' (new), 'duplicate' (same sender and client_ref: the stored message is
-- returned, nothing new written), 'not_found' (not a participant here, or no such
-- consultation), 'closed' (outside the window). The body is sealed by the caller with the
-- AAD of p_id; a duplicate's new blob is dropped.
CREATE FUNCTION app_private.message_send(p_id uuid, p_consultation uuid, p_body bytea,
                                         p_attachment uuid, p_client_ref text, p_now timestamptz)
    RETURNS TABLE (outcome text, id uuid, seq bigint, sender_id uuid, created_at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_c record;
    v_seq bigint;
    v_other uuid;
BEGIN
    -- Attachments arrive with files (issue 13); until this door checks the file, none.
    IF p_attachment IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT c.employee_id, c.practitioner_id, c.created_at, c.ends_at, t.message_retention_days
    INTO v_c
    FROM public.consultations c JOIN public.tenants t ON t.id = c.tenant_id
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation
      AND v_me IN (c.employee_id, c.practitioner_id)
    FOR UPDATE OF c;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    IF p_client_ref IS NOT NULL THEN
        RETURN QUERY
            SELECT 'duplicate'::text, m.id, m.seq, m.sender_id, m.created_at
            FROM public.messages m
            WHERE m.tenant_id = v_tenant AND m.consultation_id = p_consultation
              AND m.sender_id = v_me AND m.client_ref = p_client_ref;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    IF v_at < v_c.created_at
       OR v_at >= v_c.ends_at + pg_catalog.make_interval(days => v_c.message_retention_days) THEN
        RETURN QUERY SELECT 'closed'::text, NULL::uuid, NULL::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    UPDATE public.consultations c SET message_seq = c.message_seq + 1
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation
    RETURNING c.message_seq INTO v_seq;
    INSERT INTO public.messages (id, tenant_id, consultation_id, seq, sender_id, body,
                                 attachment_id, client_ref, created_at)
    VALUES (p_id, v_tenant, p_consultation, v_seq, v_me, p_body, p_attachment, p_client_ref, v_at);
    -- The sender has read their own message.
    INSERT INTO public.message_reads (tenant_id, consultation_id, user_id, last_read_seq, read_at)
    VALUES (v_tenant, p_consultation, v_me, v_seq, v_at)
    ON CONFLICT (tenant_id, consultation_id, user_id)
    DO UPDATE SET last_read_seq = GREATEST(public.message_reads.last_read_seq, EXCLUDED.last_read_seq),
                  read_at = EXCLUDED.read_at;
    v_other := CASE WHEN v_me = v_c.employee_id THEN v_c.practitioner_id ELSE v_c.employee_id END;
    -- One unread "new message" notification per consultation and recipient; only while the
    -- recipient is a member of the company.
    IF NOT EXISTS (SELECT 1 FROM public.notifications n
                   WHERE n.tenant_id = v_tenant AND n.user_id = v_other
                     AND n.consultation_id = p_consultation AND n.kind = 'message_received'
                     AND n.read_at IS NULL)
       AND EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = v_tenant AND m.user_id = v_other) THEN
        INSERT INTO public.notifications (id, tenant_id, user_id, kind, consultation_id, starts_at, created_at)
        SELECT gen_random_uuid(), v_tenant, v_other, 'message_received', p_consultation, c.starts_at, v_at
        FROM public.consultations c WHERE c.tenant_id = v_tenant AND c.id = p_consultation;
    END IF;
    PERFORM pg_catalog.pg_notify('serein_realtime', pg_catalog.json_build_object(
        'k', 'message', 't', v_tenant, 'c', p_consultation, 's', v_seq)::text);
    RETURN QUERY SELECT 'sent'::text, p_id, v_seq, v_me, v_at;
END
$$;
REVOKE ALL ON FUNCTION app_private.message_send(uuid, uuid, bytea, uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.message_send(uuid, uuid, bytea, uuid, text, timestamptz) TO serein_app;

-- Mark a conversation read up to p_seq (never backwards; capped at the newest message) as the
-- PROVEN participant, inside the window; reaching the newest message also marks the room's
-- "new message" notifications read. No row: not a participant here, or the window is closed.
CREATE FUNCTION app_private.message_read_mark(p_consultation uuid, p_seq bigint, p_now timestamptz)
    RETURNS TABLE (user_id uuid, last_read_seq bigint, read_at timestamptz, newest bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
#variable_conflict use_column
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_at timestamptz := app_private.record_time(p_now);
    v_newest bigint;
    v_mark bigint;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR p_seq IS NULL OR p_seq < 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM public.consultations c JOIN public.tenants t ON t.id = c.tenant_id
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation
      AND v_me IN (c.employee_id, c.practitioner_id)
      AND v_at >= c.created_at
      AND v_at < c.ends_at + pg_catalog.make_interval(days => t.message_retention_days);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT c.message_seq INTO v_newest FROM public.consultations c
    WHERE c.tenant_id = v_tenant AND c.id = p_consultation;
    INSERT INTO public.message_reads AS r (tenant_id, consultation_id, user_id, last_read_seq, read_at)
    VALUES (v_tenant, p_consultation, v_me, LEAST(p_seq, v_newest), v_at)
    ON CONFLICT (tenant_id, consultation_id, user_id)
    DO UPDATE SET last_read_seq = GREATEST(r.last_read_seq, EXCLUDED.last_read_seq),
                  read_at = EXCLUDED.read_at
    RETURNING r.last_read_seq INTO v_mark;
    IF v_mark >= v_newest THEN
        UPDATE public.notifications n SET read_at = GREATEST(v_at, n.created_at)
        WHERE n.tenant_id = v_tenant AND n.user_id = v_me AND n.consultation_id = p_consultation
          AND n.kind = 'message_received' AND n.read_at IS NULL;
    END IF;
    PERFORM pg_catalog.pg_notify('serein_realtime', pg_catalog.json_build_object(
        'k', 'read', 't', v_tenant, 'c', p_consultation, 'u', v_me, 's', v_mark)::text);
    RETURN QUERY SELECT v_me, v_mark, v_at, v_newest;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The practitioner's use of the employee's subject key (messages are sealed under it).
-- Migration 20261204000001 left this door to the subject only and named this as the place to
-- extend: the PROVEN person may use p_subject's key when it is their own, or when they are the
-- practitioner of a consultation with p_subject in the context company whose message window is
-- open. Never an argument the caller controls as proof.
CREATE OR REPLACE FUNCTION app_private.subject_key_reader_may(p_subject uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = ''
    AS $$
    SELECT p_subject IS NOT NULL AND app_private.proven_user() IS NOT NULL
       AND (p_subject = app_private.proven_user()
            OR EXISTS (
                SELECT 1 FROM public.consultations c
                JOIN public.tenants t ON t.id = c.tenant_id
                WHERE c.tenant_id = app.current_tenant()
                  AND c.practitioner_id = app_private.proven_user()
                  AND c.employee_id = p_subject
                  AND pg_catalog.now() >= c.created_at
                  AND pg_catalog.now() < c.ends_at
                        + pg_catalog.make_interval(days => t.message_retention_days)))
$$;

-- Version 1 of a subject key may now be created by anyone the reader rule allows (the
-- practitioner's first message to an employee who never wrote anything), still wrapped by the
-- company's newest live data key, still only when the subject has none (a destroyed tombstone
-- included: an erased person's key is never recreated).
CREATE OR REPLACE FUNCTION app_private.subject_key_create(p_subject uuid, p_wrapping_version integer,
                                                          p_wrapped bytea, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_user uuid := app_private.require_proven_user();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF p_subject IS NULL OR NOT app_private.subject_key_reader_may(p_subject) THEN
        RAISE EXCEPTION 'a subject key is created by its subject, or a practitioner of theirs'
            USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.tenant_keys t
        WHERE t.tenant_id = v_tenant AND t.purpose = 'data' AND t.version = p_wrapping_version
          AND t.destroyed_at IS NULL
          AND t.version = (SELECT max(m.version) FROM public.tenant_keys m
                           WHERE m.tenant_id = v_tenant AND m.purpose = 'data')
    ) THEN
        RAISE EXCEPTION 'a subject key is wrapped by the newest live data key' USING ERRCODE = '22023';
    END IF;
    -- A subject key belongs to a member of the company.
    IF NOT EXISTS (SELECT 1 FROM public.memberships m
                   WHERE m.tenant_id = v_tenant AND m.user_id = p_subject) THEN
        RAISE EXCEPTION 'a subject key belongs to a member of the company' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key, created_at)
    VALUES (v_tenant, p_subject, 1, p_wrapping_version, p_wrapped, p_now)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Retention, run by the job worker (serein_worker) only.
CREATE FUNCTION app_private.records_prune(p_now timestamptz, p_clinical_days integer, p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_cut timestamptz := LEAST(p_now, pg_catalog.now())
                         - pg_catalog.make_interval(days => GREATEST(p_clinical_days, 1));
    v_n integer;
    v_total integer := 0;
BEGIN
    PERFORM app_private.job_door();
    -- Superseded versions: a newer version exists, written before the cut.
    WITH old AS (
        SELECT v.tenant_id, v.id FROM public.clinical_note_versions v
        WHERE EXISTS (SELECT 1 FROM public.clinical_note_versions w
                      WHERE w.tenant_id = v.tenant_id AND w.note_id = v.note_id
                        AND w.version > v.version AND w.created_at < v_cut)
        LIMIT p_limit
        FOR UPDATE OF v SKIP LOCKED
    )
    DELETE FROM public.clinical_note_versions v USING old
    WHERE v.tenant_id = old.tenant_id AND v.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
    -- Deleted notes (their versions go with them).
    WITH old AS (
        SELECT n.tenant_id, n.id FROM public.clinical_notes n
        WHERE n.deleted_at < v_cut
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM public.clinical_notes n USING old
    WHERE n.tenant_id = old.tenant_id AND n.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
    -- Messages past their consultation's window.
    WITH old AS (
        SELECT m.tenant_id, m.id FROM public.messages m
        JOIN public.consultations c ON c.tenant_id = m.tenant_id AND c.id = m.consultation_id
        JOIN public.tenants t ON t.id = m.tenant_id
        WHERE c.ends_at + pg_catalog.make_interval(days => t.message_retention_days)
              <= LEAST(p_now, pg_catalog.now())
        LIMIT p_limit
        FOR UPDATE OF m SKIP LOCKED
    )
    DELETE FROM public.messages m USING old
    WHERE m.tenant_id = old.tenant_id AND m.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
    -- Their read marks and "new message" notifications (no content, but who talked with whom).
    WITH old AS (
        SELECT r.tenant_id, r.consultation_id, r.user_id FROM public.message_reads r
        JOIN public.consultations c ON c.tenant_id = r.tenant_id AND c.id = r.consultation_id
        JOIN public.tenants t ON t.id = r.tenant_id
        WHERE c.ends_at + pg_catalog.make_interval(days => t.message_retention_days)
              <= LEAST(p_now, pg_catalog.now())
        LIMIT p_limit
        FOR UPDATE OF r SKIP LOCKED
    )
    DELETE FROM public.message_reads r USING old
    WHERE r.tenant_id = old.tenant_id AND r.consultation_id = old.consultation_id
      AND r.user_id = old.user_id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
    WITH old AS (
        SELECT n.tenant_id, n.id FROM public.notifications n
        JOIN public.consultations c ON c.tenant_id = n.tenant_id AND c.id = n.consultation_id
        JOIN public.tenants t ON t.id = n.tenant_id
        WHERE n.kind = 'message_received'
          AND c.ends_at + pg_catalog.make_interval(days => t.message_retention_days)
              <= LEAST(p_now, pg_catalog.now())
        LIMIT p_limit
        FOR UPDATE OF n SKIP LOCKED
    )
    DELETE FROM public.notifications n USING old
    WHERE n.tenant_id = old.tenant_id AND n.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_total + v_n;
END
$$;
REVOKE ALL ON FUNCTION app_private.records_prune(timestamptz, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_private.records_prune(timestamptz, integer, integer) TO serein_worker;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.note_create(uuid, uuid, uuid, bytea, timestamptz)',
        'app_private.note_edit(uuid, integer, uuid, bytea, timestamptz)',
        'app_private.note_delete(uuid, timestamptz)',
        'app_private.journal_create(uuid, bytea, timestamptz)',
        'app_private.message_read_mark(uuid, bigint, timestamptz)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_app', f);
    END LOOP;
END
$$;
