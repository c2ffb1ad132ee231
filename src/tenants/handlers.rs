//! Tenant HTTP handlers: extract → authorize → call repo → respond.

use axum::Json;
use axum::extract::State;

use super::model::TenantProfile;
use super::repo;
use super::resolve::Tenant;
use crate::app::AppState;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};

/// Public profile of the tenant of this host (name, language, branding, whether self-sign-up
/// is open), for login and sign-up screens. Holds nothing about people, hence public.
#[utoipa::path(
    get,
    path = "/api/v1/tenant/profile",
    tag = "tenant",
    extensions(("x-authz" = json!({"resource": "tenant_profile", "action": "read"}))),
    responses(
        (status = 200, description = "The tenant of this host", body = TenantProfile),
        (status = 400, description = "Malformed Host"),
        (status = 403, description = "Tenant suspended"),
        (status = 404, description = "No tenant at this host"),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn profile(
    State(state): State<AppState>,
    tenant: Tenant,
) -> AppResult<Json<TenantProfile>> {
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let profile = repo::profile(&mut tx, tenant.id)
        .await?
        .ok_or(AppError::TenantNotFound)?;
    tx.commit().await?;
    Ok(Json(profile))
}
