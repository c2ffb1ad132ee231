//! Member handlers: list (tenant admins), change, end, and HR's counts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::model::*;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::MembershipId;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};
use crate::rbac::Role;

fn last_admin() -> AppError {
    AppError::Conflict {
        code: "last_admin",
        detail: "This would leave the company without an active tenant admin.".into(),
    }
}

fn practitioner_membership() -> AppError {
    AppError::forbidden_because(
        "practitioner_membership",
        "Practitioner memberships are managed by the platform.",
    )
}

/// The company's members (tenant admins): keyset pages, filters, search.
#[utoipa::path(get, path = "/api/v1/members", tag = "members",
    extensions(("x-authz" = json!({"resource": "members", "action": "list"}))),
    security(("bearer" = [])),
    params(MemberQuery),
    responses(
        (status = 200, body = MemberPage, description = "A page of members"),
        (status = 400, description = "invalid_cursor or invalid_query"),
        (status = 403, description = "Not a tenant admin (HR sees counts only: /members/summary)"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list_members(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(query): AppQuery<MemberQuery>,
) -> AppResult<Json<MemberPage>> {
    actor.require_company()?;
    let filter = query.filter()?;
    let after = decode_cursor::<MembershipId>(query.cursor.as_deref())?;
    let limit = Limit::standard(query.limit.as_deref())?;
    let mut tx = actor.begin(&state).await?;
    let rows = repo::list(&mut tx, actor.tenant, &filter, after, limit.fetch()).await?;
    tx.commit().await?;
    let (items, next_cursor) = page(rows, limit, |m| m.id);
    Ok(Json(MemberPage { items, next_cursor }))
}

/// HR's view: one company-wide figure of enrolled members for the last complete month,
/// rounded down to a band and suppressed below one band. No per-department or per-role count
/// and nothing live (a sign-up shows nothing until its month has closed): all decided in SQL.
#[utoipa::path(get, path = "/api/v1/members/summary", tag = "members",
    extensions(("x-authz" = json!({"resource": "member_summary", "action": "read"}))),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MemberSummary, description = "One coarse figure for a closed month; no individual, no department"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn member_summary(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<MemberSummary>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let row = repo::summary(&mut tx, state.clock.now())
        .await?
        .ok_or(AppError::TenantNotFound)?;
    let seats = sqlx::query_scalar!(
        "SELECT seats FROM tenants WHERE id = $1",
        actor.tenant.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::TenantNotFound)?;
    tx.commit().await?;
    Ok(Json(MemberSummary {
        period_start: row.period_start,
        period_end: row.period_end,
        band: row.band,
        members: if row.suppressed { None } else { row.members },
        suppressed: row.suppressed,
        seats,
    }))
}

/// Change a member's roles, status or department (tenant admins).
#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "members",
    extensions(("x-authz" = json!({"resource": "members", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = MembershipId, Path, description = "Membership id")),
    request_body = MemberPatch,
    responses(
        (status = 200, body = Member, description = "The changed membership"),
        (status = 403, description = "practitioner_membership: managed by the platform"),
        (status = 409, description = "last_admin, seat_limit_reached, or membership_ended"),
    ))]
#[tracing::instrument(skip_all, fields(member = %id))]
pub async fn update_member(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<MembershipId>,
    AppJson(req): AppJson<MemberPatch>,
) -> AppResult<Json<Member>> {
    actor.require_company()?;
    let patch = req.parse()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    repo::lock_admins(&mut tx, actor.tenant).await?;
    let locked = repo::lock(&mut tx, actor.tenant, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let old = locked.member;
    if locked.ended {
        return Err(AppError::Conflict {
            code: "membership_ended",
            detail: "This membership has ended; invite the person again.".into(),
        });
    }
    if old.roles.contains(&Role::Practitioner) {
        return Err(practitioner_membership());
    }
    let roles = patch.roles.unwrap_or_else(|| old.roles.clone());
    let status = patch.status.unwrap_or(old.status);
    let department = patch.department.unwrap_or_else(|| old.department.clone());
    repo::update(
        &mut tx,
        actor.tenant,
        id,
        &roles,
        status,
        department.as_deref(),
        now,
    )
    .await?;
    if repo::active_admins(&mut tx, actor.tenant).await? == 0 {
        return Err(last_admin());
    }
    let active = status == MemberStatus::Active;
    let re_enabled = old.status != MemberStatus::Active && active;
    let role_added = roles.iter().any(|r| !old.roles.contains(r));
    let role_removed = old.roles.iter().any(|r| !roles.contains(r));
    if active && (re_enabled || role_added) {
        repo::check_seats(&mut tx, now).await?;
    }
    if !active || role_removed {
        repo::revoke_sessions(&mut tx, old.user_id, now).await?;
    }
    tx.commit().await?;
    tracing::info!(tenant = %actor.tenant, member = %id, %status, "membership changed");
    Ok(Json(Member {
        roles,
        status,
        department,
        ..old
    }))
}

/// End a membership (tenant admins): the row stays, disabled and marked ended; the person's
/// sessions in this company are revoked at once.
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "members",
    extensions(("x-authz" = json!({"resource": "members", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = MembershipId, Path, description = "Membership id")),
    responses(
        (status = 204, description = "Membership ended, sessions revoked"),
        (status = 403, description = "practitioner_membership: managed by the platform"),
        (status = 404, description = "No such membership here, or already ended"),
        (status = 409, description = "last_admin"),
    ))]
#[tracing::instrument(skip_all, fields(member = %id))]
pub async fn end_member(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<MembershipId>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    repo::lock_admins(&mut tx, actor.tenant).await?;
    let locked = repo::lock(&mut tx, actor.tenant, id)
        .await?
        .filter(|l| !l.ended)
        .ok_or(AppError::NotFound)?;
    if locked.member.roles.contains(&Role::Practitioner) {
        return Err(practitioner_membership());
    }
    repo::end(&mut tx, actor.tenant, id, now).await?;
    if repo::active_admins(&mut tx, actor.tenant).await? == 0 {
        return Err(last_admin());
    }
    repo::revoke_sessions(&mut tx, locked.member.user_id, now).await?;
    tx.commit().await?;
    tracing::info!(tenant = %actor.tenant, member = %id, "membership ended");
    Ok(StatusCode::NO_CONTENT)
}
