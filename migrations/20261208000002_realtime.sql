-- The realtime gateway (issue 12, items 4–5): a new notification row is announced on the
-- `serein_realtime` channel so the person's open sockets, on any server, push it.
--
-- The payload carries ids only (tenant, person, notification); the receiving server re-reads
-- the row in that person's own transaction, under the notifications policy (own rows only).
-- The trigger runs for every writer (the job worker's `job_notify`, `message_send`), and its
-- notification leaves at COMMIT only: a rolled-back notification is never announced.
CREATE FUNCTION app_private.notifications_announce() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
    AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('serein_realtime', pg_catalog.json_build_object(
        'k', 'notification', 't', NEW.tenant_id, 'u', NEW.user_id, 'id', NEW.id)::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_private.notifications_announce() FROM PUBLIC;
CREATE TRIGGER notifications_announce AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION app_private.notifications_announce();
