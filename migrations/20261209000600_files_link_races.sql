-- Files: the orphan sweep never tombstones a file that is being linked (review finding 3).
--
-- Before: `files_sweep` decided "unlinked" on its own snapshot inside one UPDATE. A concurrent
-- `message_send` that had locked the file row and inserted a message referencing it made the
-- UPDATE wait for the lock, then tombstone the row anyway (the NOT EXISTS sub-query kept the
-- old snapshot), leaving a message pointing at a tombstoned file; `avatar_set` did not lock
-- the file row at all, so it could make a file being swept someone's avatar.
--
-- Now every door that creates a link locks the file row (`message_send` already did: `FOR
-- UPDATE` on the file; `avatar_set` now too; `article_images_publish` is not swept —
-- article images never are), and the sweep
--   1. picks unlinked-looking candidates with `FOR UPDATE SKIP LOCKED` (a row a linker holds is
--      skipped, retried next round; at most 1,000 a call), then
--   2. re-checks the links in a NEW statement — a new snapshot, taken while it holds the rows'
--      locks — and tombstones only those still unlinked.
-- A linker that commits before step 2's snapshot is seen by it; one that comes after waits for
-- the sweep's lock and then finds the row tombstoned (`deleted_at IS NULL` fails on re-check:
-- 'invalid_attachment', or false from `avatar_set`). Either way no link names a tombstone.

CREATE OR REPLACE FUNCTION app_private.files_sweep(p_now timestamptz, p_limit integer)
    RETURNS TABLE (tenant_id uuid, id uuid, storage_key text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_at timestamptz := LEAST(p_now, pg_catalog.now());
    v_cut timestamptz := LEAST(p_now, pg_catalog.now()) - interval '24 hours';
    v_tenants uuid[];
    v_ids uuid[];
BEGIN
    PERFORM app_private.job_door();
    -- 1. Candidates, locked; rows a linker holds are skipped.
    SELECT pg_catalog.array_agg(c.tenant_id), pg_catalog.array_agg(c.id)
    INTO v_tenants, v_ids
    FROM (SELECT f.tenant_id, f.id FROM public.files f
          WHERE f.deleted_at IS NULL AND f.created_at < v_cut
            AND f.purpose IN ('attachment', 'avatar')
          ORDER BY f.created_at
          LIMIT 1000
          FOR UPDATE SKIP LOCKED) c;
    -- 2. The links, re-checked on a snapshot taken while the rows are locked.
    IF v_ids IS NOT NULL THEN
        UPDATE public.files f SET deleted_at = v_at
        FROM ROWS FROM (pg_catalog.unnest(v_tenants), pg_catalog.unnest(v_ids)) AS x(tenant_id, id)
        WHERE f.tenant_id = x.tenant_id AND f.id = x.id AND f.deleted_at IS NULL
          AND ((f.purpose = 'attachment'
                AND NOT EXISTS (SELECT 1 FROM public.messages m
                                WHERE m.tenant_id = f.tenant_id AND m.attachment_id = f.id))
            OR (f.purpose = 'avatar'
                AND NOT EXISTS (SELECT 1 FROM public.users u
                                WHERE u.id = f.owner_id AND u.avatar_file_id = f.id)));
    END IF;
    RETURN QUERY
        SELECT f.tenant_id, f.id, f.storage_key FROM public.files f
        WHERE f.deleted_at IS NOT NULL
        ORDER BY f.deleted_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED;
END
$$;

-- Make a live avatar file of the PROVEN person's (in this company) their avatar; the previous
-- one is tombstoned. Unchanged but for the lock: the file row is locked (`FOR UPDATE`) while it
-- is checked, so the sweep either skips it or, holding it first, is waited for (and then the
-- file is no longer live: false).
CREATE OR REPLACE FUNCTION app_private.avatar_set(p_file uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
DECLARE
    v_me uuid := app_private.proven_person();
    v_tenant uuid := app.current_tenant();
    v_old uuid;
BEGIN
    IF v_me IS NULL OR v_tenant IS NULL THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM public.files f
    WHERE f.tenant_id = v_tenant AND f.id = p_file AND f.owner_id = v_me
      AND f.purpose = 'avatar' AND f.deleted_at IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
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
