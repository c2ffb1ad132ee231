//! Notifications (issue 11 item 8, issue 13 item 4; DESIGN §5).
//!
//! - `GET /notifications`: newest first (keyset; `unread=true` for unread only) with the
//!   caller's unread count; with `since=<RFC 3339>`, polling: those created after it, oldest
//!   first ([`list`]);
//! - `POST /notifications/{id}/read`, `POST /notifications/read-all`;
//! - `GET|PUT /notifications/preferences`: the kind × channel matrix ([`preferences`]);
//! - live push: every stored notification is announced over `/api/v1/ws` (trigger →
//!   `pg_notify`, migration `20261208000002_realtime.sql`, re-read with [`one`] under the
//!   person's own policy);
//! - the digest: a weekly e-mail of unread counts for people who have not signed in for a week,
//!   sent by the job worker ([`digest`]).
//!
//! Invariants:
//! - Rows are written only by definers (the job worker's `app_private.job_notify`,
//!   `app_private.message_send`); a person reads and marks their own rows in this company and
//!   nothing else (row-level security on the proven person; the only column the request role
//!   may change is `read_at`). Another person's id is 404.
//! - A notification carries a kind, a consultation id and a time: never content, never the
//!   other party's name.
//! - Preferences are enforced in ONE place, the database (`app_private.notification_wanted`,
//!   migration `20261209000300_notification_preferences.sql`): an unwanted notification is
//!   never stored (so never pushed), an unwanted e-mail never queued, whoever the writer is.
//!   Transactional e-mail (verification, reset, invitations) is outside the matrix.

pub mod digest;
pub mod list;
pub mod preferences;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list))
        .routes(routes!(list::mark_read))
        .routes(routes!(list::mark_all_read))
        .routes(routes!(preferences::show, preferences::update))
}

/// One notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `consultation_requested`, `consultation_confirmed`, `consultation_cancelled`,
    /// `consultation_rescheduled`, `consultation_reminder` or `message_received`.
    pub kind: String,
    pub consultation_id: Option<Uuid>,
    /// The consultation's start when the notification was made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    /// As stored by the server (poll with the newest one seen as `since`, never a client
    /// clock).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
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
