//! Calendar feeds (issue 11, item 7): `POST /me/calendar-feed` gives the signed-in employee or
//! practitioner a secret address of their consultations in this company (a new one revokes the
//! previous), `DELETE /me/calendar-feed` revokes it, and `GET /calendar/{feed_token}.ics`
//! serves it to calendar apps without a session (RFC 5545).
//!
//! Invariants:
//! - The token is the credential: 256 random bits after the feed id; only its hash is stored;
//!   a revoked, replaced, unknown or foreign token is 410 `calendar_feed_gone` (as an
//!   invitation's).
//! - Events say when, how (video, audio…) and in which state — never who the other party is
//!   nor anything about care: calendars are synced to third parties. UIDs are stable
//!   (`{consultation id}@serein`), SEQUENCE follows every change, a cancelled consultation is
//!   `STATUS:CANCELLED`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ics::{Calendar, escape, utc};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::crypto::tokens;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::http::extract::AppPath;
use crate::tenants::resolve::Tenant;

/// A new feed address (shown once; only its hash is kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarFeed {
    /// Add this to a calendar app (it contains the secret).
    pub url: String,
}

/// Create (or replace) the caller's calendar address in this company (`PUBLIC_URL`'s base).
#[utoipa::path(post, path = "/api/v1/me/calendar-feed", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "calendar_feed", "action": "manage"}))),
    security(("bearer" = [])),
    responses((status = 201, body = CalendarFeed)))]
#[tracing::instrument(skip_all)]
pub async fn rotate(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<(StatusCode, Json<CalendarFeed>)> {
    actor.require_company()?;
    let id = Uuid::now_v7();
    let token = tokens::record_token(id);
    let mut tx = actor.begin(&state).await?;
    sqlx::query!(
        "SELECT app_private.calendar_feed_rotate($1, $2, $3)",
        id,
        token.hash.as_slice(),
        state.clock.now()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // PUBLIC_URL's base for this host (the API is served on the same host).
    let base = state.config.auth.public_base(&actor.host);
    Ok((
        StatusCode::CREATED,
        Json(CalendarFeed {
            url: format!("{base}/api/v1/calendar/{}.ics", token.token),
        }),
    ))
}

/// Revoke the caller's calendar address in this company.
#[utoipa::path(delete, path = "/api/v1/me/calendar-feed", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "calendar_feed", "action": "manage"}))),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No live feed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn revoke(State(state): State<AppState>, actor: Actor) -> AppResult<StatusCode> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let revoked = sqlx::query_scalar!(
        r#"SELECT app_private.calendar_feed_revoke($1) AS "revoked!""#,
        state.clock.now()
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound)
    }
}

/// The feed (anonymous: the address is the credential), `text/calendar`.
#[utoipa::path(get, path = "/api/v1/calendar/{feed_token}", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "calendar_feed", "action": "read"}))),
    params(("feed_token" = String, Path, pattern = "^[0-9a-f]{32}\\.[A-Za-z0-9_-]{43}\\.ics$",
            description = "The secret address's last segment, ending in `.ics`")),
    responses(
        (status = 200, content_type = "text/calendar", body = String, description = "RFC 5545"),
        (status = 410, description = "calendar_feed_gone: unknown, revoked, replaced or another company's"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn feed(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(feed_token): AppPath<String>,
) -> AppResult<Response> {
    let (id, hash) = feed_token
        .strip_suffix(".ics")
        .and_then(tokens::parse_record_token)
        .ok_or(AppError::Gone("calendar_feed_gone"))?;
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    // An unknown, foreign, replaced or revoked address is gone before anything is read; a
    // live feed with no consultation answers an empty calendar.
    let live = sqlx::query_scalar!(
        r#"SELECT app_private.calendar_feed_live($1, $2) AS "live!""#,
        id,
        hash.as_slice()
    )
    .fetch_one(&mut *tx)
    .await?;
    if !live {
        return Err(AppError::Gone("calendar_feed_gone"));
    }
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", kind AS "kind!", status AS "status!", starts_at AS "starts_at!",
                  ends_at AS "ends_at!", sequence AS "sequence!", updated_at AS "updated_at!",
                  as_practitioner AS "as_practitioner!"
           FROM app_private.calendar_feed_events($1, $2)"#,
        id,
        hash.as_slice()
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let now = state.clock.now();
    let mut cal = Calendar::default();
    cal.line("BEGIN", "VCALENDAR");
    cal.line("VERSION", "2.0");
    cal.line("PRODID", "-//Serein//Consultations//EN");
    cal.line("CALSCALE", "GREGORIAN");
    cal.line("METHOD", "PUBLISH");
    cal.line("X-WR-CALNAME", "Serein");
    for r in rows {
        let how = match r.kind.as_str() {
            "in_person" => "in person",
            other => other,
        };
        cal.line("BEGIN", "VEVENT");
        cal.line("UID", &format!("{}@serein", r.id));
        cal.line("DTSTAMP", &utc(now));
        cal.line("LAST-MODIFIED", &utc(r.updated_at));
        cal.line("SEQUENCE", &r.sequence.to_string());
        cal.line("DTSTART", &utc(r.starts_at));
        cal.line("DTEND", &utc(r.ends_at));
        let summary = if r.as_practitioner {
            format!("Consultation ({how})")
        } else {
            format!("Serein session ({how})")
        };
        cal.line("SUMMARY", &escape(&summary));
        cal.line(
            "STATUS",
            match r.status.as_str() {
                "cancelled" => "CANCELLED",
                "requested" => "TENTATIVE",
                _ => "CONFIRMED",
            },
        );
        cal.line("TRANSP", "OPAQUE");
        cal.line("END", "VEVENT");
    }
    cal.line("END", "VCALENDAR");
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        cal.finish(),
    )
        .into_response())
}
