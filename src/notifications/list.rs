//! The caller's notification list, polling and read marks.
//!
//! Invariants:
//! - Two orders over the same rows, never mixed: without `since`, newest first (cursor: the
//!   last row's `(created_at, id)`, continuing backwards); with `since`, oldest first from
//!   just after `since` (cursor: `{"after": …}`, continuing forwards). A cursor of one order
//!   given to the other is a 400 `invalid_cursor`.
//! - `since` is compared with `created_at` as stored (the server's clock when the row was
//!   written): a poller passes back the `created_at` of the newest row it saw, never its own
//!   clock, so clock skew between client, server and database loses nothing.
//! - Only the caller's own rows in this company are read or marked (the table's policies on
//!   the proven person back the `user_id` filters).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Notification;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// A page of notifications: newest first, or oldest first when polling with `since`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
    /// The caller's unread notifications in this company (all pages).
    pub unread: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// A `next_cursor` of the same kind of listing (with `since`: pass the same `since`).
    pub cursor: Option<String>,
    /// `true`: unread ones only.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
    /// Polling: only notifications created strictly after this RFC 3339 time, oldest first.
    /// Pass the `created_at` of the newest notification already seen.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
}

/// `read-all`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Marked {
    pub marked: u64,
}

/// The polling order's cursor (distinct from the newest-first one's bare pair).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct After {
    after: (OffsetDateTime, Uuid),
}

fn unread_only(raw: Option<&str>) -> Result<bool, AppError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(AppError::invalid("unread", "must be true or false")),
    }
}

fn parse_since(raw: Option<&str>) -> Result<Option<OffsetDateTime>, AppError> {
    raw.map(|s| {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map_err(|_| AppError::invalid("since", "must be an RFC 3339 date-time"))
    })
    .transpose()
}

/// The caller's notifications in this company: newest first, or (with `since`) those created
/// after `since`, oldest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notifications", "action": "read"}))),
    security(("bearer" = [])),
    params(NotificationQuery),
    responses(
        (status = 200, body = NotificationPage),
        (status = 422, description = "A bad `limit`, `unread` or `since`"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<NotificationQuery>,
) -> AppResult<Json<NotificationPage>> {
    actor.require_company()?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let unread = unread_only(q.unread.as_deref())?;
    let since = parse_since(q.since.as_deref())?;
    let me = actor.user.as_uuid();
    let (rows, next_cursor, mut tx) = match since {
        Some(since) => {
            let after = decode_cursor::<After>(q.cursor.as_deref())?;
            // Strictly after `since`: no id sorts after the largest one.
            let (at, id) = after.map_or((since, Uuid::max()), |a| a.after);
            let mut tx = actor.begin(&state).await?;
            let rows = sqlx::query_as!(
                Notification,
                r#"SELECT id, kind, consultation_id, starts_at, created_at, read_at
                   FROM notifications
                   WHERE tenant_id = app.current_tenant() AND user_id = $1
                     AND (NOT $2 OR read_at IS NULL)
                     AND (created_at, id) > ($3, $4)
                   ORDER BY created_at, id
                   LIMIT $5"#,
                me,
                unread,
                at,
                id,
                limit.fetch()
            )
            .fetch_all(&mut *tx)
            .await?;
            let (rows, next) = page(rows, limit, |n| After {
                after: (n.created_at, n.id),
            });
            (rows, next, tx)
        }
        None => {
            let before = decode_cursor::<(OffsetDateTime, Uuid)>(q.cursor.as_deref())?;
            // The first page starts after the newest possible key.
            let (at, id) =
                before.unwrap_or((time::macros::datetime!(9999-12-31 0:00 UTC), Uuid::max()));
            let mut tx = actor.begin(&state).await?;
            let rows = sqlx::query_as!(
                Notification,
                r#"SELECT id, kind, consultation_id, starts_at, created_at, read_at
                   FROM notifications
                   WHERE tenant_id = app.current_tenant() AND user_id = $1
                     AND (NOT $2 OR read_at IS NULL)
                     AND (created_at, id) < ($3, $4)
                   ORDER BY created_at DESC, id DESC
                   LIMIT $5"#,
                me,
                unread,
                at,
                id,
                limit.fetch()
            )
            .fetch_all(&mut *tx)
            .await?;
            let (rows, next) = page(rows, limit, |n| (n.created_at, n.id));
            (rows, next, tx)
        }
    };
    let unread_count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications
           WHERE tenant_id = app.current_tenant() AND user_id = $1 AND read_at IS NULL"#,
        me
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(NotificationPage {
        items: rows,
        next_cursor,
        unread: unread_count,
    }))
}

/// Mark one of the caller's notifications read (idempotent: the first time is kept).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notifications", "action": "mark"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 204, description = "Read"),
        (status = 404, description = "Not one of the caller's notifications here"),
    ))]
#[tracing::instrument(skip_all, fields(notification = %id))]
pub async fn mark_read(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let done = sqlx::query!(
        r#"UPDATE notifications SET read_at = coalesce(read_at, greatest($3, created_at))
           WHERE tenant_id = app.current_tenant() AND user_id = $1 AND id = $2"#,
        actor.user.as_uuid(),
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark all of the caller's notifications in this company read.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notifications", "action": "mark"}))),
    security(("bearer" = [])),
    responses((status = 200, body = Marked)))]
#[tracing::instrument(skip_all)]
pub async fn mark_all_read(State(state): State<AppState>, actor: Actor) -> AppResult<Json<Marked>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let done = sqlx::query!(
        r#"UPDATE notifications SET read_at = greatest($2, created_at)
           WHERE tenant_id = app.current_tenant() AND user_id = $1 AND read_at IS NULL"#,
        actor.user.as_uuid(),
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Marked {
        marked: done.rows_affected(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::pagination::encode_cursor;

    #[test]
    fn since_is_rfc3339_or_a_validation_error() {
        assert_eq!(
            parse_since(Some("2026-12-06T10:00:00+01:00")).unwrap(),
            Some(time::macros::datetime!(2026-12-06 9:00 UTC))
        );
        assert_eq!(parse_since(None).unwrap(), None);
        for bad in ["yesterday", "2026-12-06", "2026-12-06 10:00", ""] {
            assert!(
                matches!(parse_since(Some(bad)), Err(AppError::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_two_orders_cursors_do_not_mix() {
        let key = (time::macros::datetime!(2026-12-06 9:00 UTC), Uuid::nil());
        let backwards = encode_cursor(&key);
        let forwards = encode_cursor(&After { after: key });
        assert!(decode_cursor::<After>(Some(&backwards)).is_err());
        assert!(decode_cursor::<(OffsetDateTime, Uuid)>(Some(&forwards)).is_err());
        assert_eq!(
            decode_cursor::<After>(Some(&forwards))
                .unwrap()
                .unwrap()
                .after,
            key
        );
    }
}
