-- Files: attachments are crypto-shredded with the person's data (review finding 4).
--
-- Before: attachments were sealed under the company's clinical key, so an attached medical PDF
-- survived the erasure of its person (DESIGN §3: one person's journal and messages die with
-- their subject key). Now an attachment is sealed like a message body:
--   - its content under a random per-file data key (the object in the store), and that key
--     wrapped under a SUBJECT key (`files.wrapped_key`, `files.sealed_for`) — envelope
--     encryption, so changing whose key protects a file rewrites 60 bytes in this row, in the
--     same transaction as the message, never the object;
--   - at upload, under the UPLOADER's own subject key (`file_create` now takes the wrapped key);
--   - when it is attached, it must be under the consultation's EMPLOYEE's subject key (the
--     key of the conversation): the employee's own uploads already are; a practitioner's upload
--     is re-wrapped from their key to the employee's by `file_key_set` in the send transaction
--     (the practitioner may use the employee's key inside the consultation's message window:
--     `subject_key_reader_may`), and `message_send` refuses an attachment sealed for anyone
--     else ('invalid_attachment').
-- Destroying the employee's subject key therefore makes the conversation's attachments, and
-- the employee's own unattached uploads, unreadable (GET → 410 `file_unavailable`), and
-- nobody else's. Older attachments (sealed_for NULL) stay readable under the clinical key
-- until they are swept; they can no longer be attached.
-- Avatars and article images keep the platform identity key (read from other companies).

ALTER TABLE files ADD COLUMN sealed_for uuid, ADD COLUMN wrapped_key bytea;
ALTER TABLE files ADD CONSTRAINT files_sealed_for_check
    CHECK ((sealed_for IS NULL) = (wrapped_key IS NULL)
           AND (sealed_for IS NULL OR purpose = 'attachment'));

-- Record an upload of the PROVEN person; an attachment must come with its data key wrapped
-- under the uploader's own subject key (else 'invalid_key'); other purposes with none.
DROP FUNCTION app_private.file_create(uuid, text, text, bigint, bytea, text, timestamptz);
CREATE FUNCTION app_private.file_create(p_id uuid, p_purpose text, p_content_type text,
                                        p_size bigint, p_sha256 bytea, p_file_name text,
                                        p_wrapped_key bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN 'not_found';
    END IF;
    IF p_purpose = 'article_image' AND NOT app_private.proven_holds('practitioner') THEN
        RETURN 'forbidden';
    END IF;
    IF (p_purpose = 'attachment') <> (p_wrapped_key IS NOT NULL) THEN
        RETURN 'invalid_key';
    END IF;
    INSERT INTO public.files (id, tenant_id, owner_id, purpose, content_type, size_bytes, sha256,
                              storage_key, file_name, created_at, sealed_for, wrapped_key)
    VALUES (p_id, v_tenant, v_me, p_purpose, p_content_type, p_size, p_sha256,
            'tenants/' || v_tenant::text || '/files/' || p_id::text, p_file_name,
            app_private.record_time(p_now),
            CASE WHEN p_wrapped_key IS NULL THEN NULL ELSE v_me END, p_wrapped_key);
    RETURN 'created';
END
$$;

-- Re-wrap the data key of an attachment of the PROVEN person's (live, in this company, not yet
-- attached: an attached file's key is the conversation's and stays) under p_subject's key:
-- their own, or the employee of a consultation of theirs whose window is open (the same rule
-- that serves that key). The row is locked by the UPDATE until the caller's transaction ends.
-- False: refused, nothing changed.
CREATE FUNCTION app_private.file_key_set(p_file uuid, p_subject uuid, p_wrapped bytea)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR p_wrapped IS NULL
       OR NOT app_private.subject_key_reader_may(p_subject) THEN
        RETURN false;
    END IF;
    UPDATE public.files f SET sealed_for = p_subject, wrapped_key = p_wrapped
    WHERE f.tenant_id = v_tenant AND f.id = p_file AND f.owner_id = v_me
      AND f.purpose = 'attachment' AND f.deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM public.messages m
                      WHERE m.tenant_id = v_tenant AND m.attachment_id = f.id);
    RETURN FOUND;
END
$$;

-- The wrapped data key of a file the PROVEN person may read (whatever `file_open` allows), and
-- whose subject key wraps it; no row otherwise.
CREATE FUNCTION app_private.file_key(p_id uuid)
    RETURNS TABLE (sealed_for uuid, wrapped_key bytea)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
    SELECT f.sealed_for, f.wrapped_key
    FROM app_private.file_open(p_id) o
    JOIN public.files f ON f.tenant_id = o.tenant_id AND f.id = o.id
$$;

-- Send a message: unchanged but for the attachment, which must be sealed for the
-- consultation's employee (above).
CREATE OR REPLACE FUNCTION app_private.message_send(p_id uuid, p_consultation uuid, p_body bytea,
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
    IF p_attachment IS NOT NULL THEN
        -- The file row is locked so a concurrent delete or second attach waits for this one.
        PERFORM 1 FROM public.files f
        WHERE f.tenant_id = v_tenant AND f.id = p_attachment AND f.owner_id = v_me
          AND f.purpose = 'attachment' AND f.deleted_at IS NULL
          -- sealed under the consultation's employee's subject key, like the body
          AND f.sealed_for = v_c.employee_id
        FOR UPDATE;
        IF NOT FOUND OR EXISTS (SELECT 1 FROM public.messages m
                                WHERE m.tenant_id = v_tenant AND m.attachment_id = p_attachment) THEN
            RETURN QUERY SELECT 'invalid_attachment'::text, NULL::uuid, NULL::bigint, NULL::uuid,
                                NULL::timestamptz;
            RETURN;
        END IF;
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


DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.file_create(uuid, text, text, bigint, bytea, text, bytea, timestamptz)',
        'app_private.file_key_set(uuid, uuid, bytea)',
        'app_private.file_key(uuid)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_app', f);
    END LOOP;
END
$$;
