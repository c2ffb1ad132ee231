//! In-app notifications (issue 11, item 8; the rest of DESIGN §5's notifications — preferences,
//! digest, live push — come with the reporting and realtime issues).
//!
//! - `GET /notifications` (newest first, keyset; `unread=true` for unread only), with the
//!   caller's unread count;
//! - `POST /notifications/{id}/read`, `POST /notifications/read-all`.
//!
//! Invariants:
//! - Rows are written only by the job worker (`app_private.job_notify`); a person reads and
//!   marks their own rows in this company and nothing else (row-level security on the proven
//!   person; the only column the request role may change is `read_at`). Another person's id is
//!   404.
//! - A notification carries a kind, a consultation id and a time: never content, never the
//!   other party's name.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

/// One notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `consultation_requested`, `consultation_confirmed`, `consultation_cancelled`,
    /// `consultation_rescheduled` or `consultation_reminder`.
    pub kind: String,
    pub consultation_id: Option<Uuid>,
    /// The consultation's start when the notification was made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
}

/// A page of notifications, newest first.
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
    pub cursor: Option<String>,
    /// `true`: unread ones only.
    #[param(value_type = Option<bool>)]
    pub unread: Option<String>,
}

/// `read-all`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Marked {
    pub marked: u64,
}

fn unread_only(raw: Option<&str>) -> Result<bool, AppError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(AppError::invalid("unread", "must be true or false")),
    }
}

/// The caller's notifications in this company, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notifications", "action": "read"}))),
    security(("bearer" = [])),
    params(NotificationQuery),
    responses((status = 200, body = NotificationPage)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<NotificationQuery>,
) -> AppResult<Json<NotificationPage>> {
    actor.require_company()?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let unread = unread_only(q.unread.as_deref())?;
    let before = decode_cursor::<(OffsetDateTime, Uuid)>(q.cursor.as_deref())?;
    let mut tx = actor.begin(&state).await?;
    let me = actor.user.as_uuid();
    // The first page starts after the newest possible key.
    let (at, id) = before.unwrap_or((time::macros::datetime!(9999-12-31 0:00 UTC), Uuid::max()));
    let rows = if unread {
        sqlx::query_as!(
            Notification,
            r#"SELECT id, kind, consultation_id, starts_at, created_at, read_at
               FROM notifications
               WHERE tenant_id = app.current_tenant() AND user_id = $1 AND read_at IS NULL
                 AND (created_at, id) < ($2, $3)
               ORDER BY created_at DESC, id DESC
               LIMIT $4"#,
            me,
            at,
            id,
            limit.fetch()
        )
        .fetch_all(&mut *tx)
        .await?
    } else {
        sqlx::query_as!(
            Notification,
            r#"SELECT id, kind, consultation_id, starts_at, created_at, read_at
               FROM notifications
               WHERE tenant_id = app.current_tenant() AND user_id = $1
                 AND (created_at, id) < ($2, $3)
               ORDER BY created_at DESC, id DESC
               LIMIT $4"#,
            me,
            at,
            id,
            limit.fetch()
        )
        .fetch_all(&mut *tx)
        .await?
    };
    let unread_count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications
           WHERE tenant_id = app.current_tenant() AND user_id = $1 AND read_at IS NULL"#,
        me
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let (items, next_cursor) = page(rows, limit, |n| (n.created_at, n.id));
    Ok(Json(NotificationPage {
        items,
        next_cursor,
        unread: unread_count,
    }))
}

/// One of `me`'s notifications in the transaction's company (the socket's push re-reads it).
pub async fn one(
    conn: &mut sqlx::PgConnection,
    me: crate::db::UserId,
    id: Uuid,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as!(
        Notification,
        r#"SELECT id, kind, consultation_id, starts_at, created_at, read_at
           FROM notifications
           WHERE tenant_id = app.current_tenant() AND user_id = $1 AND id = $2"#,
        me.as_uuid(),
        id
    )
    .fetch_optional(conn)
    .await
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
