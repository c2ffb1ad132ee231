-- Files (issue 13, item 6): uploads stored in an object store (src/files/store.rs) under
-- `tenants/{tenant_id}/files/{file_id}`, sealed with AES-256-GCM before they leave the server
-- (AAD `v1|{tenant}|files|content|{id}`), described here by one row each.
--
-- What a row holds: the owner (the PROVEN uploader), the purpose (`avatar`, `attachment`,
-- `article_image`), the type the server sniffed and serves (never the client's claim), the size
-- and SHA-256 of the served bytes, the storage key, a sanitised original name, and the links
-- that make a file readable by others:
--   - avatar: `users.avatar_file_id` names the person's current avatar (one per identity);
--   - attachment: `messages.attachment_id` (one message per file, unique below);
--   - article image: `article_id` + `published_at`, set by `article_images_publish`.
--
-- Who reads what:
--   - the request role SELECTs only its PROVEN person's own live rows in the context company
--     (policy `files_owner_read`); it writes nothing directly;
--   - everything else is decided by ONE definer, `app_private.file_open(id)`, for the proven
--     person: (a) their own file in this company; (b) the current avatar of a person with an
--     active membership in this company (or of themself: a practitioner's avatar shows in
--     every company they serve — the file stays in the company where it was uploaded);
--     (c) an attachment of a message of a consultation of which they are a participant, inside
--     its message window (the messages policy's rule); (d) a PUBLISHED article image, for any
--     proven person of any company (articles are platform-wide). Nothing else: the route
--     answers 404, never 403.
--   - writes: `file_create` (owner from the proof; article images only by a proven
--     practitioner), `file_delete` (owner only: tombstones the row and clears every link),
--     `avatar_set` / `avatar_clear`, `article_images_publish` / `article_images_unpublish`
--     (owner only, across the owner's companies: an article is platform-wide and its author one
--     identity), and `message_send` (replaced below: an attachment must be a live file of
--     purpose `attachment` owned by the proven sender in this company, attached nowhere else).
--   - objects are removed by the job worker (serein_worker): `files_sweep` tombstones unlinked
--     uploads (attachments no message references, avatars that are nobody's current avatar)
--     24 hours after upload — so an attachment whose message was pruned goes too — and returns
--     tombstoned rows; the worker deletes their objects, then `files_forget` deletes the rows.
--     Article images are not swept while unpublished (an article may stay a draft for days);
--     their owner deletes them.
--
-- The cross-company look-ups of (b) and (d) use `files_id_key` on `id` alone (UUIDv7 ids made
-- by the application). It is UNIQUE on purpose, an exception to the `(tenant_id, …)` rule: an id
-- names one file on the whole platform, so nobody running SQL as the request role can plant a
-- file under the id of another company's published image or avatar and have readers served
-- theirs. What the uniqueness error could tell — that an id is taken — is only learnt by someone
-- who already holds the id.

CREATE TABLE files (
    id            uuid NOT NULL,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    owner_id      uuid NOT NULL,
    purpose       text NOT NULL CHECK (purpose IN ('avatar', 'attachment', 'article_image')),
    -- The sniffed (and, for images, re-encoded) type served with the bytes.
    content_type  text NOT NULL
        CHECK (content_type IN ('image/png', 'image/jpeg', 'application/pdf', 'text/plain')),
    size_bytes    bigint NOT NULL CHECK (size_bytes BETWEEN 1 AND 1073741824),
    -- SHA-256 of the served plaintext (checked after opening; the ETag).
    sha256        bytea NOT NULL CHECK (octet_length(sha256) = 32),
    storage_key   text NOT NULL,
    -- The sanitised original name (no path, no control characters), for Content-Disposition.
    file_name     text NOT NULL CHECK (char_length(file_name) BETWEEN 1 AND 255
                                       AND file_name !~ '[/\\[:cntrl:]]'),
    article_id    uuid,
    published_at  timestamptz,
    created_at    timestamptz NOT NULL,
    -- Tombstone: the object is being removed (the sweep deletes it, then the row).
    deleted_at    timestamptz,
    CONSTRAINT files_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT files_storage_key_key UNIQUE (tenant_id, storage_key),
    CONSTRAINT files_storage_key_check
        CHECK (storage_key = 'tenants/' || tenant_id::text || '/files/' || id::text),
    CONSTRAINT files_published_check CHECK ((article_id IS NULL) = (published_at IS NULL)),
    CONSTRAINT files_article_purpose_check CHECK (article_id IS NULL OR purpose = 'article_image'),
    CONSTRAINT files_image_purpose_check
        CHECK (purpose = 'attachment' OR content_type IN ('image/png', 'image/jpeg'))
);
CREATE INDEX files_owner_idx ON files (tenant_id, owner_id, created_at);
CREATE INDEX files_article_idx ON files (tenant_id, article_id) WHERE article_id IS NOT NULL;
CREATE UNIQUE INDEX files_id_key ON files (id);
CREATE INDEX files_deleted_idx ON files (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY files_owner_read ON files
    FOR SELECT TO serein_app
    USING (tenant_id = (SELECT app.current_tenant())
           AND owner_id = (SELECT app_private.proven_person())
           AND deleted_at IS NULL);
GRANT SELECT ON files TO serein_app;

-- A person's current avatar (a file of theirs, purpose `avatar`, in any company of theirs).
ALTER TABLE users ADD COLUMN avatar_file_id uuid;
GRANT SELECT (avatar_file_id) ON users TO serein_app;

-- One message per attachment.
CREATE UNIQUE INDEX messages_attachment_key ON messages (tenant_id, attachment_id)
    WHERE attachment_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- The request role's doors.

-- Record an upload of the PROVEN person (its object is written by the caller in the same
-- transaction). Outcomes: 'created', 'forbidden' (an article image by a non-practitioner),
-- 'not_found' (no proven person).
CREATE FUNCTION app_private.file_create(p_id uuid, p_purpose text, p_content_type text,
                                        p_size bigint, p_sha256 bytea, p_file_name text,
                                        p_now timestamptz)
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
    INSERT INTO public.files (id, tenant_id, owner_id, purpose, content_type, size_bytes, sha256,
                              storage_key, file_name, created_at)
    VALUES (p_id, v_tenant, v_me, p_purpose, p_content_type, p_size, p_sha256,
            'tenants/' || v_tenant::text || '/files/' || p_id::text, p_file_name,
            app_private.record_time(p_now));
    RETURN 'created';
END
$$;

-- A file the PROVEN person may read (the rules of the header), or no row.
CREATE FUNCTION app_private.file_open(p_id uuid)
    RETURNS TABLE (tenant_id uuid, id uuid, owner_id uuid, purpose text, content_type text,
                   size_bytes bigint, sha256 bytea, storage_key text, file_name text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR p_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT f.tenant_id, f.id, f.owner_id, f.purpose, f.content_type, f.size_bytes, f.sha256,
               f.storage_key, f.file_name
        FROM public.files f
        WHERE f.id = p_id AND f.deleted_at IS NULL
          AND (
            -- (a) one's own, in this company
            (f.tenant_id = v_tenant AND f.owner_id = v_me)
            -- (b) the current avatar of oneself or of an active member of this company
            OR (f.purpose = 'avatar'
                AND EXISTS (SELECT 1 FROM public.users u
                            WHERE u.id = f.owner_id AND u.avatar_file_id = f.id)
                AND (f.owner_id = v_me
                     OR EXISTS (SELECT 1 FROM public.memberships m
                                WHERE m.tenant_id = v_tenant AND m.user_id = f.owner_id
                                  AND m.status = 'active')))
            -- (c) an attachment of a message the person may read
            OR (f.purpose = 'attachment' AND f.tenant_id = v_tenant
                AND EXISTS (SELECT 1 FROM public.messages m
                            JOIN public.consultations c
                              ON c.tenant_id = m.tenant_id AND c.id = m.consultation_id
                            JOIN public.tenants t ON t.id = c.tenant_id
                            WHERE m.tenant_id = v_tenant AND m.attachment_id = f.id
                              AND v_me IN (c.employee_id, c.practitioner_id)
                              AND pg_catalog.now() >= c.created_at
                              AND pg_catalog.now() < c.ends_at
                                    + pg_catalog.make_interval(days => t.message_retention_days)))
            -- (d) a published article image
            OR (f.purpose = 'article_image' AND f.published_at IS NOT NULL))
        LIMIT 1;
END
$$;

-- Delete a file of the PROVEN person's in this company: tombstone it and clear every link (their
-- avatar, a message's attachment — the message stays and shows no attachment —, a
-- publication). Returns the storage key (the caller removes the object after commit; the sweep
-- finishes if that fails), or NULL: not theirs, or no such live file.
CREATE FUNCTION app_private.file_delete(p_id uuid, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_key text;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE public.files f
    SET deleted_at = app_private.record_time(p_now), article_id = NULL, published_at = NULL
    WHERE f.tenant_id = v_tenant AND f.id = p_id AND f.owner_id = v_me AND f.deleted_at IS NULL
    RETURNING f.storage_key INTO v_key;
    IF v_key IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE public.users u SET avatar_file_id = NULL WHERE u.id = v_me AND u.avatar_file_id = p_id;
    UPDATE public.messages m SET attachment_id = NULL
    WHERE m.tenant_id = v_tenant AND m.attachment_id = p_id;
    RETURN v_key;
END
$$;

-- Make a live avatar file of the PROVEN person's (in this company) their avatar; the previous
-- one is tombstoned (in whichever company it was uploaded). False: no such file of theirs.
CREATE FUNCTION app_private.avatar_set(p_file uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_old uuid;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL OR NOT EXISTS (
        SELECT 1 FROM public.files f
        WHERE f.tenant_id = v_tenant AND f.id = p_file AND f.owner_id = v_me
          AND f.purpose = 'avatar' AND f.deleted_at IS NULL) THEN
        RETURN false;
    END IF;
    SELECT u.avatar_file_id INTO v_old FROM public.users u WHERE u.id = v_me FOR UPDATE;
    IF v_old IS NOT NULL AND v_old <> p_file THEN
        UPDATE public.files f SET deleted_at = app_private.record_time(p_now)
        WHERE f.id = v_old AND f.owner_id = v_me AND f.deleted_at IS NULL;
    END IF;
    UPDATE public.users u SET avatar_file_id = p_file WHERE u.id = v_me;
    RETURN true;
END
$$;

-- Remove the PROVEN person's avatar (the file is tombstoned). False: they had none.
CREATE FUNCTION app_private.avatar_clear(p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_old uuid;
BEGIN
    IF v_me IS NULL OR app.current_tenant() IS NULL THEN
        RETURN false;
    END IF;
    SELECT u.avatar_file_id INTO v_old FROM public.users u WHERE u.id = v_me FOR UPDATE;
    IF v_old IS NULL THEN
        RETURN false;
    END IF;
    UPDATE public.files f SET deleted_at = app_private.record_time(p_now)
    WHERE f.id = v_old AND f.owner_id = v_me AND f.deleted_at IS NULL;
    UPDATE public.users u SET avatar_file_id = NULL WHERE u.id = v_me;
    RETURN true;
END
$$;

-- Publish the PROVEN person's article images for p_article (content feature). Every id must be
-- a live `article_image` file of theirs (in any of their companies) not published for another
-- article; otherwise nothing changes and NULL is returned. Returns how many were published.
CREATE FUNCTION app_private.article_images_publish(p_article uuid, p_files uuid[], p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_wanted integer;
    v_ok integer;
    v_n integer;
BEGIN
    IF v_me IS NULL OR p_article IS NULL OR p_files IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(DISTINCT x) INTO v_wanted FROM pg_catalog.unnest(p_files) AS x;
    SELECT count(*) INTO v_ok FROM public.files f
    WHERE f.id = ANY (p_files) AND f.owner_id = v_me AND f.purpose = 'article_image'
      AND f.deleted_at IS NULL AND (f.article_id IS NULL OR f.article_id = p_article);
    IF v_ok <> v_wanted OR pg_catalog.array_position(p_files, NULL) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    UPDATE public.files f
    SET article_id = p_article,
        published_at = COALESCE(f.published_at, app_private.record_time(p_now))
    WHERE f.id = ANY (p_files) AND f.owner_id = v_me AND f.purpose = 'article_image'
      AND f.deleted_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Withdraw every image the PROVEN person published for p_article. Returns how many.
CREATE FUNCTION app_private.article_images_unpublish(p_article uuid)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_n integer;
BEGIN
    IF v_me IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE public.files f SET article_id = NULL, published_at = NULL
    WHERE f.article_id = p_article AND f.owner_id = v_me;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Send a message (migration 20261208000001), now with an attachment: a live file of purpose
-- `attachment` owned by the PROVEN sender in this company and attached to no other message
-- (else 'invalid_attachment', nothing written). Every other check is unchanged.
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

-- ---------------------------------------------------------------------------------------------
-- The job worker's doors (serein_worker only; no tenant context).

-- Tombstone unlinked uploads older than a day, then return up to p_limit tombstoned rows
-- (locked: two workers never take the same) for the worker to delete their objects.
CREATE FUNCTION app_private.files_sweep(p_now timestamptz, p_limit integer)
    RETURNS TABLE (tenant_id uuid, id uuid, storage_key text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_cut timestamptz := LEAST(p_now, pg_catalog.now()) - interval '24 hours';
BEGIN
    PERFORM app_private.job_door();
    UPDATE public.files f SET deleted_at = LEAST(p_now, pg_catalog.now())
    WHERE f.deleted_at IS NULL AND f.created_at < v_cut
      AND ((f.purpose = 'attachment'
            AND NOT EXISTS (SELECT 1 FROM public.messages m
                            WHERE m.tenant_id = f.tenant_id AND m.attachment_id = f.id))
        OR (f.purpose = 'avatar'
            AND NOT EXISTS (SELECT 1 FROM public.users u
                            WHERE u.id = f.owner_id AND u.avatar_file_id = f.id)));
    RETURN QUERY
        SELECT f.tenant_id, f.id, f.storage_key FROM public.files f
        WHERE f.deleted_at IS NOT NULL
        ORDER BY f.deleted_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED;
END
$$;

-- Forget tombstoned rows whose objects the worker removed. Returns how many.
CREATE FUNCTION app_private.files_forget(p_tenants uuid[], p_ids uuid[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM app_private.job_door();
    DELETE FROM public.files f
    USING ROWS FROM (pg_catalog.unnest(p_tenants), pg_catalog.unnest(p_ids)) AS x(tenant_id, id)
    WHERE f.tenant_id = x.tenant_id AND f.id = x.id AND f.deleted_at IS NOT NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Offboarding: the purge job deletes an offboarded company's rows (files included, from the
-- catalogue) but knows no object store. The job worker then removes the company's whole prefix
-- `tenants/{id}/` and records it here, so avatars and article images (sealed under the
-- platform-level key, which outlives the company) do not stay behind.
ALTER TABLE tenants ADD COLUMN files_removed_at timestamptz;

-- Offboarded companies whose objects are still to be removed (locked, up to p_limit).
CREATE FUNCTION app_private.files_offboarded(p_limit integer)
    RETURNS TABLE (tenant_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    RETURN QUERY
        SELECT t.id FROM public.tenants t
        WHERE t.status = 'offboarded' AND t.files_removed_at IS NULL
        ORDER BY t.offboarded_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED;
END
$$;

-- Record that an offboarded company's objects are gone.
CREATE FUNCTION app_private.files_offboarded_done(p_tenant uuid, p_now timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    PERFORM app_private.job_door();
    UPDATE public.tenants t SET files_removed_at = p_now
    WHERE t.id = p_tenant AND t.status = 'offboarded';
END
$$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app_private.file_create(uuid, text, text, bigint, bytea, text, timestamptz)',
        'app_private.file_open(uuid)',
        'app_private.file_delete(uuid, timestamptz)',
        'app_private.avatar_set(uuid, timestamptz)',
        'app_private.avatar_clear(timestamptz)',
        'app_private.article_images_publish(uuid, uuid[], timestamptz)',
        'app_private.article_images_unpublish(uuid)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_app', f);
    END LOOP;
    FOREACH f IN ARRAY ARRAY[
        'app_private.files_sweep(timestamptz, integer)',
        'app_private.files_forget(uuid[], uuid[])',
        'app_private.files_offboarded(integer)',
        'app_private.files_offboarded_done(uuid, timestamptz)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO serein_worker', f);
    END LOOP;
END
$$;
