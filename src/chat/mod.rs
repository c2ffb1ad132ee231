//! Chat between a consultation's two participants (issue 12, item 3).
//!
//! - `GET /consultations/{id}/messages` (newest first, keyset on the sequence number; `after=`
//!   to catch up oldest first), `POST /consultations/{id}/messages` (send; `client_ref` makes a
//!   retry safe), `POST /consultations/{id}/messages/read` (read mark).
//! - The flows live in [`service`], shared with the WebSocket gateway.
//!
//! Invariants:
//! - Only the consultation's employee and practitioner, and only from booking until the
//!   company's `message_retention_days` after its end (410 `chat_closed` outside; 404 for
//!   anyone else's consultation). The database holds the same alone: messages are readable
//!   under the participants-and-window policy and written only by
//!   `app_private.message_send`, which takes the sender from the session proof (migration
//!   `20261208000001_records.sql`).
//! - Bodies are sealed with the EMPLOYEE's subject key (AAD `v1|tenant|messages|body|{row}`,
//!   the row being the message id bound with its consultation and its sender), so
//!   the employee's erasure crypto-shreds the conversation; the practitioner uses that key only
//!   through the key definer's consultation check. An unopenable message is listed as
//!   `unreadable`.
//! - Each message gets the next sequence number of its consultation, without gaps, in commit
//!   order: `after=<last seen>` never misses or repeats one.
//! - A new message is a notification for the other participant (one unread per consultation),
//!   marked read when they read up to the newest message.
//! - Never logged: bodies. Logs carry consultation and message ids only.

pub mod model;
pub mod service;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::model::{Message, MessagePage, MessageQuery, ReadMark, ReadRequest, SendRequest};
use self::service::Sent;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// Default and largest page of a history.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, send))
        .routes(routes!(read))
}

/// A page of one of the caller's conversations.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/messages", tag = "chat",
    extensions(("x-authz" = json!({"resource": "messages", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id"), MessageQuery),
    responses(
        (status = 200, body = MessagePage),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 410, description = "chat_closed: past the company's message retention window"),
        (status = 422, description = "validation_failed: `after` with `cursor`, or not a number"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<MessageQuery>,
) -> AppResult<Json<MessagePage>> {
    actor.require_company()?;
    let limit = Limit::parse(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = q
        .after
        .as_deref()
        .map(|a| {
            a.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| AppError::invalid("after", "must be a sequence number (0 or more)"))
        })
        .transpose()?;
    if after.is_some() && q.cursor.is_some() {
        return Err(AppError::invalid("after", "cannot be combined with cursor"));
    }
    let before = decode_cursor::<i64>(q.cursor.as_deref())?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let room = service::open_room(&mut tx, id, now).await?;
    let (items, next_cursor) = match after {
        Some(seq) => {
            let rows = service::after(
                &state,
                &mut tx,
                actor.tenant,
                &room,
                (seq, limit.fetch()),
                actor.user,
            )
            .await?;
            page(rows, limit, |m| m.seq)
        }
        None => {
            let rows = service::before(
                &state,
                &mut tx,
                actor.tenant,
                &room,
                (before.unwrap_or(i64::MAX), limit.fetch()),
                actor.user,
            )
            .await?;
            page(rows, limit, |m| m.seq)
        }
    };
    // Catching up continues with `after=<last seq>`, not a cursor.
    let has_more = next_cursor.is_some();
    let next_cursor = next_cursor.filter(|_| after.is_none());
    let reads = service::reads(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(MessagePage {
        items,
        next_cursor,
        has_more,
        reads,
    }))
}

/// Send a message in one of the caller's conversations. 201 for a new message; 200 with the
/// stored message when the same `client_ref` was sent before.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/messages", tag = "chat",
    extensions(("x-authz" = json!({"resource": "messages", "action": "send"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = SendRequest,
    responses(
        (status = 201, body = Message),
        (status = 200, body = Message, description = "A retry: the message stored before"),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 410, description = "chat_closed, or key_destroyed (the employee's data was erased)"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn send(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<SendRequest>,
) -> AppResult<(StatusCode, Json<Message>)> {
    actor.require_company()?;
    let new = req.parse()?;
    match service::send(&state, &actor, id, new).await? {
        Sent::New(m) => Ok((StatusCode::CREATED, Json(m))),
        Sent::Replayed(m) => Ok((StatusCode::OK, Json(m))),
    }
}

/// Mark one of the caller's conversations read up to a sequence number.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/messages/read", tag = "chat",
    extensions(("x-authz" = json!({"resource": "messages", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = ReadRequest,
    responses(
        (status = 200, body = ReadMark),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 410, description = "chat_closed"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn read(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ReadRequest>,
) -> AppResult<Json<ReadMark>> {
    actor.require_company()?;
    Ok(Json(service::mark_read(&state, &actor, id, req.seq).await?))
}
