//! The chat flows, shared by the REST routes and the WebSocket gateway: send, read a page,
//! catch up after a sequence number, mark read. Each runs in the caller's own `TenantTx`, so
//! the messages policies (participants only, inside the window) hold whatever the transport.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Message, NewMessage, ReadMark};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::crypto::keyring::{Aad, CryptoError, KeyScope, Keyring};
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult};

const TABLE: &str = "messages";
const COLUMN: &str = "body";

/// A consultation seen as a conversation.
#[derive(Debug, Clone)]
pub struct Room {
    pub consultation: Uuid,
    pub employee: UserId,
    pub practitioner: UserId,
    pub created_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub retention_days: i32,
}

impl Room {
    /// Open from booking until `retention_days` after the end.
    pub fn open_at(&self, now: OffsetDateTime) -> bool {
        now >= self.created_at
            && now < self.ends_at + time::Duration::days(i64::from(self.retention_days))
    }

    /// The other participant.
    pub fn other(&self, me: UserId) -> UserId {
        if me == self.employee {
            self.practitioner
        } else {
            self.employee
        }
    }
}

/// 410 `chat_closed`.
pub fn closed() -> AppError {
    AppError::Gone("chat_closed")
}

/// The consultation as a room, when the caller is one of its participants here (the
/// consultations policy shows it to them only).
pub async fn room(conn: &mut PgConnection, id: Uuid) -> Result<Option<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        r#"SELECT c.id AS consultation, c.employee_id AS "employee: UserId",
                  c.practitioner_id AS "practitioner: UserId", c.created_at, c.ends_at,
                  t.message_retention_days AS retention_days
           FROM consultations c JOIN tenants t ON t.id = c.tenant_id
           WHERE c.tenant_id = app.current_tenant() AND c.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The caller's open room, or 404 / 410.
pub async fn open_room(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> AppResult<Room> {
    let room = room(conn, id).await?.ok_or(AppError::NotFound)?;
    if !room.open_at(now) {
        return Err(closed());
    }
    Ok(room)
}

/// The body's AAD: the row id bound with its consultation and its sender (a body moved to
/// another row, another consultation, or re-attributed to the other participant does not open).
fn aad(tenant: TenantId, id: Uuid, consultation: Uuid, sender: UserId) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: COLUMN,
        row_id: Aad::bound_row(id, &[consultation.as_bytes(), sender.as_uuid().as_bytes()]),
    }
}

struct Row {
    id: Uuid,
    seq: i64,
    sender_id: UserId,
    body: Vec<u8>,
    attachment_id: Option<Uuid>,
    client_ref: Option<String>,
    created_at: OffsetDateTime,
}

async fn to_message(
    keyring: &Keyring,
    conn: &mut PgConnection,
    tenant: TenantId,
    room: &Room,
    row: Row,
) -> Result<Message, AppError> {
    let body = match keyring
        .open(
            conn,
            tenant,
            KeyScope::Subject(room.employee),
            &aad(tenant, row.id, room.consultation, row.sender_id),
            &row.body,
        )
        .await
    {
        Ok(plain) => String::from_utf8(plain.to_vec()).ok(),
        Err(CryptoError::Unreadable | CryptoError::Destroyed) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Message {
        id: row.id,
        consultation_id: room.consultation,
        seq: row.seq,
        sender_id: row.sender_id,
        unreadable: body.is_none(),
        body,
        attachment_id: row.attachment_id,
        client_ref: row.client_ref,
        created_at: row.created_at,
    })
}

async fn open_rows(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: TenantId,
    room: &Room,
    rows: Vec<Row>,
    viewer: UserId,
) -> AppResult<Vec<Message>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut m = to_message(&state.keyring, conn, tenant, room, row).await?;
        // The sender's own id for a message is theirs to see.
        if m.sender_id != viewer {
            m.client_ref = None;
        }
        out.push(m);
    }
    Ok(out)
}

/// What a send did.
#[derive(Debug)]
pub enum Sent {
    /// Stored now.
    New(Message),
    /// The same `client_ref` was sent before: the stored message, nothing new.
    Replayed(Message),
}

/// Send a message as `actor` in one of their open rooms, in its own transaction. The
/// recipient's notification and the live-delivery signal are written by the same definer and
/// leave at commit.
pub async fn send(
    state: &AppState,
    actor: &Actor,
    consultation: Uuid,
    new: NewMessage,
) -> AppResult<Sent> {
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    let room = open_room(&mut tx, consultation, now).await?;
    let id = Uuid::now_v7();
    let sealed = state
        .keyring
        .seal(
            &mut tx,
            actor.tenant,
            KeyScope::Subject(room.employee),
            &aad(actor.tenant, id, consultation, actor.user),
            new.body.as_bytes(),
        )
        .await?;
    // An attachment is sealed for the conversation's employee, like the body (a practitioner's
    // upload is re-wrapped to the employee's key here, in this transaction).
    if let Some(file) = new.attachment_id {
        crate::files::service::seal_attachment_for(
            &state.keyring,
            &mut tx,
            actor.tenant,
            file,
            room.employee,
        )
        .await?;
    }
    let out = sqlx::query!(
        r#"SELECT outcome AS "outcome!", id, seq, created_at
           FROM app_private.message_send($1, $2, $3, $4, $5, $6)"#,
        id,
        consultation,
        sealed,
        new.attachment_id,
        new.client_ref,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    match out.outcome.as_str() {
        "sent" => {
            tx.commit().await?;
            tracing::info!(consultation = %consultation, message = %id, "message sent");
            Ok(Sent::New(Message {
                id,
                consultation_id: consultation,
                seq: out.seq.unwrap_or_default(),
                sender_id: actor.user,
                body: Some(new.body),
                unreadable: false,
                attachment_id: new.attachment_id,
                client_ref: new.client_ref,
                created_at: out.created_at.unwrap_or(now),
            }))
        }
        "duplicate" => {
            let seq = out.seq.unwrap_or_default();
            let stored = after(
                state,
                &mut tx,
                actor.tenant,
                &room,
                (seq.saturating_sub(1), 1),
                actor.user,
            )
            .await?
            .into_iter()
            .next()
            .ok_or(AppError::NotFound)?;
            tx.commit().await?;
            Ok(Sent::Replayed(stored))
        }
        "closed" => Err(closed()),
        "invalid_attachment" => Err(AppError::invalid(
            "attachment_id",
            "must be an upload of yours with purpose `attachment`, not attached to another message",
        )),
        _ => Err(AppError::NotFound),
    }
}

/// Messages after `seq`, oldest first, at most `limit`, as `viewer` sees them.
pub async fn after(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: TenantId,
    room: &Room,
    (seq, limit): (i64, i64),
    viewer: UserId,
) -> AppResult<Vec<Message>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, seq, sender_id AS "sender_id: UserId", body, attachment_id, client_ref, created_at
           FROM messages
           WHERE tenant_id = app.current_tenant() AND consultation_id = $1 AND seq > $2
           ORDER BY seq
           LIMIT $3"#,
        room.consultation,
        seq,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    open_rows(state, conn, tenant, room, rows, viewer).await
}

/// Messages before `seq`, newest first, at most `limit`, as `viewer` sees them.
pub async fn before(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: TenantId,
    room: &Room,
    (seq, limit): (i64, i64),
    viewer: UserId,
) -> AppResult<Vec<Message>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, seq, sender_id AS "sender_id: UserId", body, attachment_id, client_ref, created_at
           FROM messages
           WHERE tenant_id = app.current_tenant() AND consultation_id = $1 AND seq < $2
           ORDER BY seq DESC
           LIMIT $3"#,
        room.consultation,
        seq,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    open_rows(state, conn, tenant, room, rows, viewer).await
}

/// Both participants' read marks.
pub async fn reads(
    conn: &mut PgConnection,
    consultation: Uuid,
) -> Result<Vec<ReadMark>, sqlx::Error> {
    sqlx::query_as!(
        ReadMark,
        r#"SELECT user_id AS "user_id: UserId", last_read_seq, read_at FROM message_reads
           WHERE tenant_id = app.current_tenant() AND consultation_id = $1
           ORDER BY user_id"#,
        consultation
    )
    .fetch_all(conn)
    .await
}

/// Mark the room read up to `seq` (never backwards; capped at the newest message). Reaching the
/// newest message also marks the room's "new message" notifications read.
pub async fn mark_read(
    state: &AppState,
    actor: &Actor,
    consultation: Uuid,
    seq: i64,
) -> AppResult<ReadMark> {
    if seq < 0 {
        return Err(AppError::invalid("seq", "must be at least 0"));
    }
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    open_room(&mut tx, consultation, now).await?;
    // The definer caps the mark at the newest message, never moves it back, and clears the
    // room's "new message" notifications once the newest is read.
    let mark = sqlx::query_as!(
        ReadMark,
        r#"SELECT user_id AS "user_id!: UserId", last_read_seq AS "last_read_seq!",
                  read_at AS "read_at!"
           FROM app_private.message_read_mark($1, $2, $3)"#,
        consultation,
        seq,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(closed)?;
    tx.commit().await?;
    Ok(mark)
}
