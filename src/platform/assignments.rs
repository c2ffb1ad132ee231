//! Practitioner assignment: a platform admin gives an existing practitioner identity (a user
//! with a practitioner profile) the practitioner role in a company, or ends it. Both go
//! through definers (`app_private.assign_practitioner` / `unassign_practitioner`) that check
//! the caller is a platform admin, refuse tenant zero and offboarding/offboarded companies, and
//! answer with an outcome word: the platform never reads the company's membership rows.
//!
//! Answers: PUT → 201 `assigned` when the assignment was made, whether or not the person was
//! already a member of that company (the outcome never says: the platform learns nothing of a
//! company's people), 200 `unchanged` when the practitioner assignment already held; DELETE → 204, and the
//! person's sessions in that company are revoked in the same transaction. Unknown tenant,
//! unknown user, a user without a profile, or (DELETE) no active assignment → 404;
//! offboarding/offboarded company → 409 `tenant_offboarding`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::handlers::no_store;
use super::model::Assignment;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::AppPath;

fn closed() -> AppError {
    AppError::Conflict {
        code: "tenant_offboarding",
        detail: "This tenant is being offboarded (or was); practitioners cannot be assigned."
            .into(),
    }
}

/// Assign a practitioner to a company (creates or re-activates the practitioner membership).
#[utoipa::path(put, path = "/api/v1/platform/tenants/{id}/practitioners/{user_id}", tag = "platform",
    extensions(("x-authz" = json!({"resource": "tenant_practitioners", "action": "assign"}))),
    params(
        ("id" = String, Path, description = "Tenant id"),
        ("user_id" = String, Path, description = "The practitioner's user id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Assignment, description = "Assigned"),
        (status = 200, body = Assignment, description = "Already assigned"),
        (status = 404, description = "Unknown tenant, or not a practitioner identity"),
        (status = 409, description = "tenant_offboarding"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
pub async fn assign_practitioner(
    State(state): State<AppState>,
    actor: Actor,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
) -> AppResult<Response> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let outcome = repo::assign_practitioner(&mut tx, tenant, user, state.clock.now()).await?;
    let status = match outcome.as_str() {
        "assigned" => StatusCode::CREATED,
        "unchanged" => StatusCode::OK,
        "closed" => return Err(closed()),
        _ => return Err(AppError::NotFound),
    };
    tx.commit().await?;
    tracing::info!(outcome = %outcome, "practitioner assignment");
    let body = Assignment {
        tenant_id: tenant,
        user_id: user,
        outcome,
    };
    Ok((status, no_store(Json(body))).into_response())
}

/// End a practitioner's assignment to a company; their sessions there are revoked at once.
#[utoipa::path(delete, path = "/api/v1/platform/tenants/{id}/practitioners/{user_id}", tag = "platform",
    extensions(("x-authz" = json!({"resource": "tenant_practitioners", "action": "assign"}))),
    params(
        ("id" = String, Path, description = "Tenant id"),
        ("user_id" = String, Path, description = "The practitioner's user id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Assignment ended; sessions in that company revoked"),
        (status = 404, description = "Unknown tenant or user, or not assigned there"),
        (status = 409, description = "tenant_offboarding"),
    ))]
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
pub async fn unassign_practitioner(
    State(state): State<AppState>,
    actor: Actor,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
) -> AppResult<StatusCode> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let outcome = repo::unassign_practitioner(&mut tx, tenant, user, state.clock.now()).await?;
    match outcome.as_str() {
        "ended" => {}
        "closed" => return Err(closed()),
        _ => return Err(AppError::NotFound),
    }
    tx.commit().await?;
    tracing::info!("practitioner assignment ended");
    Ok(StatusCode::NO_CONTENT)
}
