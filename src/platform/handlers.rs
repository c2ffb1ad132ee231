//! Platform tenant handlers: extract → require a platform admin → validate through the shared
//! tenant model → RLS-scoped transaction → respond. See the module header of `platform`.
//!
//! Life-cycle answers: suspend/resume are idempotent (200 with the tenant); a file-managed
//! tenant answers 409 `managed_by_file` to every change; an offboarding tenant accepts only
//! `resume` (which cancels the offboarding) and a repeated `DELETE` (202, same purge date);
//! an offboarded tenant is a tombstone: every change answers 409 `tenant_offboarded`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::{CreateTenant, ListQuery, OffboardQuery, PatchTenant, TenantPage, TenantView};
use super::repo::{self, TenantRow};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::{TenantId, TenantTx};
use crate::error::{AppError, AppResult};
use crate::http::pagination::{Limit, decode_cursor, page};
use crate::http::{AppJson, AppPath, AppQuery};
use crate::tenants::model::TenantStatus;

fn managed_by_file() -> AppError {
    AppError::Conflict {
        code: "managed_by_file",
        detail: "This tenant is managed by its file (tenants/<slug>.toml); change the file and \
                 run `serein tenants apply`."
            .into(),
    }
}

fn offboarded() -> AppError {
    AppError::Conflict {
        code: "tenant_offboarded",
        detail: "This tenant was offboarded and purged; only its tombstone remains.".into(),
    }
}

fn offboarding() -> AppError {
    AppError::Conflict {
        code: "tenant_offboarding",
        detail: "This tenant is being offboarded; resume it first to change it.".into(),
    }
}

async fn check_time_zone(tx: &mut TenantTx, tz: &str) -> AppResult<()> {
    if repo::time_zone_known(tx, tz).await? {
        Ok(())
    } else {
        Err(AppError::invalid(
            "time_zone",
            format!("{tz:?} is not a time zone PostgreSQL knows"),
        ))
    }
}

async fn load(tx: &mut TenantTx, id: TenantId) -> AppResult<TenantRow> {
    repo::get(tx, id).await?.ok_or(AppError::NotFound)
}

/// The tenant with its member counts.
async fn detail(state: &AppState, tx: &mut TenantTx, id: TenantId) -> AppResult<TenantView> {
    let row = load(tx, id).await?;
    let counts = repo::member_counts(tx, id, row.seats, state.clock.now()).await?;
    row.view(counts)
}

/// A change is refused unless the tenant is API-managed and not offboarded.
fn changeable(row: &TenantRow) -> AppResult<()> {
    if row.managed_by != "api" {
        return Err(managed_by_file());
    }
    if row.status() == TenantStatus::Offboarded {
        return Err(offboarded());
    }
    Ok(())
}

/// Company tenants in slug order (keyset pagination). The platform tenant is not listed.
#[utoipa::path(get, path = "/api/v1/platform/tenants", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "read"}))),
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantPage),
        (status = 400, description = "invalid_query or invalid_cursor"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list_tenants(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let after = decode_cursor::<String>(q.cursor.as_deref())?;
    let mut tx = actor.begin(&state).await?;
    let rows = repo::list(&mut tx, q.status, after.as_deref(), limit.fetch()).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page(rows, limit, |r| r.slug.clone());
    let items = rows
        .iter()
        .map(|r| r.view(None))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(no_store(Json(TenantPage { items, next_cursor })))
}

/// Create an API-managed company (status `active`).
#[utoipa::path(post, path = "/api/v1/platform/tenants", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "create"}))),
    request_body = CreateTenant,
    security(("bearer" = [])),
    responses(
        (status = 201, body = TenantView, description = "Created; `Location` names it"),
        (status = 409, description = "slug_taken"),
        (status = 422, description = "validation_failed: fields named (bad or reserved slug, min_cohort < 3, unknown time zone, …)"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(body): AppJson<CreateTenant>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let spec = body.into_spec()?;
    let mut tx = actor.begin(&state).await?;
    check_time_zone(&mut tx, &spec.time_zone).await?;
    let id = TenantId::new();
    repo::insert(&mut tx, id, &spec, state.clock.now()).await?;
    let view = detail(&state, &mut tx, id).await?;
    tx.commit().await?;
    // The slug may sit in the cache of unknown hosts.
    state.tenants.forget(&spec.slug);
    tracing::info!(tenant = %id, slug = %spec.slug, "tenant created");
    let mut res = (StatusCode::CREATED, no_store(Json(view))).into_response();
    if let Ok(v) = format!("/api/v1/platform/tenants/{id}").parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// One company: settings, plan, seats, status, offboarding dates, and member counts (never a
/// member list).
#[utoipa::path(get, path = "/api/v1/platform/tenants/{id}", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "read"}))),
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn get_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<TenantId>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let view = detail(&state, &mut tx, id).await?;
    tx.commit().await?;
    Ok(no_store(Json(view)))
}

/// Change settings, plan, seats or allowance of an API-managed company (partial update,
/// validated like a tenant file).
#[utoipa::path(patch, path = "/api/v1/platform/tenants/{id}", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "update"}))),
    params(("id" = String, Path, description = "Tenant id")),
    request_body = PatchTenant,
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 409, description = "managed_by_file, tenant_offboarding, tenant_offboarded"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn update_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<TenantId>,
    AppJson(patch): AppJson<PatchTenant>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let row = load(&mut tx, id).await?;
    changeable(&row)?;
    if row.status() == TenantStatus::Offboarding {
        return Err(offboarding());
    }
    let current = row.spec()?;
    let next = patch.apply(&current)?;
    if next.time_zone != current.time_zone {
        check_time_zone(&mut tx, &next.time_zone).await?;
    }
    if next != current
        && !repo::update_settings(&mut tx, id, &next, row.updated_at, state.clock.now()).await?
    {
        return Err(AppError::Conflict {
            code: "conflict",
            detail: "The tenant changed meanwhile; retry.".into(),
        });
    }
    let view = detail(&state, &mut tx, id).await?;
    tx.commit().await?;
    state.tenants.forget(&row.slug);
    Ok(no_store(Json(view)))
}

/// Apply a status transition `from → to` (compare-and-set) and answer with the tenant.
async fn transition(
    state: &AppState,
    mut tx: TenantTx,
    row: &TenantRow,
    to: TenantStatus,
    purge_after: Option<time::OffsetDateTime>,
) -> AppResult<TenantView> {
    let from = row.status();
    if from != to {
        let done =
            repo::set_status(&mut tx, row.id, from, to, purge_after, state.clock.now()).await?;
        if !done {
            return Err(AppError::Conflict {
                code: "conflict",
                detail: "The tenant changed meanwhile; retry.".into(),
            });
        }
    }
    let view = detail(state, &mut tx, row.id).await?;
    tx.commit().await?;
    // This process refuses (or serves again) the host at once; others within the TTL.
    state.tenants.forget(&row.slug);
    if from != to {
        tracing::info!(tenant = %row.id, from = from.as_str(), to = to.as_str(), "tenant status changed");
    }
    Ok(view)
}

/// Suspend a company: its host answers 403 `tenant_suspended` (tokens included).
#[utoipa::path(post, path = "/api/v1/platform/tenants/{id}/suspend", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "suspend"}))),
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 409, description = "managed_by_file, tenant_offboarding, tenant_offboarded"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn suspend_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<TenantId>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let row = load(&mut tx, id).await?;
    changeable(&row)?;
    if row.status() == TenantStatus::Offboarding {
        return Err(offboarding());
    }
    let view = transition(&state, tx, &row, TenantStatus::Suspended, None).await?;
    Ok(no_store(Json(view)))
}

/// Serve a suspended company again, or cancel an offboarding during its grace period.
#[utoipa::path(post, path = "/api/v1/platform/tenants/{id}/resume", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "suspend"}))),
    params(("id" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 409, description = "managed_by_file, tenant_offboarded"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn resume_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<TenantId>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let row = load(&mut tx, id).await?;
    changeable(&row)?;
    let view = transition(&state, tx, &row, TenantStatus::Active, None).await?;
    Ok(no_store(Json(view)))
}

/// Offboard a company: it moves to `offboarding` (host refused like a suspended one; `resume`
/// cancels) and the purge job destroys its keys and deletes its data after `purge_after`.
#[utoipa::path(delete, path = "/api/v1/platform/tenants/{id}", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_tenants", "action": "offboard"}))),
    params(("id" = String, Path, description = "Tenant id"), OffboardQuery),
    security(("bearer" = [])),
    responses(
        (status = 202, body = TenantView, description = "Offboarding; `purge_after` is the purge date"),
        (status = 409, description = "managed_by_file, tenant_offboarded"),
        (status = 422, description = "grace_days out of 0..=365"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %id))]
pub async fn offboard_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<TenantId>,
    AppQuery(q): AppQuery<OffboardQuery>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let days = q
        .grace_days
        .unwrap_or(i64::from(state.config.platform.offboarding_grace_days));
    if !(0..=365).contains(&days) {
        return Err(AppError::invalid("grace_days", "must be between 0 and 365"));
    }
    let mut tx = actor.begin(&state).await?;
    let row = load(&mut tx, id).await?;
    changeable(&row)?;
    let purge_after = state
        .clock
        .now()
        .checked_add(time::Duration::days(days))
        .ok_or_else(|| AppError::invalid("grace_days", "out of range"))?;
    // A repeated request keeps the first purge date (transition is a no-op).
    let view = transition(
        &state,
        tx,
        &row,
        TenantStatus::Offboarding,
        Some(purge_after),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, no_store(Json(view))).into_response())
}

/// `Cache-Control: no-store` on a JSON answer (it names a company's settings and counts).
pub(super) fn no_store(body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}
