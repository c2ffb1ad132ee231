//! `/availability/*`: the signed-in practitioner's own schedule (company host; Casbin:
//! `availability` read/update, practitioners only).
//!
//! Invariants:
//! - A practitioner reads and writes only their own schedule: every statement names the
//!   actor, and underneath, row-level security admits only the person proven by the session
//!   guard (migration 20261206000002). Anyone else's rule or exception id is 404, the same
//!   answer as an id that does not exist.
//! - The schedule is global: a rule saved on one company's host is offered on every company
//!   the practitioner serves.
//! - A practitioner's first rule creates their schedule in this company's time zone; they
//!   change it with `PUT /availability/settings` (checked against PostgreSQL's zone list).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::model::*;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};
use crate::rbac::Role;

/// The schedule's routes are the practitioner's own, on a company host.
fn practitioner(actor: &Actor) -> Result<(), AppError> {
    actor.require_company()?;
    if actor.has(Role::Practitioner) {
        Ok(())
    } else {
        Err(AppError::forbidden())
    }
}

/// A time zone both PostgreSQL and IANA spell the same way.
async fn checked_zone(conn: &mut sqlx::PgConnection, tz: &str) -> Result<String, AppError> {
    let tz = tz.trim();
    let shaped = !tz.is_empty()
        && tz.len() <= 64
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        && tz.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    // Known to the slot engine's bundled tz database and to PostgreSQL.
    if !shaped
        || super::slots::Zone::parse(tz).is_none_or(|z| z.name() != tz)
        || !crate::platform::repo::time_zone_known(conn, tz).await?
    {
        return Err(AppError::invalid(
            "time_zone",
            "must be an IANA time zone, e.g. Europe/Paris",
        ));
    }
    Ok(tz.to_owned())
}

/// A schedule belongs to a practitioner profile (made by the platform with the identity): a
/// practitioner membership without one (a CLI-made account) gets a clear 409, not a 500.
async fn require_profile(conn: &mut sqlx::PgConnection, actor: &Actor) -> Result<(), AppError> {
    if repo::has_profile(conn, actor.user).await? {
        Ok(())
    } else {
        Err(AppError::Conflict {
            code: "profile_required",
            detail: "This account has no practitioner profile yet; the platform creates it.".into(),
        })
    }
}

/// The practitioner's schedule settings (time zone, confirmation). Before they save any, the
/// defaults: this company's time zone, automatic confirmation, `saved: false`.
#[utoipa::path(get, path = "/api/v1/availability/settings", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "read"}))),
    security(("bearer" = [])),
    responses((status = 200, body = Settings)))]
#[tracing::instrument(skip_all)]
pub async fn get_settings(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<Settings>> {
    practitioner(&actor)?;
    let mut tx = actor.begin(&state).await?;
    let saved = repo::settings(&mut tx, actor.user).await?;
    let settings = match saved {
        Some((time_zone, auto_confirm)) => Settings {
            time_zone,
            auto_confirm,
            saved: true,
        },
        None => Settings {
            time_zone: repo::company_time_zone(&mut tx)
                .await?
                .unwrap_or_else(|| "UTC".into()),
            auto_confirm: true,
            saved: false,
        },
    };
    tx.commit().await?;
    Ok(Json(settings))
}

/// Save the schedule settings. Changing the time zone moves every weekly rule with it (the
/// rules are local times): a 09:00 rule stays 09:00 in the new zone.
#[utoipa::path(put, path = "/api/v1/availability/settings", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    request_body = SettingsRequest,
    responses(
        (status = 200, body = Settings),
        (status = 409, description = "profile_required"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn put_settings(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<SettingsRequest>,
) -> AppResult<Json<Settings>> {
    practitioner(&actor)?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    require_profile(&mut tx, &actor).await?;
    let tz = checked_zone(&mut tx, &req.time_zone).await?;
    let (time_zone, auto_confirm) =
        repo::save_settings(&mut tx, actor.user, &tz, req.auto_confirm, now).await?;
    tx.commit().await?;
    Ok(Json(Settings {
        time_zone,
        auto_confirm,
        saved: true,
    }))
}

/// The practitioner's weekly rules, by weekday and start, with the time zone they are in.
#[utoipa::path(get, path = "/api/v1/availability/rules", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "read"}))),
    security(("bearer" = [])),
    responses((status = 200, body = RuleList)))]
#[tracing::instrument(skip_all)]
pub async fn list_rules(State(state): State<AppState>, actor: Actor) -> AppResult<Json<RuleList>> {
    practitioner(&actor)?;
    let mut tx = actor.begin(&state).await?;
    let time_zone = match repo::settings(&mut tx, actor.user).await? {
        Some((tz, _)) => tz,
        None => repo::company_time_zone(&mut tx)
            .await?
            .unwrap_or_else(|| "UTC".into()),
    };
    let items = repo::rules(&mut tx, actor.user).await?;
    tx.commit().await?;
    Ok(Json(RuleList { time_zone, items }))
}

/// Add a weekly rule: a window of one weekday in local time, and what it offers.
#[utoipa::path(post, path = "/api/v1/availability/rules", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    request_body = RuleRequest,
    responses(
        (status = 201, body = Rule),
        (status = 409, description = "too_many_rules (at most 50) or profile_required"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_rule(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<RuleRequest>,
) -> AppResult<(StatusCode, Json<Rule>)> {
    practitioner(&actor)?;
    let rule = req.parse().map_err(AppError::Validation)?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let tz = repo::company_time_zone(&mut tx)
        .await?
        .unwrap_or_else(|| "UTC".into());
    require_profile(&mut tx, &actor).await?;
    repo::ensure_schedule(&mut tx, actor.user, &tz, now).await?;
    if repo::rule_count(&mut tx, actor.user).await? >= MAX_RULES {
        return Err(AppError::Conflict {
            code: "too_many_rules",
            detail: format!("A schedule keeps at most {MAX_RULES} weekly rules."),
        });
    }
    let saved = repo::insert_rule(&mut tx, actor.user, &rule, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Replace one of the practitioner's weekly rules.
#[utoipa::path(put, path = "/api/v1/availability/rules/{id}", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Rule id")),
    request_body = RuleRequest,
    responses(
        (status = 200, body = Rule),
        (status = 404, description = "Not one of this practitioner's rules"),
    ))]
#[tracing::instrument(skip_all, fields(rule = %id))]
pub async fn update_rule(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<RuleRequest>,
) -> AppResult<Json<Rule>> {
    practitioner(&actor)?;
    let rule = req.parse().map_err(AppError::Validation)?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let saved = repo::update_rule(&mut tx, actor.user, id, &rule, now)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(saved))
}

/// Delete one of the practitioner's weekly rules.
#[utoipa::path(delete, path = "/api/v1/availability/rules/{id}", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not one of this practitioner's rules"),
    ))]
#[tracing::instrument(skip_all, fields(rule = %id))]
pub async fn delete_rule(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    practitioner(&actor)?;
    let mut tx = actor.begin(&state).await?;
    if !repo::delete_rule(&mut tx, actor.user, id).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The practitioner's exceptions still running at or after `from` (default now), by start.
#[utoipa::path(get, path = "/api/v1/availability/exceptions", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "read"}))),
    security(("bearer" = [])),
    params(ExceptionQuery),
    responses((status = 200, body = ExceptionPage)))]
#[tracing::instrument(skip_all)]
pub async fn list_exceptions(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<ExceptionQuery>,
) -> AppResult<Json<ExceptionPage>> {
    practitioner(&actor)?;
    let from = match q.from.as_deref() {
        None => state.clock.now(),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|_| AppError::invalid("from", "must be an RFC 3339 instant"))?,
    };
    let limit = Limit::standard(q.limit.as_deref())?;
    let after = decode_cursor::<(OffsetDateTime, Uuid)>(q.cursor.as_deref())?
        .unwrap_or((OffsetDateTime::UNIX_EPOCH, Uuid::nil()));
    let mut tx = actor.begin(&state).await?;
    let rows = repo::exceptions_page(&mut tx, actor.user, from, after, limit.fetch()).await?;
    tx.commit().await?;
    let (items, next_cursor) = page(rows, limit, |e| (e.starts_at, e.id));
    Ok(Json(ExceptionPage { items, next_cursor }))
}

/// Add time off (nothing is offered inside it) or extra hours (a one-off window with its own
/// offer, at most 24 hours).
#[utoipa::path(post, path = "/api/v1/availability/exceptions", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    request_body = ExceptionRequest,
    responses(
        (status = 201, body = Exception),
        (status = 409, description = "profile_required"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_exception(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<ExceptionRequest>,
) -> AppResult<(StatusCode, Json<Exception>)> {
    practitioner(&actor)?;
    let exception = req.parse().map_err(AppError::Validation)?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let tz = repo::company_time_zone(&mut tx)
        .await?
        .unwrap_or_else(|| "UTC".into());
    require_profile(&mut tx, &actor).await?;
    repo::ensure_schedule(&mut tx, actor.user, &tz, now).await?;
    let saved = repo::insert_exception(&mut tx, actor.user, &exception, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Delete one of the practitioner's exceptions.
#[utoipa::path(delete, path = "/api/v1/availability/exceptions/{id}", tag = "availability",
    extensions(("x-authz" = json!({"resource": "availability", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Exception id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not one of this practitioner's exceptions"),
    ))]
#[tracing::instrument(skip_all, fields(exception = %id))]
pub async fn delete_exception(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    practitioner(&actor)?;
    let mut tx = actor.begin(&state).await?;
    if !repo::delete_exception(&mut tx, actor.user, id).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
